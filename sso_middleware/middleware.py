"""
The middleware
==============

:class:`SSOMiddleware` wraps any WSGI application. It answers four paths
itself (the SSO endpoint, the token endpoint, the admin API and logout) and
passes every other request through, with the signed-in identity in the environ.

.. code-block:: python

    from sso_middleware import SSOMiddleware, Stores

    app = SSOMiddleware(
        app,
        system_url="https://portal.example.com",
        secret_keys=[os.environ["SSO_SECRET_KEY"]],
        user_store=MyUserStore(),
        stores=Stores.redis("redis://localhost:6379/0"),
        api=AdminAPIOptions(credentials={"billing": "sha256:5e88..."}),
    )

    # from trusted code in the same process:
    app.create_sso_token(client_id=1, destination="clientarea:invoices")
"""

from __future__ import annotations

import typing as t
from urllib.parse import unquote

from .audit import unavailable
from .destinations import Destinations
from .endpoints.admin_api import AdminAPI
from .endpoints.logout import LogoutEndpoint
from .endpoints.sso import SingleSignOnEndpoint
from .endpoints.token import TokenEndpoint
from .exceptions import ConfigurationError
from .identity import ENVIRON_KEY
from .issuer import MintRequest, TokenIssuer
from .metrics import NO_METRICS, Endpoint, Metrics
from .metrics.instrument import ObservedResumes, TimedEndpoint, timed_stores
from .oauth import CredentialManager
from .options import AdminAPIOptions, Limits, Paths, RedemptionOptions, SessionOptions
from .ratelimit import AuthFailures, RateLimiter
from .sessions import SessionManager
from .stores import CounterStore, CredentialStore, Stores, TokenStore
from .urls import check_system_url
from .users import UserStore

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def _strip_token(query: str) -> str:
    """Drop every ``access_token`` parameter from a raw query string."""
    return "&".join(
        part for part in query.split("&") if unquote(part.partition("=")[0]).strip() != "access_token"
    )


