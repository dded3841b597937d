"""Redis down or failing: a clear 503, never a login, never a 500; and back
to work when Redis is back, without restarting the app."""

from __future__ import annotations

import json
import time

import pytest

from sso_middleware.exceptions import StoreUnavailable
from sso_middleware.stores.redis import RedisTokenStore, connect
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    COOKIE_NAME,
    SSO_PATH,
    browser,
    live_sessions,
    sso_path,
)
from tests.support.redis_server import RedisServer


@pytest.fixture
def own_redis():
    server = RedisServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def fragile(own_redis, make_middleware):
    client = connect(own_redis.url)
    middleware = make_middleware(tokens=RedisTokenStore(client))
    yield middleware
    client.close()


def timed(call):
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def test_redis_down_then_back(own_redis, fragile):
    app = browser(fragile)
    path = sso_path(fragile.create_sso_token(client_id=1)["redirect_url"])
    app.get(path, status=303)
    assert json.loads(app.get("/page").body)["identity"] == [1, 1]
    pending = sso_path(fragile.create_sso_token(client_id=1)["redirect_url"])

    own_redis.stop()

    response, elapsed = timed(lambda: app.get(pending, status=503))
    assert elapsed < 1.0
    assert response.headers["Retry-After"] and "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"

    api = {
        "action": "CreateSsoToken",
        "identifier": API_IDENTIFIER,
        "secret": API_SECRET,
        "client_id": "1",
        "responsetype": "json",
    }
    response, elapsed = timed(lambda: app.post(API_PATH, api, status=503))
    assert elapsed < 1.0
    assert response.json == {"result": "error", "message": "Service temporarily unavailable"}

    with pytest.raises(StoreUnavailable):
        fragile.create_sso_token(client_id=1)

    # the wrapped app still serves, anonymously: the cookie alone is not trusted
    response, elapsed = timed(lambda: app.get("/page", status=200))
    assert elapsed < 1.0
    assert json.loads(response.body)["identity"] is None

    own_redis.start()  # same port, empty: the old session is gone too

    app.get(sso_path(fragile.create_sso_token(client_id=1)["redirect_url"]), status=303)
    assert json.loads(app.get("/page").body)["identity"] == [1, 1]


def test_redis_that_never_answers_is_a_bounded_503(make_middleware):
    import socket

    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        middleware = make_middleware(tokens=RedisTokenStore(connect(url)))
        app = browser(middleware)
        _, elapsed = timed(lambda: app.get(f"{SSO_PATH}?access_token={'A' * 43}", status=503))
        assert elapsed < 1.0


def test_store_failing_after_the_burn_gives_503_without_cookie(make_middleware, redis_client):
    """The token is spent, then reading the browser's current session fails:
    a 503 without a cookie, the token stays spent, and the session that took
    its place is ended."""

    class FailingResume(RedisTokenStore):
        def resume(self, key, ttl, subjects):
            raise StoreUnavailable("session read failed")

    middleware = make_middleware(tokens=FailingResume(redis_client))
    app = browser(middleware)
    app.set_cookie(COOKIE_NAME, middleware.sessions.signer.sign(f"{'A' * 22}.{'A' * 43}.1.1").decode())
    path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
    response = app.get(path, status=503)
    assert "Set-Cookie" not in response.headers
    assert "Location" not in response.headers
    assert [redis_client.get(k) for k in redis_client.scan_iter("sso:v2:t:*")] == [b"!"]  # spent, ended
    app.get(path, status=403)


def test_ending_the_previous_session_failing_gives_503_and_ends_the_new_one(make_middleware, redis_client):
    """Signed in, the browser follows a new link; ending its old session
    fails once: a 503 without a cookie, the old session as it was, and the
    session the burn started is ended."""

    class EndFailsOnce(RedisTokenStore):
        failed = False

        def end(self, key):
            if not self.failed:
                self.failed = True
                raise StoreUnavailable("end failed")
            super().end(key)

    middleware = make_middleware(tokens=EndFailsOnce(redis_client))
    app = browser(middleware)
    app.get(sso_path(middleware.create_sso_token(client_id=1)["redirect_url"]), status=303)
    response = app.get(sso_path(middleware.create_sso_token(client_id=2)["redirect_url"]), status=503)
    assert "Set-Cookie" not in response.headers
    assert len(live_sessions(redis_client)) == 1  # the old one, which the 503 did not end
    assert json.loads(app.get("/page").body)["identity"] == [1, 1]


def test_pool_exhausted_is_a_bounded_503(redis_server, make_middleware):
    client = connect(redis_server.url, max_connections=1, pool_timeout=0.2)
    held = client.connection_pool.get_connection()
    try:
        middleware = make_middleware(tokens=RedisTokenStore(client))
        app = browser(middleware)
        _, elapsed = timed(lambda: app.get(f"{SSO_PATH}?access_token={'A' * 43}", status=503))
        assert elapsed < 1.0
    finally:
        client.connection_pool.release(held)
