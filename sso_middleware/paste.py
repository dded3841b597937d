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
    api_roles =
        billing = CreateSsoToken
    api_allowed_ips = 203.0.113.0/24 2001:db8::/32

Every setting is parsed strictly, once, at start-up: an unknown key, a bad
boolean, integer or limit, a Redis address or URL that does not parse, a
user store factory that fails, or a missing required setting raises
:class:`~sso_middleware.ConfigurationError` naming the setting and the fix.

- ``system_url``: required.
- ``redis_url``: a single Redis (``redis://``, ``rediss://``, ``unix://``), or
  ``memory:`` for one development process; or ``redis_sentinels`` (``host:port``
  of each sentinel) with ``redis_service``; or ``redis_cluster_nodes``
  (``host:port`` of some Redis Cluster nodes).
- ``redis_username``, ``redis_password_env``, ``redis_ssl``,
  ``redis_ssl_ca_certs``: the ACL user, the environment variable holding its
  password, TLS and its CA file; ``redis_sentinel_username`` and
  ``redis_sentinel_password_env``: the sentinels' own ACL user.
- ``redis_prefix``: the key prefix (default ``sso:v2:``).
- ``redis_wait``: ``replicas/milliseconds``; every mint and burn waits for
  replicas.
- ``secret_keys`` (whitespace-separated signing keys, oldest first), or
  ``secret_key_file`` (one key per line, readable by its owner only, ``chmod
  600``), or ``secret_keys_env`` (the name of an environment variable holding
  them). No key found (a variable unset or empty, an empty file) stops
  start-up with an error naming where the keys were looked for.
- ``user_store``: ``package.module:factory``, called with no arguments.
- ``destinations``: lines of ``scope = path template`` (an empty path
  disables the scope); ``home``: the path for tokens without a destination.

Every option of :mod:`sso_middleware.options` is read too, under its ini
name (:func:`~sso_middleware.options.ini_fields`): the field's name, or the
name in its metadata (``secure_cookies``, ``redeem_limit``, ``sso_path``,
``api_credentials``, ...). Its type says how it is written: ``true`` or
``false``; a whole number; ``attempts/seconds`` for a limit, e.g.
``100/600``; ``name = value`` lines for a mapping (``api_credentials``,
``api_roles``); text otherwise.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import stat
import typing as t

from .destinations import Destinations
from .exceptions import ConfigurationError
from .middleware import SSOMiddleware
from .options import by_ini_names, ini_fields, parse_bool
from .ratelimit import Limit
from .stores import Stores

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

_REDIS = (
    "redis_url",
    "redis_sentinels",
    "redis_service",
    "redis_cluster_nodes",
    "redis_username",
    "redis_password_env",
    "redis_ssl",
    "redis_ssl_ca_certs",
    "redis_sentinel_username",
    "redis_sentinel_password_env",
    "redis_prefix",
    "redis_wait",
)
#: Settings that are not options of the middleware's groups.
_OTHERS = (
    "system_url",
    "secret_keys",
    "secret_key_file",
    "secret_keys_env",
    "user_store",
    "home",
    "destinations",
) + _REDIS
KNOWN = frozenset(_OTHERS) | frozenset(ini_fields())


def as_bool(name: str, value: str) -> bool:
    """:func:`~sso_middleware.options.parse_bool`, naming the setting."""
    try:
        return parse_bool(value)
    except ValueError:
        raise ConfigurationError(f"{name} = {value!r}: write true or false") from None


#: Most digits a whole number may have: far beyond any setting, and short of
#: the 4300 digits past which int() refuses a string.
MAX_DIGITS = 18


def as_int(name: str, value: str) -> int:
    """A whole number written in the digits 0-9 (``str.isdigit`` also passes
    ``²`` and other scripts' digits, which int() refuses or reads)."""
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS):
        raise ConfigurationError(f"{name} = {value!r}: write a whole number in the digits 0-9, like 60")
    return int(text)


def as_limit(name: str, value: str) -> Limit:
    """``attempts/seconds``."""
    attempts, sep, window = value.partition("/")
    if not sep:
        raise ConfigurationError(f"{name} = {value!r}: write attempts/seconds, like 100/600")
    numbers = as_int(name, attempts), as_int(name, window)
    try:
        return Limit(*numbers)
    except ConfigurationError as e:  # Limit's own message does not name the setting
        raise ConfigurationError(f"{name} = {value!r}: {e}") from None


def load(name: str, dotted: str) -> t.Any:
    """Import ``package.module:attribute``."""
    module_name, sep, attribute = dotted.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"{name} = {dotted!r}: write package.module:factory")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigurationError(f"{name} = {dotted!r}: cannot load it ({e})") from None


def user_store(dotted: str) -> t.Any:
    """Call the ``user_store`` factory; whatever it raises (not callable,
    wants arguments, cannot reach its database) is a start-up error that
    names the setting."""
    factory = load("user_store", dotted)
    try:
        return factory()
    except Exception as e:
        raise ConfigurationError(
            f"user_store = {dotted!r}: calling it failed ({type(e).__name__}: {e})"
        ) from e