class SSOMiddleware:
    """Single sign-on for a WSGI application.

    :param app: the application to wrap.
    :param system_url: the public base URL of the deployment. Every redirect
        and ``redirect_url`` is built from it, never from the request's
        ``Host`` header.
    :param secret_keys: signing keys of cookies and of the records in the
        store, oldest first, each at least 32 bytes. Keep them out of source
        code.
    :param user_store: the app's accounts and users (:class:`UserStore`).
    :param stores: where tokens, sessions, rate-limit counters and OAuth
        credential sets live: ``Stores.redis(url)``, or ``Stores.memory()``
        for one development process.
    :param destinations: the scope table, as :class:`Destinations` or a
        mapping of overrides of the reference defaults.
    :param api: the admin API's credentials, roles and allowed networks
        (:class:`~sso_middleware.options.AdminAPIOptions`); without it the
        API path is not served.
    :param sessions: timeouts and cookie (:class:`~sso_middleware.options.SessionOptions`).
    :param redemption: token lifetime, replay and confirmation policy
        (:class:`~sso_middleware.options.RedemptionOptions`).
    :param limits: rate limits and trusted proxies (:class:`~sso_middleware.options.Limits`).
    :param paths: where the endpoints answer (:class:`~sso_middleware.options.Paths`).
    :param clock: returns UNIX time, for every part that reads the time;
        tests drive time through it. By default sessions and tokens read
        :func:`time.time` and rate limits :func:`time.monotonic`.
    :param metrics: where to report counts and timings (a
        :class:`~sso_middleware.metrics.Metrics`, such as
        :class:`~sso_middleware.metrics.prometheus.PrometheusMetrics`).
        Without it nothing is measured and no request does any extra work;
        with it the stores and endpoints are wrapped to be timed (see
        :mod:`sso_middleware.metrics.instrument`).

    The endpoints are built from the class attributes below; a subclass may
    replace any of them, e.g. with an :class:`AdminAPI` subclass that adds
    actions.
    """

    #: Answers the SSO path.
    sso_endpoint_class: t.ClassVar[type[SingleSignOnEndpoint]] = SingleSignOnEndpoint
    #: Answers the token path.
    token_endpoint_class: t.ClassVar[type[TokenEndpoint]] = TokenEndpoint
    #: Answers the admin API path.
    admin_api_class: t.ClassVar[type[AdminAPI]] = AdminAPI
    #: Answers the logout path.
    logout_endpoint_class: t.ClassVar[type[LogoutEndpoint]] = LogoutEndpoint

    def __init__(
        self,
        app: WSGIApplication,
        *,
        system_url: str,
        secret_keys: t.Sequence[str | bytes],
        user_store: UserStore,
        stores: Stores,
        destinations: Destinations | t.Mapping[str, str | None] | None = None,
        api: AdminAPIOptions | None = None,
        sessions: SessionOptions = SessionOptions(),
        redemption: RedemptionOptions = RedemptionOptions(),
        limits: Limits = Limits(),
        paths: Paths = Paths(),
        clock: t.Callable[[], float] | None = None,
        metrics: Metrics | None = None,
    ):
        for name, value, expected in (
            ("user_store", user_store, UserStore),
            ("stores.tokens", stores.tokens, TokenStore),
            ("stores.counters", stores.counters, CounterStore),
            ("stores.credentials", stores.credentials, CredentialStore),
        ):
            if not isinstance(value, expected):
                raise ConfigurationError(f"{name} must implement {expected.__name__}; got {value!r}")
        for group, given, cls in (
            ("api", AdminAPIOptions() if api is None else api, AdminAPIOptions),
            ("sessions", sessions, SessionOptions),
            ("redemption", redemption, RedemptionOptions),
            ("limits", limits, Limits),
            ("paths", paths, Paths),
        ):
            if not isinstance(given, cls):
                raise ConfigurationError(f"{group} must be a {cls.__name__}; got {given!r}")
        if metrics is not None and not isinstance(metrics, Metrics):
            raise ConfigurationError(
                f"metrics must implement Metrics (minted, redeemed, resumed, auth_failed, store_called,"
                f" answered); got {metrics!r}"
            )
        if not isinstance(destinations, Destinations):
            destinations = Destinations(destinations)
        self.app = app
        self.system_url = check_system_url(system_url, sessions.secure)
        #: Where counts and timings go; a no-op without ``metrics``.
        self.metrics: Metrics = NO_METRICS if metrics is None else metrics
        if metrics is not None:
            stores = timed_stores(stores, metrics)
        timing: dict[str, t.Any] = {} if clock is None else {"clock": clock}
        self.sessions = SessionManager(stores.tokens, secret_keys, sessions, **timing)
        #: Resumes the sessions of passing requests: the session manager
        #: itself, or with ``metrics`` a wrapper that reports each outcome,
        #: chosen here so that a signed-in request checks nothing.
        self.resumer: SessionManager | ObservedResumes = (
            self.sessions if metrics is None else ObservedResumes(self.sessions, metrics)
        )
        self.issuer = TokenIssuer(
            stores.tokens,
            self.sessions.sealer,
            user_store,
            destinations,
            sso_url=self.system_url + paths.sso,
            ttl=redemption.token_ttl,
            **timing,
        )
        self.oauth_credentials = CredentialManager(
            stores.credentials, user_store, destinations, self.sessions.sealer
        )
        auth_failures = AuthFailures(
            RateLimiter(stores.counters, limits.client_auth, "auth-client", **timing),
            RateLimiter(stores.counters, limits.address_auth, "auth-address", **timing),
        )
        # Only given when measuring: an endpoint subclass written before
        # metrics existed keeps working.
        counting: dict[str, t.Any] = {} if metrics is None else {"metrics": metrics}
        endpoints: dict[Endpoint, tuple[str, WSGIApplication]] = {
            "sso": (
                paths.sso,
                self.sso_endpoint_class(
                    user_store,
                    self.sessions,
                    system_url=self.system_url,
                    options=redemption,
                    limiter=RateLimiter(stores.counters, limits.redeem, "redeem", **timing),
                    trusted_proxies=limits.trusted_proxies,
                    **timing,
                    **counting,
                ),
            ),
            "token": (
                paths.token,
                self.token_endpoint_class(
                    self.issuer,
                    self.oauth_credentials,
                    auth_failures=auth_failures,
                    trusted_proxies=limits.trusted_proxies,
                    **counting,
                ),
            ),
            "logout": (
                paths.logout,
                self.logout_endpoint_class(
                    self.sessions,
                    allow_get=sessions.logout_on_get,
                    redirect_url=self.system_url + paths.logout_redirect,
                ),
            ),
        }
        if api is not None and api.credentials:
            endpoints["api"] = (
                paths.api,
                self.admin_api_class(
                    self.issuer,
                    api.api_keys,
                    self.oauth_credentials,
                    self.sessions,
                    auth_failures=auth_failures,
                    trusted_proxies=limits.trusted_proxies,
                    allowed_addresses=api.allow_list,
                    **counting,
                ),
            )
        #: Path → the endpoint that answers it (timed, with ``metrics``).
        self.endpoints: dict[str, WSGIApplication] = {
            path: endpoint if metrics is None else TimedEndpoint(name, endpoint, metrics)
            for name, (path, endpoint) in endpoints.items()
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        endpoint = self.endpoints.get(environ.get("PATH_INFO", ""))
        if endpoint is not None:
            return endpoint(environ, start_response)
        self.identify(environ)
        return self.app(environ, start_response)

    def identify(self, environ: WSGIEnvironment) -> None:
        """Prepare a passing request: remove any token from its query and
        any identity set before us, then set the session's, if one is live."""
        environ.pop("REMOTE_USER", None)
        environ.pop(ENVIRON_KEY, None)
        query = environ.get("QUERY_STRING")
        if query and ("access" in query or "%" in query):
            environ["QUERY_STRING"] = _strip_token(query)
            for key in ("REQUEST_URI", "RAW_URI"):
                if key in environ:
                    path, _, raw_query = environ[key].partition("?")
                    environ[key] = path + "?" + _strip_token(raw_query)
        cookie = self.sessions.read_cookie(environ)
        if not cookie:
            return
        try:
            session = self.resumer.resume(cookie)
        except Exception as e:  # a store outage or a bug: fail closed, as anonymous
            unavailable("Session lookup (request passed on anonymous)", e)
            return
        if session is not None:
            environ["REMOTE_USER"] = str(session.identity.user_id)
            environ[ENVIRON_KEY] = session.identity

    def end_sessions(self, client_id: int | None = None, *, user_id: int | None = None) -> None:
        """End every session of an account, of a user, or of both, at once,
        wherever their cookies are, and the sign-ons of links minted for
        them so far.

        Call it for an account when it is closed or switches single sign-on
        off; for a user when the user is removed from an account, changes
        their password, switches single sign-on off or may be compromised.
        Call it once the user store answers with the new state (else a
        sign-on in between could start after it). Raises
        :class:`~sso_middleware.exceptions.StoreUnavailable`."""
        self.sessions.end_sessions(client_id=client_id, user_id=user_id, actor="python")

    def create_sso_token(self, **inputs: t.Any) -> dict[str, str]:
        """``CreateSsoToken`` from Python. The inputs are the fields of
        :class:`~sso_middleware.issuer.MintRequest` (``client_id``,
        ``user_id``, ``destination``, ``service_id``, ``domain_id``,
        ``sso_redirect_path``); see :meth:`TokenIssuer.create_sso_token`.

        :raises TypeError: for a name that is no input."""
        result = self.issuer.create_sso_token(MintRequest(**inputs))
        if result["result"] == "success":
            self.metrics.minted("python")
        return result
