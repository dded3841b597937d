"""Ending sessions in bulk: every session of a user, of an account, or of
both, and the links already minted for them, from Python and the admin API
(the command line is tested in test_cli.py)."""

from __future__ import annotations

import json
import time

import pytest

from sso_middleware.stores.redis import RedisTokenStore
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    FakeClock,
    browser,
    live_sessions,
    sso_path,
)


def signed_in(middleware, client_id, user_id=None):
    app = browser(middleware)
    link = middleware.create_sso_token(client_id=client_id, user_id=user_id)["redirect_url"]
    app.get(sso_path(link), status=303)
    return app


def identity(app):
    return json.loads(app.get("/page").body)["identity"]


def revoke(app, status=200, **fields):
    return app.post(
        API_PATH,
        {
            "identifier": API_IDENTIFIER,
            "secret": API_SECRET,
            "responsetype": "json",
            "action": "EndSsoSessions",
            **fields,
        },
        status=status,
    ).json


def test_ending_a_users_sessions_leaves_the_rest_of_the_account(make_middleware, redis_client):
    """User 5 is removed from client 1: their sessions end, the owner's
    (user 1, same account) and other accounts' go on."""
    middleware = make_middleware()
    removed, owner, other = signed_in(middleware, 1, 5), signed_in(middleware, 1, 1), signed_in(middleware, 2)
    middleware.end_sessions(user_id=5)
    assert identity(removed) is None
    assert identity(owner) == [1, 1] and identity(other) == [2, 2]
    assert len(live_sessions(redis_client)) == 2


def test_a_link_minted_for_the_user_before_is_refused_and_one_after_works(make_middleware):
    clock = FakeClock(time.time())
    middleware = make_middleware(clock=clock)
    before = sso_path(middleware.create_sso_token(client_id=1, user_id=5)["redirect_url"])
    owners = sso_path(middleware.create_sso_token(client_id=1, user_id=1)["redirect_url"])
    clock.advance(0.002)  # not minted in the millisecond of the revocation
    middleware.end_sessions(user_id=5)
    clock.advance(0.002)
    after = sso_path(middleware.create_sso_token(client_id=1, user_id=5)["redirect_url"])
    app = browser(middleware)
    assert "Set-Cookie" not in app.get(before, status=403).headers
    app.get(owners, status=303)  # another user's link of the same account still works
    app.get(after, status=303)
    assert identity(app) == [5, 1]


def test_ending_both_ends_the_union(make_middleware):
    middleware = make_middleware()
    user, account, bystander = (
        signed_in(middleware, 1, 5),
        signed_in(middleware, 2),
        signed_in(middleware, 1, 1),
    )
    middleware.end_sessions(2, user_id=5)
    assert identity(user) is None and identity(account) is None
    assert identity(bystander) == [1, 1]


def test_end_sessions_needs_someone(make_middleware):
    with pytest.raises(ValueError, match="client_id, a user_id or both"):
        make_middleware().end_sessions()


def test_end_sso_sessions_takes_a_user_id(make_middleware, caplog):
    middleware = make_middleware()
    removed, owner = signed_in(middleware, 1, 5), signed_in(middleware, 1, 1)
    assert revoke(browser(middleware), user_id="5") == {"result": "success", "user_id": 5}
    assert identity(removed) is None and identity(owner) == [1, 1]
    audits = [r for r in caplog.records if getattr(r, "sso_event", None) == "sessions_ended"]
    assert len(audits) == 1 and audits[0].sso_user_id == 5 and audits[0].sso_actor == f"api:{API_IDENTIFIER}"


def test_end_sso_sessions_takes_both(make_middleware):
    middleware = make_middleware()
    user, account = signed_in(middleware, 1, 5), signed_in(middleware, 2)
    assert revoke(browser(middleware), user_id="5", client_id="2") == {
        "result": "success",
        "client_id": 2,
        "user_id": 5,
    }
    assert identity(user) is None and identity(account) is None


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "A valid client_id or user_id is required"),
        ({"user_id": "five"}, "Invalid user_id"),
        ({"user_id": "-5"}, "Invalid user_id"),
        ({"client_id": "1", "user_id": "0"}, "Invalid user_id"),
    ],
)
def test_end_sso_sessions_refuses_bad_ids(make_middleware, fields, message):
    middleware = make_middleware()
    session = signed_in(middleware, 1, 5)
    answer = revoke(browser(middleware), status=200, **fields)
    assert answer == {"result": "error", "message": message}
    assert identity(session) == [5, 1]


