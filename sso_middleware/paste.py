"""
PasteDeploy
===========

Configure the middleware in an ini pipeline:

.. code-block:: ini

    [pipeline:main]
    pipeline = sso portal

    [filter:sso]
    use = egg:sso_middleware#sso
    system_url = https://portal.example.com
    redis_url = redis://localhost:6379/0
    secret_key_file = /etc/portal/sso-keys
    user_store = portal.accounts:user_store
    destinations =
        clientarea:invoices = /billing
        clientarea:product_details = /services/{service_id}
    api_credentials =
        billing = sha256:5e88…

Every setting is parsed strictly, once, at start-up: an unknown key, a bad
boolean, integer or limit, or a missing required setting raises
:class:`~sso_middleware.ConfigurationError` naming the setting and the fix.

========================  ==========================================================
``system_url``            required
``redis_url``             a single Redis (``redis://``, ``rediss://``, ``unix://``); ``memory:``
                          for one development process; or
``redis_sentinels``       ``host:port`` of each sentinel, with ``redis_service``; or
``redis_cluster_nodes``   ``host:port`` of some Redis Cluster nodes
``redis_username``, ``redis_password_env``, ``redis_ssl``, ``redis_ssl_ca_certs``   ACL user,
                          the environment variable holding its password, TLS and its CA file
``redis_sentinel_username``, ``redis_sentinel_password_env``   the sentinels' own ACL user
``redis_prefix``          key prefix (default ``sso:v1:``)
``redis_wait``            ``replicas/milliseconds``: every mint and burn waits for replicas
``secret_keys``           whitespace-separated signing keys, oldest first; or
``secret_key_file``       a file with one key per line; or
``secret_keys_env``       the name of an environment variable holding them
``user_store``            ``package.module:factory``, called with no arguments
``api_credentials``       lines of ``identifier = sha256:…`` (admin API)
``destinations``          lines of ``scope = path template`` (an empty path disables the scope)
``home``                  the path for tokens without a destination
``token_ttl``, ``idle_timeout``, ``absolute_timeout``, ``trusted_proxies``   whole numbers
``secure_cookies``, ``logout_on_get``, ``revoke_on_replay``   ``true`` or ``false``
``confirm``               ``never``, ``always`` or ``signed_in``
``cookie_name``, ``sso_path``, ``token_path``, ``api_path``, ``logout_path``, ``logout_redirect``
``redeem_limit``, ``client_auth_limit``, ``address_auth_limit``   ``attempts/seconds``, e.g. ``100/600``
========================  ==========================================================
"""

from __future__ import annotations

import importlib
import os
import typing as t

from .destinations import Destinations
from .exceptions import ConfigurationError
from .middleware import SSOMiddleware
from .ratelimit import Limit
from .stores import Stores

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

_STRINGS = ("cookie_name", "sso_path", "token_path", "api_path", "logout_path", "logout_redirect",
            "confirm")
_INTEGERS = ("token_ttl", "idle_timeout", "absolute_timeout", "trusted_proxies")
_BOOLEANS = ("secure_cookies", "logout_on_get", "revoke_on_replay")
_LIMITS = ("redeem_limit", "client_auth_limit", "address_auth_limit")
_REDIS = ("redis_url", "redis_sentinels", "redis_service", "redis_cluster_nodes", "redis_username",
          "redis_password_env", "redis_ssl", "redis_ssl_ca_certs", "redis_sentinel_username",
          "redis_sentinel_password_env", "redis_prefix", "redis_wait")
_OTHERS = ("system_url", "secret_keys", "secret_key_file", "secret_keys_env", "user_store", "home",
           "api_credentials", "destinations") + _REDIS
KNOWN = frozenset(_STRINGS + _INTEGERS + _BOOLEANS + _LIMITS + _OTHERS)


def as_bool(name: str, value: str) -> bool:
    """``true``/``false`` (or yes/no, on/off, 1/0); anything else is an error,
    so that a typo never turns a security setting off."""
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ConfigurationError(f"{name} = {value!r}: write true or false")


def as_int(name: str, value: str) -> int:
    """A whole number written in decimal digits."""
    if not value.strip().isdigit():
        raise ConfigurationError(f"{name} = {value!r}: write a whole number, like 60")
    return int(value)


def as_limit(name: str, value: str) -> Limit:
    """``attempts/seconds``."""
    attempts, sep, window = value.partition("/")
    if not sep:
        raise ConfigurationError(f"{name} = {value!r}: write attempts/seconds, like 100/600")
    return Limit(as_int(name, attempts), as_int(name, window))


def load(name: str, dotted: str) -> t.Any:
    """Import ``package.module:attribute``."""
    module_name, sep, attribute = dotted.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"{name} = {dotted!r}: write package.module:factory")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigurationError(f"{name} = {dotted!r}: cannot load it ({e})") from None


def as_mapping(name: str, value: str) -> dict[str, str]:
    """Lines of ``key = value``; ini files cannot use ``:`` in keys, so
    scopes are listed inside one setting."""
    mapping = {}
    for line in value.strip().splitlines():
        key, sep, item = line.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"{name}: write one 'name = value' per line, not {line.strip()!r}")
        mapping[key.strip()] = item.strip()
    return mapping


