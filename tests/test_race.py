"""A token works once, ever, even when many requests race for it."""

from __future__ import annotations

import threading

import pytest
from werkzeug.test import Client

from sso_middleware import Limit
from sso_middleware.stores.memory import MemoryTokenStore
from tests.support.helpers import sso_path

THREADS = 50
ROUNDS = 20


def race(middleware, path, keep_cookies=False):
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []
    cookies: list[str] = []
    lock = threading.Lock()

    def redeem():
        client = Client(middleware)
        barrier.wait()
        response = client.get(path, base_url="https://portal.example.com")
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 303:
                cookies.append(response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1])

    threads = [threading.Thread(target=redeem) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (statuses, cookies) if keep_cookies else statuses


@pytest.mark.parametrize("stores", ["redis", "memory"])
def test_exactly_one_of_fifty_concurrent_redemptions_succeeds(make_middleware, stores):
    options = {}
    if stores == "memory":
        options = {"tokens": MemoryTokenStore()}
    # 49 losers per round are failed redemptions: keep them under the limit;
    # and they are replays, which by default also revoke the winner's session
    # (see test_replays_under_contention_leave_no_session): single use alone here
    middleware = make_middleware(redeem_limit=Limit(THREADS * ROUNDS, 600), revoke_on_replay=False, **options)
    for _ in range(ROUNDS):
        path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
        statuses = race(middleware, path)
        assert sorted(statuses) == [303] + [403] * (THREADS - 1)


def test_replays_under_contention_leave_no_session(make_middleware):
    """With the default policy the 49 losers are replays that end the
    winner's session, even before its cookie is sent: at most one 303, and
    no session survives."""
    middleware = make_middleware(redeem_limit=Limit(THREADS * ROUNDS, 600))
    for _ in range(5):
        path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
        statuses, cookies = race(middleware, path, keep_cookies=True)
        assert statuses.count(303) <= 1 and set(statuses) <= {303, 403}
        for cookie in cookies:
            assert middleware.sessions.resume(cookie) is None
