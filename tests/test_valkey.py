"""Valkey as well as Redis: the servers the suite runs on are what the
deployment guide says was tested, and a sign-on works from end to end on
each, over real HTTP.

The store contracts (``tests/test_stores.py``) and the behaviour suite on a
single server, Sentinel and Cluster (``tests/test_topologies.py``) run on
both servers too. The Valkey runs are marked ``valkey``: ``-m "not valkey"``
leaves them out on a machine without ``valkey-server`` (``scripts/setup
valkey`` installs it).
"""

from __future__ import annotations

import typing as t

import pytest

from sso_middleware.client import AdminClient
from tests.support.helpers import API_IDENTIFIER, API_SECRET, live_sessions
from tests.support.live import Servers, follow, new_browser, status_of

ON_EVERY_SERVER = pytest.mark.parametrize(
    "server_flavour", [pytest.param("redis"), pytest.param("valkey", marks=pytest.mark.valkey)]
)


def version(value: t.Any) -> tuple[int, ...]:
    return tuple(int(part) for part in str(value).split("."))


@ON_EVERY_SERVER
def test_the_server_is_the_one_the_guide_names(redis_client, server_flavour):
    info = redis_client.info("server")
    if server_flavour == "valkey":
        assert info["server_name"] == "valkey"
        assert version(info["valkey_version"])[0] == 8, (
            f"Valkey {info['valkey_version']}: docs/deployment.md records Valkey 8.x as tested"
        )
        # what a client that reads redis_version sees
        assert info["redis_version"] == "7.2.4"
    else:
        assert "valkey_version" not in info and "server_name" not in info
        assert version(info["redis_version"]) >= (6, 2)


@ON_EVERY_SERVER
def test_a_sign_on_from_end_to_end(make_middleware, redis_client):
    """A trusted system mints over the admin API; the browser follows the
    link, lands signed in on the destination and stays signed in; the same
    link again is refused and ends the session it started."""
    servers = Servers(make_middleware)
    try:
        base, _ = servers()
        url = AdminClient(base, API_IDENTIFIER, API_SECRET).sso_url(
            client_id=1, destination="clientarea:invoices"
        )
        browser = new_browser()
        landed, page = follow(browser, url)
        assert landed == base + "/clientarea.php?action=invoices"
        assert page["identity"] == [1, 1]
        [session] = live_sessions(redis_client)  # on this server
        landed, page = follow(browser, base + "/")
        assert page["identity"] == [1, 1]

        assert status_of(new_browser(), url) == 403
        assert live_sessions(redis_client) == set()
        assert redis_client.get(session) == b"!"  # ended, and the token stays spent
        landed, page = follow(browser, base + "/")
        assert page["identity"] is None
    finally:
        servers.close()