def secret_keys(settings: t.Mapping[str, str]) -> list[str]:
    """The signing keys from exactly one of the three sources."""
    given = [k for k in ("secret_keys", "secret_key_file", "secret_keys_env") if k in settings]
    if len(given) != 1:
        raise ConfigurationError(
            "set exactly one of secret_keys, secret_key_file or secret_keys_env"
            f" (got {', '.join(given) or 'none'}); a file or an environment variable keeps"
            " keys out of the ini")
    source = given[0]
    if source == "secret_key_file":
        try:
            with open(settings[source], encoding="utf-8") as file:
                text = file.read()
        except OSError as e:
            raise ConfigurationError(f"secret_key_file: cannot read it ({e.strerror})") from None
    elif source == "secret_keys_env":
        if settings[source] not in os.environ:
            raise ConfigurationError(f"secret_keys_env: environment variable {settings[source]} is not set")
        text = os.environ[settings[source]]
    else:
        text = settings[source]
    return text.split()


def as_addresses(name: str, value: str) -> list[tuple[str, int]]:
    """Whitespace-separated ``host:port`` pairs."""
    addresses = []
    for item in value.split():
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigurationError(f"{name}: write host:port pairs, not {item!r}")
        addresses.append((host.strip("[]"), int(port)))
    if not addresses:
        raise ConfigurationError(f"{name}: give at least one host:port")
    return addresses


def _credentials(settings: t.Mapping[str, str], user: str, password_env: str) -> dict[str, t.Any]:
    """An ACL user and the password from an environment variable."""
    found: dict[str, t.Any] = {}
    if user in settings:
        found["username"] = settings[user].strip()
    if password_env in settings:
        variable = settings[password_env].strip()
        if variable not in os.environ:
            raise ConfigurationError(f"{password_env}: environment variable {variable} is not set")
        found["password"] = os.environ[variable]
    return found


def stores(settings: t.Mapping[str, str]) -> Stores:
    """The stores from exactly one of ``redis_url``, ``redis_sentinels`` (with
    ``redis_service``) or ``redis_cluster_nodes``."""
    from .stores import redis as impl

    given = [k for k in ("redis_url", "redis_sentinels", "redis_cluster_nodes") if settings.get(k, "").strip()]
    if len(given) != 1:
        raise ConfigurationError(
            "set exactly one of redis_url (a single Redis, or memory: for development),"
            f" redis_sentinels (with redis_service) or redis_cluster_nodes; got {', '.join(given) or 'none'}")
    if settings.get("redis_url", "").strip() == "memory:":
        return Stores.memory()
    auth = _credentials(settings, "redis_username", "redis_password_env")
    if "redis_ssl" in settings and as_bool("redis_ssl", settings["redis_ssl"]):
        auth["ssl"] = True
        if "redis_ssl_ca_certs" in settings:
            auth["ssl_ca_certs"] = settings["redis_ssl_ca_certs"].strip()
    if given[0] == "redis_url":
        client: t.Any = impl.connect(settings["redis_url"].strip(), **auth)
    elif given[0] == "redis_sentinels":
        service = settings.get("redis_service", "").strip()
        if not service:
            raise ConfigurationError("redis_service (the monitored master's name) goes with redis_sentinels")
        client = impl.connect_sentinel(
            as_addresses("redis_sentinels", settings["redis_sentinels"]), service,
            sentinel_kwargs=_credentials(settings, "redis_sentinel_username", "redis_sentinel_password_env"),
            **auth)
    else:
        client = impl.connect_cluster(as_addresses("redis_cluster_nodes", settings["redis_cluster_nodes"]),
                                      **auth)
    wait = None
    if "redis_wait" in settings:
        replicas, sep, milliseconds = settings["redis_wait"].partition("/")
        if not sep:
            raise ConfigurationError(
                f"redis_wait = {settings['redis_wait']!r}: write replicas/milliseconds, like 1/50")
        wait = (as_int("redis_wait", replicas), as_int("redis_wait", milliseconds))
    return Stores.redis(client, prefix=settings.get("redis_prefix"), wait=wait)


def options(settings: t.Mapping[str, str]) -> dict[str, t.Any]:
    """Turn ini settings into :class:`SSOMiddleware` keyword arguments."""
    unknown = sorted(k for k in settings if k not in KNOWN)
    if unknown:
        raise ConfigurationError(
            f"unknown setting {unknown[0]!r} in the sso filter; known: {', '.join(sorted(KNOWN))}")
    for required in ("system_url", "user_store"):
        if not settings.get(required, "").strip():
            raise ConfigurationError(f"{required} is required in the sso filter")
    result: dict[str, t.Any] = {
        "system_url": settings["system_url"].strip(),
        "stores": stores(settings),
        "secret_keys": secret_keys(settings),
        "user_store": load("user_store", settings["user_store"])(),
        "api_credentials": as_mapping("api_credentials", settings.get("api_credentials", "")),
        "destinations": Destinations(
            {scope: path or None
             for scope, path in as_mapping("destinations", settings.get("destinations", "")).items()},
            **({"home": settings["home"].strip()} if "home" in settings else {})),
    }
    result.update({k: settings[k].strip() for k in _STRINGS if k in settings})
    result.update({k: as_int(k, settings[k]) for k in _INTEGERS if k in settings})
    result.update({k: as_bool(k, settings[k]) for k in _BOOLEANS if k in settings})
    result.update({k: as_limit(k, settings[k]) for k in _LIMITS if k in settings})
    return result


def filter_factory(global_conf: t.Mapping[str, str], **settings: str
                   ) -> t.Callable[[WSGIApplication], SSOMiddleware]:
    """The ``paste.filter_factory`` entry point ``egg:sso_middleware#sso``."""
    kwargs = options(settings)

    def make_filter(app: WSGIApplication) -> SSOMiddleware:
        return SSOMiddleware(app, **kwargs)

    return make_filter
