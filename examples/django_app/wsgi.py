"""
The Django portal as a WSGI module
==================================

For a WSGI server: ``application`` is the portal wrapped by the middleware,
configured from the environment::

    PORTAL_URL=https://portal.example.com REDIS_URL=redis://127.0.0.1:6379/0 \\
    SSO_SECRET_KEYS="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" \\
    SSO_API_SECRET_HASH="$(printf %s "$API_SECRET" | .venv/bin/sso-middleware hash-secret)" \\
    .venv/bin/gunicorn --workers 1 --bind 127.0.0.1:8004 examples.django_app.wsgi

``PORTAL_URL``
    ``system_url``: the public base URL. Plain ``http://`` needs
    ``PORTAL_SECURE_COOKIES=false`` as well (browsers send ``Secure``
    cookies over HTTPS only).
``REDIS_URL``
    Where tokens and sessions live.
``SSO_SECRET_KEYS``
    The signing keys, separated by spaces, oldest first.
``SSO_API_SECRET_HASH``
    Optional: the hash of the admin API secret of identifier ``demo``
    (without it the admin API is not served).

The accounts are the demo's, in this process's memory: one worker, or give
``create_app`` a user store every worker shares (as ``examples/pipeline.py``
does). An access log must not print query strings, which carry tokens
(gunicorn: ``--access-logformat`` with ``%(U)s``, not ``%(r)s``).
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from examples.django_app.app import SETTINGS_MODULE, create_app
from sso_middleware import AdminAPIOptions, SessionOptions, Stores
from sso_middleware.paste import secret_keys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)

_api_secret_hash = os.environ.get("SSO_API_SECRET_HASH")


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"set {name}: see the docstring of {__name__}")
    return value


application = create_app(
    system_url=_required("PORTAL_URL"),
    stores=Stores.redis(_required("REDIS_URL")),
    secret_keys=secret_keys({"secret_keys_env": "SSO_SECRET_KEYS"}),
    sessions=SessionOptions(secure=settings.SESSION_COOKIE_SECURE),
    api=AdminAPIOptions(credentials={"demo": _api_secret_hash}) if _api_secret_hash else None,
)
