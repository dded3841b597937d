"""
Options
=======

The middleware's settings, in a few frozen dataclasses that check themselves
when made, as :class:`~sso_middleware.ratelimit.Limit` does. Each option is
defined once, here: :class:`~sso_middleware.SSOMiddleware` takes the groups,
the ini pipeline reads the same fields under the flat names in
:func:`ini_fields` (``idle_timeout``, ``secure_cookies``, ``redeem_limit``,
...), and the reference documentation is built from these docstrings.

.. code-block:: python

    SSOMiddleware(
        app, system_url=..., secret_keys=..., user_store=..., stores=...,
        api=AdminAPIOptions(credentials={"billing": "sha256:…"},
                            roles={"billing": ["CreateSsoToken"]}),
        sessions=SessionOptions(idle_timeout=15 * 60),
        limits=Limits(trusted_proxies=1),
    )
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from .allowlist import AddressAllowList
from .credentials import APICredentials
from .exceptions import ConfigurationError
from .ratelimit import Limit
from .urls import check_path

#: Longest lifetime of a token, in seconds.
MAX_TTL = 600

#: Longest a session may last, in seconds (a year, leap years included);
#: also the longest any end time is kept.
MAX_TIMEOUT = 366 * 24 * 60 * 60

#: Longest revocation delay a deployment may choose, in seconds.
MAX_REVOCATION_DELAY = 60

#: When a followed link shows a confirmation page instead of signing in.
Confirm = t.Literal["never", "always", "signed_in"]
CONFIRM_MODES: tuple[str, ...] = t.get_args(Confirm)

#: A cookie name browsers read as written (RFC 6265 token).
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_bool(text: str) -> bool:
    """``true``/``false`` (or yes/no, on/off, 1/0, in any case); anything
    else raises :exc:`ValueError`, so that a typo never turns a setting off."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"not true or false: {text!r}")


def _ini(name: str, *, lines: bool = False) -> dict[str, t.Any]:
    """Field metadata: the option's name in an ini file, and whether it is
    written as ``name = value`` lines."""
    return {"ini": name, "lines": lines}


def _flag(name: str, value: object) -> None:
    """A switch must be a bool: ``"false"`` is a true string."""
    if type(value) is not bool:
        raise ConfigurationError(f"{name} must be True or False; got {value!r}")


