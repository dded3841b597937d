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
        api_credentials={"billing": "sha256:5e88..."},
    )

    # from trusted code in the same process:
    app.create_sso_token(client_id=1, destination="clientarea:invoices")
"""

from __future__ import annotations

import typing as t
from urllib.parse import unquote

from .allowlist import AddressAllowList
from .audit import unavailable
from .credentials import APICredentials
from .destinations import Destinations
from .endpoints.admin_api import AdminAPI
from .endpoints.logout import LogoutEndpoint
from .endpoints.sso import Confirm, SingleSignOnEndpoint
from .endpoints.token import TokenEndpoint
from .exceptions import ConfigurationError
from .identity import ENVIRON_KEY
from .issuer import MAX_TTL, Id, TokenIssuer
from .oauth import CredentialManager
from .ratelimit import Limit, RateLimiter
from .sessions import SessionManager
from .stores import CounterStore, CredentialStore, Stores, TokenStore
from .urls import check_path, check_system_url
from .users import UserStore

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

def _strip_token(query: str) -> str:
    """Drop every ``access_token`` parameter from a raw query string."""
    return "&".join(
        part for part in query.split("&")
        if unquote(part.partition("=")[0]).strip() != "access_token"
    )


class SSOMiddleware:
    """Single sign-on for a WSGI application.

    :param app: the application to wrap.
    :param system_url: the public base URL of the deployment. Every redirect
        and ``redirect_url`` is built from it, never from the request's
        ``Host`` header.
    :param secret_keys: session-cookie signing keys, oldest first, each at
        least 32 bytes. Keep them out of source code.
    :param user_store: the app's accounts and users (:class:`UserStore`).
    :param stores: where tokens, sessions, rate-limit counters and OAuth
        credential sets live: ``Stores.redis(url)``, or ``Stores.memory()``
        for one development process.
    :param api_credentials: admin API identifier → ``sha256:`` hash of its
        secret. Without any, the API path is not served.
    :param api_roles: admin API identifier → the actions it may call (a
        list, or names separated by spaces), e.g. ``{"billing":
        ["CreateSsoToken"]}``; identifiers left out may call every action.
    :param api_allowed_ips: networks (CIDR, or single addresses) the admin
        API answers; calls from elsewhere get 403 ``Invalid IP <address>``.
        ``None`` (default) allows any address.
    :param destinations: the scope table, as :class:`Destinations` or a
        mapping of overrides of the reference defaults.
    :param token_ttl: token lifetime in seconds, 1 to 600 (default 60).
    :param secure_cookies: mark the cookie ``Secure`` (default). Switch off
        for plain-HTTP development only.
    :param cookie_name: see :class:`SessionManager`.
    :param idle_timeout: seconds of inactivity that end a session.
    :param absolute_timeout: seconds after which a session ends regardless.
    :param redeem_limit: failed redemptions allowed per remote address.
    :param client_auth_limit: failed client authentications allowed per
        client identifier (token endpoint and admin API).
    :param address_auth_limit: failed client authentications allowed per
        remote address.
    :param trusted_proxies: how many proxies in front of the app append to
        ``X-Forwarded-For``; 0 (default) uses ``REMOTE_ADDR``.
    :param revoke_on_replay: when a spent token is presented again, also
        end the session its first redemption started (default on).
    :param confirm: ``"never"``, ``"always"`` or ``"signed_in"``: when a
        followed link shows a confirmation button instead of signing in at
        once; see :class:`SingleSignOnEndpoint`.
    :param sso_path: path of the SSO endpoint.
    :param token_path: path of the OAuth token endpoint.
    :param api_path: path of the admin API.
    :param logout_path: path that ends the session (POST).
    :param logout_redirect: where logout sends the browser.
    :param logout_on_get: also log out on GET, for plain links. A third party
        can then log users out (not in), so it is off by default.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        system_url: str,
        secret_keys: t.Sequence[str | bytes],
        user_store: UserStore,
        stores: Stores,
        api_credentials: t.Mapping[str, str] | None = None,
        api_roles: t.Mapping[str, t.Iterable[str] | str] | None = None,
        api_allowed_ips: t.Iterable[str] | str | None = None,
        destinations: Destinations | t.Mapping[str, str | None] | None = None,
        token_ttl: int = 60,
        secure_cookies: bool = True,
        cookie_name: str | None = None,
        idle_timeout: int = 30 * 60,
        absolute_timeout: int = 12 * 60 * 60,
        redeem_limit: Limit = Limit(100, 600),
        client_auth_limit: Limit = Limit(20, 60),
        address_auth_limit: Limit = Limit(100, 600),
        trusted_proxies: int = 0,
        revoke_on_replay: bool = True,
        confirm: Confirm = "never",
        sso_path: str = "/oauth/singlesignon.php",
        token_path: str = "/oauth/token.php",
        api_path: str = "/includes/api.php",
        logout_path: str = "/logout",
        logout_redirect: str = "/",
        logout_on_get: bool = False,
    ):
        for name, value, protocol in (
            ("user_store", user_store, UserStore),
            ("stores.tokens", stores.tokens, TokenStore),
            ("stores.counters", stores.counters, CounterStore),
            ("stores.credentials", stores.credentials, CredentialStore),
        ):
            if not isinstance(value, protocol):
                raise ConfigurationError(f"{name} must implement {protocol.__name__}; got {value!r}")
        if type(token_ttl) is not int or not 0 < token_ttl <= MAX_TTL:
            raise ConfigurationError(f"token_ttl must be whole seconds from 1 to {MAX_TTL}; got {token_ttl!r}")
        if type(trusted_proxies) is not int or trusted_proxies < 0:
            raise ConfigurationError(f"trusted_proxies must be a whole number >= 0; got {trusted_proxies!r}")
        if not isinstance(destinations, Destinations):
            destinations = Destinations(destinations)
        self.app = app
        self.system_url = check_system_url(system_url, secure_cookies)
        self.sessions = SessionManager(
            stores.tokens, secret_keys, idle_timeout=idle_timeout,
            absolute_timeout=absolute_timeout, secure=secure_cookies, cookie_name=cookie_name,
        )
        sso_path = check_path("sso_path", sso_path)
        self.issuer = TokenIssuer(stores.tokens, self.sessions.sealer, user_store, destinations,
                                  sso_url=self.system_url + sso_path, ttl=token_ttl)
        self.credentials = CredentialManager(stores.credentials, user_store, destinations,
                                             self.sessions.sealer)
        client_limiter = RateLimiter(stores.counters, client_auth_limit, "auth-client")
        address_limiter = RateLimiter(stores.counters, address_auth_limit, "auth-address")
        paths: dict[str, WSGIApplication] = {
            sso_path: SingleSignOnEndpoint(
                user_store, self.sessions, system_url=self.system_url,
                ttl=token_ttl, limiter=RateLimiter(stores.counters, redeem_limit, "redeem"),
                trusted_proxies=trusted_proxies, revoke_on_replay=revoke_on_replay,
                confirm=confirm),
            check_path("token_path", token_path): TokenEndpoint(
                self.issuer, self.credentials, client_limiter=client_limiter,
                address_limiter=address_limiter, trusted_proxies=trusted_proxies),
            check_path("logout_path", logout_path): LogoutEndpoint(
                self.sessions, allow_get=logout_on_get,
                redirect_url=self.system_url + check_path("logout_redirect", logout_redirect, endpoint=False)),
        }
        if api_credentials:
            paths[check_path("api_path", api_path)] = AdminAPI(
                self.issuer, APICredentials(api_credentials, api_roles), self.credentials,
                self.sessions, client_limiter=client_limiter, address_limiter=address_limiter,
                trusted_proxies=trusted_proxies,
                allowed_addresses=None if api_allowed_ips is None else AddressAllowList(api_allowed_ips))
        elif api_roles or api_allowed_ips is not None:
            raise ConfigurationError("api_roles and api_allowed_ips need api_credentials: without"
                                     " credentials the admin API is not served")
        if len(paths) < 3 + bool(api_credentials):
            raise ConfigurationError("sso_path, token_path, api_path and logout_path must differ")
        self.endpoints = paths

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
            session = self.sessions.resume(cookie)
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

    def create_sso_token(
        self,
        *,
        client_id: Id = None,
        user_id: Id = None,
        destination: str | None = None,
        service_id: Id = None,
        domain_id: Id = None,
        sso_redirect_path: str | None = None,
    ) -> dict[str, str]:
        """``CreateSsoToken`` from Python; see :meth:`TokenIssuer.create_sso_token`."""
        return self.issuer.create_sso_token(
            client_id=client_id, user_id=user_id, destination=destination,
            service_id=service_id, domain_id=domain_id, sso_redirect_path=sso_redirect_path,
        )
