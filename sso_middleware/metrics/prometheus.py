"""
Prometheus
==========

:class:`PrometheusMetrics` reports what the middleware measures as
Prometheus counters and histograms, and :func:`metrics_app` serves them at
``/metrics``, from one process or aggregated over gunicorn's workers. This
module needs the ``metrics`` extra (``pip install 'sso_middleware[metrics]'``)
and is the only one that imports :mod:`prometheus_client`.

.. code-block:: python

    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from sso_middleware.metrics.prometheus import PrometheusMetrics, metrics_app

    sso = SSOMiddleware(app, ..., metrics=PrometheusMetrics())
    application = DispatcherMiddleware(sso, {"/metrics": metrics_app()})

The series and their labels:

- ``sso_tokens_minted_total{channel}``: tokens minted;
- ``sso_redemptions_total{outcome, reason}``: requests to the SSO endpoint;
- ``sso_session_resumes_total{outcome}``: requests passed on with a session
  cookie;
- ``sso_auth_failures_total{endpoint}``: failed client authentications;
- ``sso_store_duration_seconds{store, operation}``: each store (Redis) call;
- ``sso_endpoint_duration_seconds{endpoint}``: each answer of an endpoint.

The label values are those of :mod:`sso_middleware.metrics`; anything else
is counted as ``other``. No label names a user, an account, an address, a
client identifier or a token.
"""

from __future__ import annotations

import os
import typing as t

from ..exceptions import ConfigurationError
from . import (
    AUTH_ENDPOINTS,
    DENIAL_REASONS,
    ENDPOINTS,
    MINT_CHANNELS,
    REDEMPTION_OUTCOMES,
    RESUME_OUTCOMES,
    STORE_OPERATIONS,
    AuthEndpoint,
    DenialReason,
    Endpoint,
    MintChannel,
    RedemptionOutcome,
    ResumeOutcome,
    StoreName,
)

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_wsgi_app, multiprocess
except ImportError as e:
    raise ImportError(
        "sso_middleware.metrics.prometheus needs prometheus_client, which the metrics extra installs:"
        " pip install 'sso_middleware[metrics]'",
        name=e.name,
    ) from e

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: Environment variables that switch prometheus_client to multi-process mode
#: (the lower-case one is its deprecated spelling, still honoured).
MULTIPROC_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")

_OTHER = "other"