def as_mapping(name: str, value: str) -> dict[str, str]:
    """Lines of ``key = value``; ini files cannot use ``:`` in keys, so
    scopes are listed inside one setting."""
    mapping = {}
    for number, line in enumerate(value.strip().splitlines(), 1):
        key, sep, item = line.partition("=")
        if not sep or not key.strip():
            # the line is not shown: it may be a secret pasted in the wrong place
            raise ConfigurationError(f"{name}: write one 'name = value' per line; line {number} is not")
        if key.strip() in mapping:
            raise ConfigurationError(f"{name}: {key.strip()!r} is given twice")
        mapping[key.strip()] = item.strip()
    return mapping


#: How to make a key, for the messages that find none.
_KEYS_HINT = (
    "give one or more signing keys of at least 32 bytes, whitespace-separated, oldest first;"
    ' make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
)


def secret_keys(settings: t.Mapping[str, str]) -> list[str]:
    """The signing keys from exactly one of the three sources."""
    given = [k for k in ("secret_keys", "secret_key_file", "secret_keys_env") if k in settings]
    if len(given) != 1:
        raise ConfigurationError(
            "set exactly one of secret_keys, secret_key_file or secret_keys_env"
            f" (got {', '.join(given) or 'none'}); a file or an environment variable keeps"
            " keys out of the ini"
        )
    source = given[0]
    if source == "secret_key_file":
        path = settings[source].strip()
        keys = _read_key_file(path).split()
        where = f"secret_key_file {path}: the file holds no key"
    elif source == "secret_keys_env":
        variable = settings[source].strip()
        if not variable:
            raise ConfigurationError(
                "secret_keys_env: name the environment variable that holds the keys, like SSO_SECRET_KEYS"
            )
        if variable not in os.environ:
            raise ConfigurationError(
                f"secret_keys_env: environment variable {variable} is not set; {_KEYS_HINT}"
            )
        keys = os.environ[variable].split()
        where = f"secret_keys_env: environment variable {variable} is empty"
    else:
        keys = settings[source].split()
        where = "secret_keys is empty"
    if not keys:  # named here: the middleware's own message cannot say where the keys were read
        raise ConfigurationError(f"{where}; {_KEYS_HINT}")
    return keys


