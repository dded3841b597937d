"""Attackers who hold one of the deployment's secrets but not the others.

- **Write access to Redis** (an exposed port, SSRF, a shared instance): a
  record written or moved by hand signs nobody in, because records carry a
  MAC made with the deployment's keys over their key and content.
- **The signing key** plus a session of their own: a cookie re-signed with
  other ids is refused, because the session record, not the cookie, says
  who is signed in and since when.

Each test is written as the attacker's script would be: it uses only what
that attacker has (the Redis connection, or the key and their own cookie).
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from sso_middleware.tokens import TokenRecord, token_key
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    COOKIE_NAME,
    SECRET_KEY,
    SSO_PATH,
    browser,
    sso_path,
    token_grant,
)


def identity(app):
    return json.loads(app.get("/page").body)["identity"]


def events(caplog, name):
    return [r for r in caplog.records if getattr(r, "sso_event", None) == name]


def hand_written(redis_client, token, user_id=1, client_id=1, path="/clientarea.php"):
    """What an attacker with write access stores: a well-formed token record
    for any user, under the digest of a token of their choosing."""
    record = TokenRecord(user_id, client_id, "", path, int(time.time() * 1000)).encode()
    redis_client.set("sso:v2:t:" + token_key(token), record, ex=60)


# --------------------------------------------------------------------------- write access to Redis


def test_a_hand_written_token_record_signs_nobody_in(app, redis_client, caplog):
    token = "H" * 43
    hand_written(redis_client, token)
    response = app.get(f"{SSO_PATH}?access_token={token}", status=403)
    assert "Set-Cookie" not in response.headers
    assert identity(app) is None
    assert len(events(caplog, "tampered_record")) == 1 and not events(caplog, "redeemed")
    assert [r.getMessage() for r in events(caplog, "denied")] == [
        "Unable to authenticate with Single Sign-On token"
    ]


def test_a_real_record_copied_under_another_key_signs_nobody_in(middleware, redis_client):
    """The attacker cannot read the real token, but can copy its record
    under the digest of a token they chose."""
    middleware.create_sso_token(client_id=1)
    [real] = redis_client.keys("sso:v2:t:*")
    chosen = "C" * 43
    redis_client.set("sso:v2:t:" + token_key(chosen), redis_client.get(real), ex=60)
    app = browser(middleware)
    app.get(f"{SSO_PATH}?access_token={chosen}", status=403)
    assert identity(app) is None


def test_deployments_sharing_a_redis_do_not_redeem_each_others_tokens(make_middleware):
    ours, theirs = make_middleware(), make_middleware(secret_keys=["t" * 32])
    link = sso_path(theirs.create_sso_token(client_id=1)["redirect_url"])
    app = browser(ours)
    app.get(link, status=403)
    assert identity(app) is None


def test_an_edited_session_record_is_refused(middleware, redis_client, caplog):
    """The attacker has their own session (user 2) and write access: they
    put the victim's token record into their own session's place."""
    attacker, victim = browser(middleware), browser(middleware)
    attacker.get(sso_path(middleware.create_sso_token(client_id=2)["redirect_url"]), status=303)
    victim.get(sso_path(middleware.create_sso_token(client_id=1)["redirect_url"]), status=303)
    own_key = attacker.cookies[COOKIE_NAME].split(".")[0]
    victim_key = victim.cookies[COOKIE_NAME].split(".")[0]
    own, victims = (redis_client.get(f"sso:v2:t:{k}") for k in (own_key, victim_key))
    start = 1 + 16  # the mark and the secret's digest
    redis_client.set(f"sso:v2:t:{own_key}", own[:start] + victims[start:], keepttl=True)
    assert identity(attacker) is None
    assert identity(victim) == [1, 1]
    assert events(caplog, "forged_session")


def test_rotation_keeps_records_sealed_with_an_older_key(make_middleware):
    old = make_middleware()
    link = sso_path(old.create_sso_token(client_id=1)["redirect_url"])
    rotated = make_middleware(secret_keys=[SECRET_KEY, "n" * 32])
    app = browser(rotated)
    app.get(link, status=303)
    assert identity(app) == [1, 1]


# --------------------------------------------------------------------------- a leaked signing key


def with_cookie(middleware, value):
    """Who a browser holding only this session cookie is."""
    return identity_of(browser(middleware).get("/page", headers={"Cookie": f"{COOKIE_NAME}={value}"}))


def identity_of(response):
    return json.loads(response.body)["identity"]


def resigned(middleware, cookie, user_id, client_id):
    """The attacker's own cookie with other ids, signed with the leaked key
    (fields: key, secret, user id, account id[, ...])."""
    payload = middleware.sessions.signer.unsign(cookie).decode().split(".")
    payload[2:4] = [str(user_id), str(client_id)]
    return middleware.sessions.signer.sign(".".join(payload)).decode()


@pytest.mark.parametrize(
    "user_id, client_id",
    [
        (1, 1),  # another account's owner
        (5, 1),  # a user of another account
        (3, 3),  # a Closed account
        (4, 4),  # single sign-on switched off
        (2, 1),  # the attacker's user, another account
        (1, 2),  # another user, the attacker's account
        (99, 99),  # nobody
    ],
)
def test_a_leaked_signing_key_turns_no_session_into_another_users(middleware, caplog, user_id, client_id):
    attacker = browser(middleware)
    attacker.get(sso_path(middleware.create_sso_token(client_id=2)["redirect_url"]), status=303)
    assert with_cookie(middleware, attacker.cookies[COOKIE_NAME]) == [2, 2]
    forged = resigned(middleware, attacker.cookies[COOKIE_NAME], user_id, client_id)
    caplog.set_level(logging.WARNING, "sso_middleware")
    assert with_cookie(middleware, forged) is None
    assert len(events(caplog, "forged_session")) == 1


def test_revocation_reaches_sessions_whose_cookie_names_other_ids(middleware):
    """Revocation is judged on the record's ids: ending the attacker's own
    account ends their session whatever their cookie says."""
    attacker = browser(middleware)
    attacker.get(sso_path(middleware.create_sso_token(client_id=2)["redirect_url"]), status=303)
    own = attacker.cookies[COOKIE_NAME]
    assert with_cookie(middleware, resigned(middleware, own, 1, 1)) is None  # refused before, too
    api = browser(middleware).post(
        API_PATH,
        {
            "identifier": API_IDENTIFIER,
            "secret": API_SECRET,
            "responsetype": "json",
            "action": "EndSsoSessions",
            "client_id": "2",
        },
        status=200,
    )
    assert api.json["result"] == "success"
    for user_id, client_id in ((2, 2), (1, 1), (2, 1)):
        forged = resigned(middleware, own, user_id, client_id)
        assert with_cookie(middleware, forged) is None, (user_id, client_id)


def test_a_cookie_from_an_older_release_with_a_sign_on_time_is_refused(middleware):
    """Cookies once carried the sign-on time, which a leaked key could push
    ten years ahead, past every absolute timeout; none is accepted now."""
    attacker = browser(middleware)
    attacker.get(sso_path(middleware.create_sso_token(client_id=2)["redirect_url"]), status=303)
    key, secret = middleware.sessions.signer.unsign(attacker.cookies[COOKIE_NAME]).decode().split(".")[:2]
    future = int((time.time() + 10 * 365 * 86400) * 1000)
    forged = middleware.sessions.signer.sign(f"{key}.{secret}.2.2.{future}").decode()
    assert with_cookie(middleware, forged) is None


# --------------------------------------------------------------------------- credential sets in Redis


def forged_credential(identifier, secret, credential_id=99):
    """A credential set as the store would hold it, without the seal."""
    from sso_middleware.credentials import hash_secret
    from sso_middleware.oauth import OAuthCredential

    return OAuthCredential(
        credential_id, identifier, hash_secret(secret), ("clientarea:sso", "clientarea:invoices"), 1, 101
    )


def test_a_hand_written_credential_set_authenticates_nobody(middleware, redis_client, caplog):
    """The attacker writes a set for service 101 (account 1) with a secret
    of their choosing, then asks the token endpoint for its owner."""
    forged = forged_credential("f" * 32, "chosen-secret")
    redis_client.hset("sso:v2:{credentials}:by-identifier", forged.identifier, forged.encode())
    redis_client.hset("sso:v2:{credentials}:identifiers", forged.credential_id, forged.identifier)
    app = browser(middleware)
    assert token_grant(app, forged.identifier, "chosen-secret", 401).json["error"] == "invalid_client"
    assert events(caplog, "tampered_record") and not events(caplog, "issued")
    answer = app.post(
        API_PATH,
        {
            "identifier": API_IDENTIFIER,
            "secret": API_SECRET,
            "responsetype": "json",
            "action": "ListOAuthCredentials",
        },
    ).json
    assert answer["totalresults"] == 0


def test_a_sealed_credential_set_moved_under_another_identifier_authenticates_nobody(
    middleware, redis_client
):
    created, secret = middleware.oauth_credentials.create(grant_type="single_sign_on", service_id=101)
    record = redis_client.hget("sso:v2:{credentials}:by-identifier", created.identifier)
    redis_client.hset("sso:v2:{credentials}:by-identifier", "e" * 32, record)
    app = browser(middleware)
    token_grant(app, "e" * 32, secret, 401)
    token_grant(app, created.identifier, secret, 200)


def test_deployments_sharing_a_redis_do_not_share_credential_sets(make_middleware):
    ours, theirs = make_middleware(), make_middleware(secret_keys=["t" * 32])
    created, secret = theirs.oauth_credentials.create(
        grant_type="single_sign_on", service_id=101, scope="clientarea:invoices"
    )
    app = browser(ours)
    token_grant(app, created.identifier, secret, 401)
    assert ours.oauth_credentials.list() == []
    answer = app.post(
        API_PATH,
        {
            "identifier": API_IDENTIFIER,
            "secret": API_SECRET,
            "responsetype": "json",
            "action": "UpdateOAuthCredential",
            "credentialId": str(created.credential_id),
            "resetSecret": "1",
        },
        status=200,
    )
    assert answer.json == {"result": "error", "message": "Invalid credentialId"}
    token_grant(browser(theirs), created.identifier, secret, 200)  # theirs is untouched