class PrometheusMetrics:
    """Counts and times the middleware's work in Prometheus metrics.

    :param registry: where the metrics are registered; by default
        prometheus_client's global ``REGISTRY``, which :func:`metrics_app`
        serves. Tests, and several deployments in one process, give each
        their own :class:`prometheus_client.CollectorRegistry` (a registry
        refuses a second set of the same names).
    :param namespace: the prefix of every metric name.

    .. code-block:: python

        metrics = PrometheusMetrics()
        app = SSOMiddleware(app, ..., metrics=metrics)

    In gunicorn's multi-process mode (``PROMETHEUS_MULTIPROC_DIR`` set
    before the first import of prometheus_client), every worker writes its
    own files and :func:`metrics_app` adds them up; the registry plays no
    part in what is served.
    """

    #: Histogram buckets of store calls, in seconds: a Redis round trip on
    #: a local network takes a fraction of a millisecond.
    store_buckets: t.ClassVar[tuple[float, ...]] = (
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
    )
    #: Histogram buckets of endpoint answers, in seconds.
    endpoint_buckets: t.ClassVar[tuple[float, ...]] = (
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
    )

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = "sso") -> None:
        #: Where the metrics are registered.
        self.registry = REGISTRY if registry is None else registry
        options: dict[str, t.Any] = {"namespace": namespace, "registry": self.registry}
        self._minted_total = Counter("tokens_minted", "Tokens minted, by channel.", ["channel"], **options)
        self._redemptions_total = Counter(
            "redemptions",
            "Requests to the SSO endpoint, by outcome; the reason class of denials.",
            ["outcome", "reason"],
            **options,
        )
        self._resumes_total = Counter(
            "session_resumes",
            "Requests passed to the application with a session cookie, by outcome.",
            ["outcome"],
            **options,
        )
        self._auth_failures_total = Counter(
            "auth_failures",
            "Failed client authentications, by endpoint (api: the admin API; token: the token endpoint).",
            ["endpoint"],
            **options,
        )
        self._store_seconds = Histogram(
            "store_duration_seconds",
            "Time of each store (Redis) call, by store and operation.",
            ["store", "operation"],
            buckets=self.store_buckets,
            **options,
        )
        self._endpoint_seconds = Histogram(
            "endpoint_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=self.endpoint_buckets,
            **options,
        )
        # Every known value's series starts at zero, so rates work from the
        # first scrape; a store call's appears with its first observation
        # (most deployments never call some).
        self._minted = {name: self._minted_total.labels(name) for name in MINT_CHANNELS}
        self._redemptions: dict[tuple[str, str], Counter] = {
            (outcome, ""): self._redemptions_total.labels(outcome, "")
            for outcome in REDEMPTION_OUTCOMES
            if outcome != "denied"
        }
        for reason in DENIAL_REASONS:
            self._redemptions["denied", reason] = self._redemptions_total.labels("denied", reason)
        self._resumes = {name: self._resumes_total.labels(name) for name in RESUME_OUTCOMES}
        self._auth_failures = {name: self._auth_failures_total.labels(name) for name in AUTH_ENDPOINTS}
        self._known_operations = {
            (store, operation) for store, operations in STORE_OPERATIONS.items() for operation in operations
        }
        self._store_children: dict[tuple[str, str], Histogram] = {}
        self._endpoint_children = {name: self._endpoint_seconds.labels(name) for name in ENDPOINTS}

    @classmethod
    def isolated(cls, *, namespace: str = "sso") -> PrometheusMetrics:
        """Metrics on a new registry of their own, which
        ``metrics_app(metrics.registry)`` serves: for a demo, or for a second
        middleware in a process whose default registry is taken."""
        return cls(CollectorRegistry(), namespace=namespace)

    def minted(self, channel: MintChannel) -> None:
        counter = self._minted.get(channel)
        (counter or self._minted_total.labels(_OTHER)).inc()

    def redeemed(self, outcome: RedemptionOutcome, reason: DenialReason | None = None) -> None:
        if outcome == "denied":
            key = ("denied", reason if reason in DENIAL_REASONS else _OTHER)
        else:
            key = (outcome if outcome in REDEMPTION_OUTCOMES else _OTHER, "")
        counter = self._redemptions.get(key)
        (counter or self._redemptions_total.labels(*key)).inc()

    def resumed(self, outcome: ResumeOutcome) -> None:
        counter = self._resumes.get(outcome)
        (counter or self._resumes_total.labels(_OTHER)).inc()

    def auth_failed(self, endpoint: AuthEndpoint) -> None:
        counter = self._auth_failures.get(endpoint)
        (counter or self._auth_failures_total.labels(_OTHER)).inc()

    def store_called(self, store: StoreName, operation: str, seconds: float) -> None:
        histogram = self._store_children.get((store, operation))
        if histogram is None:
            histogram = self._store_child(store, operation)
        histogram.observe(seconds)

    def answered(self, endpoint: Endpoint, seconds: float) -> None:
        histogram = self._endpoint_children.get(endpoint)
        if histogram is None:
            histogram = self._endpoint_seconds.labels(_OTHER)
        histogram.observe(seconds)

    def _store_child(self, store: str, operation: str) -> Histogram:
        """The series of a store call, made on its first observation; an
        unknown store or operation goes to ``other``."""
        if (store, operation) not in self._known_operations:
            return self._store_seconds.labels(store if store in STORE_OPERATIONS else _OTHER, _OTHER)
        child = self._store_seconds.labels(store, operation)
        self._store_children[store, operation] = child
        return child


def multiprocess_mode() -> bool:
    """Whether prometheus_client runs in multi-process mode in this
    process: by its own rule, if either of :data:`MULTIPROC_VARIABLES` is set."""
    return any(name in os.environ for name in MULTIPROC_VARIABLES)


def metrics_app(registry: CollectorRegistry | None = None) -> WSGIApplication:
    """The WSGI application that answers a Prometheus scrape.

    In one process it serves ``registry`` (by default prometheus_client's
    global ``REGISTRY``, that of a default :class:`PrometheusMetrics`). In
    multi-process mode (:func:`multiprocess_mode`) it serves the sum over
    every process that wrote to ``PROMETHEUS_MULTIPROC_DIR``, whatever
    ``registry`` is; that directory must exist, and be emptied before the
    server starts.

    :raises ConfigurationError: in multi-process mode, if the directory
        does not exist.
    """
    if multiprocess_mode():
        registry = CollectorRegistry()
        try:
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        except ValueError as e:
            given = next(os.environ[name] for name in MULTIPROC_VARIABLES if name in os.environ)
            raise ConfigurationError(
                f"PROMETHEUS_MULTIPROC_DIR must name an existing directory; got {given!r}"
            ) from e
    return t.cast("WSGIApplication", make_wsgi_app(REGISTRY if registry is None else registry))


def child_exit(server: t.Any, worker: t.Any) -> None:
    """gunicorn's ``child_exit`` hook for multi-process mode: a worker that
    exits has its live files removed. Set it in the gunicorn configuration
    file: ``from sso_middleware.metrics.prometheus import child_exit``."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
