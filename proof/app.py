"""
The app the proof serves
========================

``create()`` is the WSGI application gunicorn (``proof.app:create()``) or
waitress (``--call proof.app:create``) loads. It reads
``SSO_PROOF_CONFIG`` (JSON) and mounts one :class:`SSOMiddleware` per
variant under ``/<variant>``, each wrapping a tiny echo app that answers
who is signed in; each variant has its own Redis, key prefix and settings.

Variant options: ``redis_url``, ``prefix``, ``secret_key``,
``api_identifier``, ``api_secret_hash``, ``ttl``, ``limit``,
``idle_timeout``, ``absolute_timeout``, ``socket_timeout``, ``max_connections``,
``pool_timeout``, ``username`` /
``password`` (an ACL user), ``user_store_delay`` (seconds ``get_account``
takes), ``token_store`` (``"get_then_set"``: the deliberately broken control).

Audit records go to ``log_path`` as JSON lines, tracebacks rendered, so the
canary scan reads exactly what an operator's log would hold.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import typing as t

import redis
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from sso_middleware import (
    AdminAPIOptions,
    Limit,
    Limits,
    RedemptionOptions,
    SessionOptions,
    SSOMiddleware,
    Stores,
    get_identity,
)
from sso_middleware.demo import demo_user_store
from sso_middleware.exceptions import StoreUnavailable
from sso_middleware.stores import SESSION_MARK
from sso_middleware.stores.redis import RedisTokenStore, connect

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class GetThenSetTokenStore(RedisTokenStore):
    """DELIBERATELY BROKEN, for the proof's control only: redeems a token
    with ``GET`` and then ``SET``, two round trips, the classic
    check-then-act race. Concurrent redemptions that all ``GET`` before the
    first ``SET`` all find the token record and all succeed; the contention
    proof must see that, or it could not see a race in the real store
    either. Everything else is the real store's."""

    def redeem(self, key: str, session: bytes, ttl: int, end_found: bool) -> tuple[bytes | None, int]:
        try:
            found = t.cast("bytes | None", self.client.get(self.prefix + key))
            if found is not None and not found.startswith(SESSION_MARK):
                self.client.set(self.prefix + key, session + found, ex=ttl, xx=True)
            elif found is not None and end_found:
                self.client.set(self.prefix + key, SESSION_MARK, keepttl=True)
            return found, int(self.client.get(self.latest) or 0)
        except redis.RedisError as e:
            raise StoreUnavailable(f"Redis error: {type(e).__name__}", e) from e


class SlowUserStore:
    """The demo accounts behind a user store that takes ``delay`` seconds to
    answer ``get_account``: a slow database, which widens the window between
    the burn of a token and the start of its session."""

    def __init__(self, delay: float):
        self.inner = demo_user_store()
        self.delay = delay

    def get_account(self, client_id: int) -> t.Any:
        time.sleep(self.delay)
        return self.inner.get_account(client_id)

    def get_user(self, user_id: int) -> t.Any:
        return self.inner.get_user(user_id)

    def owner_of(self, kind: t.Any, object_id: int) -> int | None:
        return self.inner.owner_of(kind, object_id)


def echo(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    identity = get_identity(environ)
    body = json.dumps(
        {
            "identity": [identity.user_id, identity.client_id] if identity else None,
            "pid": os.getpid(),
            "query": environ.get("QUERY_STRING", ""),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


class JSONLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k.startswith("sso_")})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def build(name: str, options: dict[str, t.Any]) -> SSOMiddleware:
    client = connect(
        options["redis_url"],
        socket_timeout=options.get("socket_timeout", 0.2),
        max_connections=options.get("max_connections", 50),
        pool_timeout=options.get("pool_timeout", 0.25),
        **{k: options[k] for k in ("username", "password") if k in options},
    )
    prefix = options.get("prefix")
    stores = Stores.redis(client, prefix=prefix)
    if options.get("token_store") == "get_then_set":
        stores = dataclasses.replace(
            stores, tokens=GetThenSetTokenStore(client, **({"prefix": prefix} if prefix else {}))
        )
    delay = options.get("user_store_delay")
    limit = Limit(*options["limit"])
    return SSOMiddleware(
        echo,
        system_url=options["system_url"],
        secret_keys=[options["secret_key"]],
        user_store=SlowUserStore(delay) if delay else demo_user_store(),
        stores=stores,
        api=AdminAPIOptions(credentials={options["api_identifier"]: options["api_secret_hash"]}),
        sessions=SessionOptions(
            idle_timeout=options.get("idle_timeout", 30 * 60),
            absolute_timeout=options.get("absolute_timeout", 12 * 60 * 60),
        ),
        redemption=RedemptionOptions(
            token_ttl=options.get("ttl", 60), revoke_on_replay=options.get("revoke_on_replay", True)
        ),
        limits=Limits(redeem=limit, client_auth=limit, address_auth=limit),
    )


def create() -> t.Callable[..., t.Iterable[bytes]]:
    config = json.loads(os.environ["SSO_PROOF_CONFIG"])
    handler = logging.FileHandler(config["log_path"])
    handler.setFormatter(JSONLines())
    logger = logging.getLogger("sso_middleware")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    mounts = {f"/{name}": build(name, options) for name, options in config["variants"].items()}
    return DispatcherMiddleware(echo, mounts)