def _read_key_file(path: str) -> str:
    """The text of ``secret_key_file``, refused unless only this process's
    user (or root) owns it and may read or write it, and nobody else may
    replace it in its folder: whoever can read the signing keys can forge
    cookies, whoever can write them can swap in their own (the checks of
    OpenSSH's ``StrictModes``)."""
    trusted = {os.geteuid(), 0}
    try:
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if info.st_mode & 0o077:
                raise ConfigurationError(
                    f"secret_key_file {path}: group or others may read or write it"
                    f" (mode {stat.S_IMODE(info.st_mode):04o}), and it holds the signing keys;"
                    f" run chmod 600 {path}"
                )
            if info.st_uid not in trusted:
                raise ConfigurationError(
                    f"secret_key_file {path}: owned by user {info.st_uid}, who may rewrite the"
                    f" signing keys; make this process's user its owner (chown)"
                )
            folder = os.stat(os.path.dirname(os.path.abspath(path)))
            if folder.st_mode & 0o022 and not folder.st_mode & stat.S_ISVTX or folder.st_uid not in trusted:
                raise ConfigurationError(
                    f"secret_key_file {path}: others may replace it in its folder"
                    f" (mode {stat.S_IMODE(folder.st_mode):04o}, owner {folder.st_uid});"
                    " keep it in a folder only this process's user (or root) may write to"
                )
            data = file.read()
    except OSError as e:
        raise ConfigurationError(f"secret_key_file {path}: cannot read it ({e.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"secret_key_file {path}: not UTF-8 text; write one key per line") from None


def as_addresses(name: str, value: str) -> list[tuple[str, int]]:
    """Whitespace-separated ``host:port`` pairs, ports 1-65535."""
    addresses = []
    for item in value.split():
        host, sep, port = item.rpartition(":")
        if not (
            sep and host and port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536
        ):
            raise ConfigurationError(f"{name}: write host:port pairs (ports 1-65535), not {item!r}")
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
    from redis.exceptions import RedisClusterException, RedisError

    from .stores import redis as impl

    given = [
        k for k in ("redis_url", "redis_sentinels", "redis_cluster_nodes") if settings.get(k, "").strip()
    ]
    if len(given) != 1:
        raise ConfigurationError(
            "set exactly one of redis_url (a single Redis, or memory: for development),"
            f" redis_sentinels (with redis_service) or redis_cluster_nodes; got {', '.join(given) or 'none'}"
        )
    if settings.get("redis_url", "").strip() == "memory:":
        ignored = sorted(k for k in settings if k.startswith("redis_") and k != "redis_url")
        if ignored:  # a setting that would do nothing must not look as if it did
            raise ConfigurationError(f"{ignored[0]} has no effect with redis_url = memory:; remove it")
        return Stores.memory()
    auth = _credentials(settings, "redis_username", "redis_password_env")
    tls = settings.get("redis_url", "").strip().startswith("rediss://")
    if "redis_ssl" in settings and as_bool("redis_ssl", settings["redis_ssl"]):
        auth["ssl"] = tls = True
    if "redis_ssl_ca_certs" in settings:
        if not tls:
            raise ConfigurationError(
                "redis_ssl_ca_certs needs TLS: a rediss:// redis_url or redis_ssl = true;"
                " without it the CA would be ignored"
            )
        auth["ssl_ca_certs"] = settings["redis_ssl_ca_certs"].strip()
        if not os.path.isfile(auth["ssl_ca_certs"]):
            raise ConfigurationError(
                f"redis_ssl_ca_certs: no such file {auth['ssl_ca_certs']!r}; every"
                " connection would fail its TLS handshake"
            )
    try:
        if given[0] == "redis_url":
            try:
                client: t.Any = impl.connect(settings["redis_url"].strip(), **auth)
            except ConfigurationError as e:
                raise ConfigurationError(f"redis_url: {e}") from None
        elif given[0] == "redis_sentinels":
            service = settings.get("redis_service", "").strip()
            if not service:
                raise ConfigurationError(
                    "redis_service (the monitored master's name) goes with redis_sentinels"
                )
            client = impl.connect_sentinel(
                as_addresses("redis_sentinels", settings["redis_sentinels"]),
                service,
                sentinel_kwargs=_credentials(
                    settings, "redis_sentinel_username", "redis_sentinel_password_env"
                ),
                **auth,
            )
        else:
            client = impl.connect_cluster(
                as_addresses("redis_cluster_nodes", settings["redis_cluster_nodes"]), **auth
            )
    except ConfigurationError:
        raise
    except (ValueError, RedisError, RedisClusterException) as e:
        # redis-py refusing a URL (a bad scheme or port), or a cluster client that
        # found no node to read the cluster's layout from. The value is not
        # shown: a URL may hold a password.
        raise ConfigurationError(f"{given[0]}: {e}") from None
    wait = None
    if "redis_wait" in settings:
        replicas, sep, milliseconds = settings["redis_wait"].partition("/")
        if not sep:
            raise ConfigurationError(
                f"redis_wait = {settings['redis_wait']!r}: write replicas/milliseconds, like 1/50"
            )
        wait = (as_int("redis_wait", replicas), as_int("redis_wait", milliseconds))
    try:
        return Stores.redis(client, prefix=settings.get("redis_prefix"), wait=wait)
    except ConfigurationError as e:  # with our own client, only wait is refused here, unnamed
        if wait is None:
            raise
        raise ConfigurationError(f"redis_wait = {settings['redis_wait']!r}: {e}") from None


def options(settings: t.Mapping[str, str]) -> dict[str, t.Any]:
    """Turn ini settings into :class:`SSOMiddleware` keyword arguments."""
    unknown = sorted(k for k in settings if k not in KNOWN)
    if unknown:
        raise ConfigurationError(
            f"unknown setting {unknown[0]!r} in the sso filter; known: {', '.join(sorted(KNOWN))}"
        )
    for required in ("system_url", "user_store"):
        if not settings.get(required, "").strip():
            raise ConfigurationError(f"{required} is required in the sso filter")
    result: dict[str, t.Any] = {
        "system_url": settings["system_url"].strip(),
        "stores": stores(settings),
        "secret_keys": secret_keys(settings),
        "user_store": user_store(settings["user_store"]),
        "destinations": Destinations(
            {
                scope: path or None
                for scope, path in as_mapping("destinations", settings.get("destinations", "")).items()
            },
            **({"home": settings["home"].strip()} if "home" in settings else {}),
        ),
    }
    result.update(
        by_ini_names(
            {
                name: _read(name, field, settings[name])
                for name, (_, field) in ini_fields().items()
                if name in settings
            }
        )
    )
    return result


#: How a value of an option's type is written in an ini file; text otherwise.
_READERS: dict[str, t.Callable[[str, str], t.Any]] = {"bool": as_bool, "int": as_int, "Limit": as_limit}


def _read(name: str, field: dataclasses.Field[t.Any], value: str) -> t.Any:
    if field.metadata.get("lines"):
        return as_mapping(name, value)
    reader = _READERS.get(str(field.type))
    return reader(name, value) if reader else value.strip()


def filter_factory(
    global_conf: t.Mapping[str, str], **settings: str
) -> t.Callable[[WSGIApplication], SSOMiddleware]:
    """The ``paste.filter_factory`` entry point ``egg:sso_middleware#sso``."""
    kwargs = options(settings)

    def make_filter(app: WSGIApplication) -> SSOMiddleware:
        return SSOMiddleware(app, **kwargs)

    return make_filter