# -- an opt-in revocation delay -------------------------------------------------------


@pytest.fixture
def clock():
    return FakeClock(time.time())


def test_with_a_delay_another_processs_revocation_arrives_within_it(make_middleware, clock):
    here = make_middleware(revocation_delay=5, clock=clock)
    elsewhere = make_middleware(clock=clock)
    app = signed_in(here, 1)
    assert identity(app) == [1, 1]  # reads the end times: remembered for 5 s
    clock.advance(0.01)
    elsewhere.end_sessions(1)
    clock.advance(1)
    assert identity(app) == [1, 1]  # within the delay the revocation is not seen yet
    clock.advance(4)
    assert identity(app) is None  # 5 s after the last read, it is


def test_without_a_delay_it_arrives_at_once(make_middleware, clock):
    here = make_middleware(clock=clock)
    app = signed_in(here, 1)
    assert identity(app) == [1, 1]
    clock.advance(0.01)
    make_middleware(clock=clock).end_sessions(1)
    assert identity(app) is None


def test_with_a_delay_own_revocations_and_logout_arrive_at_once(make_middleware, clock):
    here = make_middleware(revocation_delay=60, clock=clock)
    revoked, logged_out = signed_in(here, 1), signed_in(here, 2)
    assert identity(revoked) == [1, 1] and identity(logged_out) == [2, 2]
    clock.advance(0.01)
    here.end_sessions(1)
    assert identity(revoked) is None
    logged_out.post("/logout", status=303)
    assert identity(logged_out) is None


def test_with_a_delay_a_signed_in_request_is_one_getex(make_middleware, redis_client, clock):
    app = signed_in(make_middleware(revocation_delay=5, clock=clock), 1)
    identity(app)  # reads the end times
    before = redis_client.info("commandstats")
    identity(app)
    after = redis_client.info("commandstats")
    ran = {
        name[8:]: stat["calls"] - before.get(name, {}).get("calls", 0)
        for name, stat in after.items()
        if name != "cmdstat_info" and stat["calls"] != before.get(name, {}).get("calls", 0)
    }
    assert ran == {"getex": 1}


class ReadHook:
    """A token store that runs ``hook`` once, right after a session read
    that fetched end times: a revocation arriving mid-request."""

    def __init__(self, store):
        self.store, self.hook = store, None

    def __getattr__(self, name):
        return getattr(self.store, name)

    def resume(self, key, ttl, subjects):
        found = self.store.resume(key, ttl, subjects)
        hook, self.hook = self.hook, None
        if hook is not None and subjects:
            hook()
        return found


def test_with_a_delay_a_request_reading_during_an_own_revocation_does_not_undo_it(
    make_middleware, redis_client, clock
):
    tokens = ReadHook(RedisTokenStore(redis_client))
    here = make_middleware(revocation_delay=60, clock=clock, tokens=tokens)
    app = signed_in(here, 1)
    clock.advance(0.01)
    tokens.hook = lambda: here.end_sessions(1)  # lands between the read and its remembering
    assert identity(app) == [1, 1]  # that request read before the revocation
    assert identity(app) is None  # the next one must not trust what it read


def test_a_clock_stepping_back_does_not_stretch_the_delay(make_middleware, clock):
    here = make_middleware(revocation_delay=5, clock=clock)
    app = signed_in(here, 1)
    assert identity(app) == [1, 1]
    clock.advance(0.01)
    make_middleware(clock=clock).end_sessions(1)
    clock.advance(-300)  # the wall clock corrected backwards
    assert identity(app) is None


def test_remembered_end_times_age_on_a_monotonic_clock(middleware):
    assert middleware.sessions._monotonic is time.monotonic
