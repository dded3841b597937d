"""A token works once, ever, even when many requests race for it."""

from __future__ import annotations

import threading

import pytest
from werkzeug.test import Client

from conftest import sso_path
from sso_middleware import Limit
from sso_middleware.stores.memory import MemorySessionStore, MemoryTokenStore

THREADS = 50
ROUNDS = 20


def race(middleware, path):
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []
    lock = threading.Lock()

    def redeem():
        client = Client(middleware)
        barrier.wait()
        response = client.get(path, base_url="https://portal.example.com")
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=redeem) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("stores", ["redis", "memory"])
def test_exactly_one_of_fifty_concurrent_redemptions_succeeds(make_middleware, stores):
    options = {}
    if stores == "memory":
        options = {"tokens": MemoryTokenStore(), "sessions": MemorySessionStore()}
    # 49 losers per round are failed redemptions: keep them under the limit
    middleware = make_middleware(redeem_limit=Limit(THREADS * ROUNDS, 600), **options)
    for _ in range(ROUNDS):
        path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
        statuses = race(middleware, path)
        assert sorted(statuses) == [303] + [403] * (THREADS - 1)
