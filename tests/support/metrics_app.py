"""What gunicorn serves in test_metrics.py's multi-process test, and its
settings: ``-c python:tests.support.metrics_app`` reads the gunicorn
settings below (``child_exit``), and ``tests.support.metrics_app:build()``
builds the app in each worker.

The app is ``echo_app`` behind the middleware, on the Redis at
``$SSO_TEST_REDIS_URL``, answering as ``$SSO_TEST_SYSTEM_URL``, with
``/metrics`` mounted as the metrics guide says. gunicorn must be started with
``PROMETHEUS_MULTIPROC_DIR`` set to an empty directory.
"""

from __future__ import annotations

import os

from werkzeug.middleware.dispatcher import DispatcherMiddleware

from sso_middleware import AdminAPIOptions, SessionOptions, SSOMiddleware, Stores
from sso_middleware.credentials import hash_secret
from sso_middleware.demo import demo_user_store
from sso_middleware.metrics.prometheus import PrometheusMetrics, metrics_app
from sso_middleware.metrics.prometheus import child_exit as child_exit
from tests.support.helpers import API_IDENTIFIER, API_SECRET, SECRET_KEY, echo_app


def build() -> DispatcherMiddleware:
    """The measured portal, with ``/metrics`` summing every worker's files."""
    sso = SSOMiddleware(
        echo_app,
        system_url=os.environ["SSO_TEST_SYSTEM_URL"],
        secret_keys=[SECRET_KEY],
        user_store=demo_user_store(),
        stores=Stores.redis(os.environ["SSO_TEST_REDIS_URL"]),
        api=AdminAPIOptions(credentials={API_IDENTIFIER: hash_secret(API_SECRET)}),
        sessions=SessionOptions(secure=False),
        metrics=PrometheusMetrics(),
    )
    return DispatcherMiddleware(sso, {"/metrics": metrics_app()})