def _whole(name: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise ConfigurationError(f"{name} must be whole seconds from {low} to {high}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class SessionOptions:
    """The session that a sign-on starts, and its cookie."""

    #: Seconds without a request that end a session.
    idle_timeout: int = 30 * 60
    #: Seconds after sign-on that end a session however active (at most a year).
    absolute_timeout: int = 12 * 60 * 60
    #: Mark the cookie ``Secure``. Switch off for plain-HTTP development only.
    secure: bool = dataclasses.field(default=True, metadata=_ini("secure_cookies"))
    #: The cookie's name; ``None`` for ``__Host-sso_session`` (``sso_session``
    #: without ``secure``, since browsers drop ``__Host-`` cookies that are not).
    cookie_name: str | None = None
    #: Also log out on GET, for plain links. A third party can then log users
    #: out (not in), so it is off by default.
    logout_on_get: bool = False
    #: Seconds an account's or a user's revocation (``end_sessions()``,
    #: ``EndSsoSessions``) made elsewhere (another process, or another
    #: middleware in this one) may take to reach this middleware. 0
    #: (default): every signed-in request reads the end times, exact. With a
    #: delay, the middleware reads them at most once per that many seconds
    #: for a user and account (timed on a monotonic clock), and a signed-in
    #: request is otherwise a single ``GETEX``. Logout, a replayed link and
    #: revocations made through this middleware still take effect at once.
    revocation_delay: int = 0

    def __post_init__(self) -> None:
        _flag("secure", self.secure)
        _flag("logout_on_get", self.logout_on_get)
        _whole("absolute_timeout", self.absolute_timeout, 1, MAX_TIMEOUT)
        _whole("idle_timeout", self.idle_timeout, 1, self.absolute_timeout)
        _whole("revocation_delay", self.revocation_delay, 0, MAX_REVOCATION_DELAY)
        if self.cookie_name is None:
            return
        if not isinstance(self.cookie_name, str) or not _COOKIE_NAME.fullmatch(self.cookie_name):
            raise ConfigurationError(
                f"cookie_name {self.cookie_name!r} must be a non-empty token of letters, digits"
                " and !#$%&'*+-.^_`|~ (RFC 6265), or browsers would read another cookie"
            )
        if self.cookie_name.startswith(("__Host-", "__Secure-")) and not self.secure:
            raise ConfigurationError(
                f"cookie_name {self.cookie_name!r}: browsers drop __Host-/__Secure- cookies"
                " without Secure; choose another name or keep secure on"
            )

    @property
    def cookie(self) -> str:
        """The cookie name in use."""
        if self.cookie_name is not None:
            return self.cookie_name
        return "__Host-sso_session" if self.secure else "sso_session"


@dataclasses.dataclass(frozen=True)
class RedemptionOptions:
    """How tokens are minted and redeemed."""

    #: Token lifetime in seconds, 1 to 600.
    token_ttl: int = 60
    #: When a spent token is presented again, also end the session its first
    #: redemption started.
    revoke_on_replay: bool = True
    #: ``"never"``: a followed link signs in at once. ``"always"``: it shows
    #: a "Continue" button that POSTs (for links sent by mail or chat, which
    #: scanners open). ``"signed_in"``: only when the browser already has a
    #: session.
    confirm: Confirm = "never"

    def __post_init__(self) -> None:
        _whole("token_ttl", self.token_ttl, 1, MAX_TTL)
        _flag("revoke_on_replay", self.revoke_on_replay)
        if self.confirm not in CONFIRM_MODES:
            raise ConfigurationError(
                f"confirm must be one of {', '.join(CONFIRM_MODES)}; got {self.confirm!r}"
            )


@dataclasses.dataclass(frozen=True)
class Limits:
    """Rate limits of failures, and where a request's address comes from."""

    #: Failed redemptions allowed per remote address.
    redeem: Limit = dataclasses.field(default=Limit(100, 600), metadata=_ini("redeem_limit"))
    #: Failed client authentications allowed per client identifier (token
    #: endpoint and admin API).
    client_auth: Limit = dataclasses.field(default=Limit(20, 60), metadata=_ini("client_auth_limit"))
    #: Failed client authentications allowed per remote address.
    address_auth: Limit = dataclasses.field(default=Limit(100, 600), metadata=_ini("address_auth_limit"))
    #: How many proxies in front of the app append to ``X-Forwarded-For``;
    #: 0 uses ``REMOTE_ADDR``. Limits, audit lines and ``api_allowed_ips`` see
    #: the address the outermost trusted proxy saw.
    trusted_proxies: int = 0

    def __post_init__(self) -> None:
        for name in ("redeem", "client_auth", "address_auth"):
            if not isinstance(getattr(self, name), Limit):
                raise ConfigurationError(
                    f"{name} must be a Limit(attempts, seconds); got {getattr(self, name)!r}"
                )
        if type(self.trusted_proxies) is not int or self.trusted_proxies < 0:
            raise ConfigurationError(
                f"trusted_proxies must be a whole number >= 0; got {self.trusted_proxies!r}"
            )


@dataclasses.dataclass(frozen=True)
class Paths:
    """Where the middleware's own endpoints answer."""

    #: The SSO endpoint, where links are followed.
    sso: str = dataclasses.field(default="/oauth/singlesignon.php", metadata=_ini("sso_path"))
    #: The OAuth token endpoint.
    token: str = dataclasses.field(default="/oauth/token.php", metadata=_ini("token_path"))
    #: The admin API (served only with ``api`` credentials).
    api: str = dataclasses.field(default="/includes/api.php", metadata=_ini("api_path"))
    #: POST ends the session server-side and clears the cookie.
    logout: str = dataclasses.field(default="/logout", metadata=_ini("logout_path"))
    #: Where logout sends the browser.
    logout_redirect: str = "/"

    def __post_init__(self) -> None:
        endpoints = {name: getattr(self, name) for name in ("sso", "token", "api", "logout")}
        for name, path in endpoints.items():
            check_path(f"{name}_path", path)
        check_path("logout_redirect", self.logout_redirect, endpoint=False)
        if len(set(endpoints.values())) < len(endpoints):
            raise ConfigurationError("sso_path, token_path, api_path and logout_path must differ")


@dataclasses.dataclass(frozen=True)
class AdminAPIOptions:
    """Who may call the admin API, from where, and which actions. Without
    credentials the API path is not served."""

    #: Identifier → ``sha256:`` hash of its secret (``sso-middleware hash-secret``).
    credentials: t.Mapping[str, str] = dataclasses.field(
        default_factory=dict, repr=False, metadata=_ini("api_credentials", lines=True)
    )
    #: Identifier → the only actions it may call (a list, or names separated
    #: by spaces), e.g. ``{"billing": ["CreateSsoToken"]}``; identifiers left
    #: out may call every action.
    roles: t.Mapping[str, t.Iterable[str] | str] | None = dataclasses.field(
        default=None, metadata=_ini("api_roles", lines=True)
    )
    #: Networks (CIDR) and addresses the API answers, as a list or one string
    #: separated by spaces or commas; other callers get 403 ``Invalid IP
    #: <address>``. ``None`` allows any address.
    allowed_ips: t.Iterable[str] | str | None = dataclasses.field(
        default=None, metadata=_ini("api_allowed_ips")
    )

    def __post_init__(self) -> None:
        if not isinstance(self.credentials, t.Mapping):
            raise ConfigurationError(
                f"credentials must map identifiers to sha256: hashes; got {self.credentials!r}"
            )
        if not self.credentials and (self.roles or self.allowed_ips is not None):
            raise ConfigurationError(
                "api_roles and api_allowed_ips need api_credentials: without"
                " credentials the admin API is not served"
            )
        # built (and so checked) once, here
        object.__setattr__(self, "api_keys", APICredentials(self.credentials, self.roles))
        allow_list = None if self.allowed_ips is None else AddressAllowList(self.allowed_ips)
        object.__setattr__(self, "allow_list", allow_list)

    #: The credentials and their roles, checked.
    api_keys: APICredentials = dataclasses.field(init=False, repr=False, compare=False)
    #: The allowed networks, or ``None`` for any address.
    allow_list: AddressAllowList | None = dataclasses.field(init=False, repr=False, compare=False)


#: The option groups, as :class:`~sso_middleware.SSOMiddleware` takes them.
GROUPS: dict[str, type] = {
    "api": AdminAPIOptions,
    "sessions": SessionOptions,
    "redemption": RedemptionOptions,
    "limits": Limits,
    "paths": Paths,
}


def ini_fields() -> dict[str, tuple[str, dataclasses.Field[t.Any]]]:
    """Every option's ini name → (its group's keyword, its field)."""
    return {
        field.metadata.get("ini", field.name): (group, field)
        for group, cls in GROUPS.items()
        for field in dataclasses.fields(cls)
        if field.init  # not what a group derives from its options
    }


def by_ini_names(values: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """Options given by their ini names, already of their types, as the
    :class:`~sso_middleware.SSOMiddleware` keyword arguments that hold them:
    ``{"idle_timeout": 900, "redeem_limit": Limit(5, 60)}`` gives
    ``{"sessions": SessionOptions(idle_timeout=900), "limits": Limits(redeem=Limit(5, 60))}``.

    :raises ConfigurationError: for a name that is no option, or a value the
        option refuses.
    """
    fields = ini_fields()
    groups: dict[str, dict[str, t.Any]] = {}
    for name, value in values.items():
        if name not in fields:
            raise ConfigurationError(f"no option is called {name!r}; the options are {', '.join(fields)}")
        group, field = fields[name]
        groups.setdefault(group, {})[field.name] = value
    return {group: GROUPS[group](**given) for group, given in groups.items()}
