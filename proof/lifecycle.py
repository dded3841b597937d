"""
Replay, expiry, revocation (figures 2, 3 and 4)
===============================================

All over HTTP against the WSGI server:

- **Replay**: redeem, then redeem the same link from a second client: the
  replay is denied, a ``replay`` audit record names the token's fingerprint,
  and the first session is over. Also with the replay arriving while the
  first redemption is still running (a user store that takes 0.3 s): the
  first session must end all the same.
- **Expiry** (``ttl1`` variant, 1 s TTL): three batches minted together and
  redeemed concurrently, each token by its own thread at its own age: at
  0.8 s (must all succeed), at 1.2 s (must all fail), and at 1.2 s after
  ``PERSIST`` removed the key's TTL (must all fail, by the record's issue
  time; the key is checked to be still there).
- **Revocation**: ``EndSsoSessions`` ends every session of an account at
  once (every old cookie anonymous), other accounts keep theirs, and the
  account's next sign-on works; logout, then the old cookie: anonymous;
  idle (1 s) and absolute (2 s) timeouts with a request every 0.4 s.
"""

from __future__ import annotations

import json
import threading
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

from sso_middleware.tokens import fingerprint, token_key

from .figures import Figure
from .harness import (
    API_IDENTIFIER,
    API_PATH,
    COOKIE_NAME,
    LOGOUT_PATH,
    AppServer,
    Lab,
    form,
    http_request,
    log,
)


def whoami(server: AppServer, variant: str, cookie: str) -> list[int] | None:
    response = server.request("GET", variant, "/whoami", headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
    assert response.status == 200, response
    return t.cast("list[int] | None", response.json()["identity"])


def sign_in(lab: Lab, variant: str, **inputs: t.Any) -> str | None:
    server = lab.server
    _, link = server.mint(variant, **inputs)
    response = http_request(server.port, "GET", link)
    cookie = response.cookie()
    lab.canary.add_cookie(cookie)
    return cookie if response.status == 303 else None


def audit_events(server: AppServer, event: str) -> list[dict[str, t.Any]]:
    events = []
    for line in server.app_log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("sso_event") == event:
            events.append(record)
    return events


# --------------------------------------------------------------------------- replay


def replay(lab: Lab, trials: int) -> dict[str, t.Any]:
    server = lab.server
    denied = ended = signed_in = 0
    fingerprints = []
    for _ in range(trials):
        token, link = server.mint("main")
        fingerprints.append(fingerprint(token_key(token)))
        first = http_request(server.port, "GET", link)
        cookie = first.cookie()
        lab.canary.add_cookie(cookie)
        if first.status == 303 and cookie and whoami(server, "main", cookie) == [1, 1]:
            signed_in += 1
        second = http_request(server.port, "GET", link)
        denied += second.status == 403 and second.cookie() is None
        if cookie and whoami(server, "main", cookie) is None:
            ended += 1
    audited = {e.get("sso_token") for e in audit_events(server, "replay")}
    return {
        "trials": trials,
        "signed_in": signed_in,
        "denied": denied,
        "ended": ended,
        "audited": sum(1 for f in fingerprints if f in audited),
    }


def replay_during_redemption(lab: Lab, trials: int) -> dict[str, t.Any]:
    """The replay arrives while the first redemption waits for the (slow)
    user store, i.e. after the burn started its session and before its
    cookie is sent: the first may still answer 303, but with a cookie for
    an ended session."""
    server = lab.server
    survived = denied = first_ok = 0
    for _ in range(trials):
        _, link = server.mint("slow")
        result: dict[str, t.Any] = {}

        def first() -> None:
            result["first"] = http_request(server.port, "GET", link)  # noqa: B023 (joined in this trial)

        thread = threading.Thread(target=first)
        thread.start()
        time.sleep(0.1)  # the first request has burned the token and waits for get_account
        second = http_request(server.port, "GET", link)
        thread.join()
        denied += second.status == 403
        cookie = result["first"].cookie()
        lab.canary.add_cookie(cookie)
        if result["first"].status == 303 and cookie:
            first_ok += 1
            if whoami(server, "slow", cookie) is not None:
                survived += 1
    return {
        "trials": trials,
        "first_signed_in": first_ok,
        "replays_denied": denied,
        "first_session_survived": survived,
    }


# --------------------------------------------------------------------------- expiry


def expiry(lab: Lab, per_batch: int) -> dict[str, t.Any]:
    server = lab.server
    direct = lab.redises.client(lab.redis)
    batches = {"0.8 s": 0.8, "1.2 s": 1.2, "1.2 s, key without TTL": 1.2}
    jobs: list[dict[str, t.Any]] = []

    def mint(batch: str) -> dict[str, t.Any]:
        started = time.monotonic()
        token, link = server.mint("ttl1")
        minted = time.monotonic()
        key = f"ttl1:t:{token_key(token)}"
        if batch.endswith("without TTL"):
            direct.persist(key)
        return {"batch": batch, "link": link, "key": key, "mint_start": started, "minted": minted}

    by_age = "Unable to authenticate with Single Sign-On token for User ID: 1"
    denied_by_age = sum(1 for e in audit_events(server, "denied") if e["message"] == by_age)
    with ThreadPoolExecutor(max_workers=16) as pool:
        jobs = list(pool.map(mint, [b for b in batches for _ in range(per_batch)]))

    def redeem(job: dict[str, t.Any]) -> None:
        at = job["minted"] + batches[job["batch"]]
        time.sleep(max(0.0, at - time.monotonic()))
        if job["batch"].endswith("without TTL"):
            job["ttl_before"] = direct.ttl(job["key"])  # -1: still there, no TTL
        sent = time.monotonic()
        response = http_request(server.port, "GET", job["link"])
        job.update(
            status=response.status,
            sent=sent,
            done=response.end,
            # the token's age at the server lies between these two
            age_min=sent - job["minted"],
            age_max=response.end - job["mint_start"],
        )
        lab.canary.add_cookie(response.cookie())

    threads = [threading.Thread(target=redeem, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    direct.close()
    time.sleep(0.2)  # let the workers' log lines land
    denied_by_age = sum(1 for e in audit_events(server, "denied") if e["message"] == by_age) - denied_by_age
    results: dict[str, t.Any] = {"denied_by_issue_time": denied_by_age}
    for batch in batches:
        mine = [j for j in jobs if j["batch"] == batch]
        results[batch] = {
            "trials": len(mine),
            "succeeded": sum(1 for j in mine if j["status"] == 303),
            "refused": sum(1 for j in mine if j["status"] == 403),
            "age_min": min(j["age_min"] for j in mine),
            "age_max": max(j["age_max"] for j in mine),
            "key_kept_without_ttl": sum(1 for j in mine if j.get("ttl_before") == -1),
        }
    return results


# --------------------------------------------------------------------------- revocation


def revocation(lab: Lab, sessions: int) -> dict[str, t.Any]:
    server = lab.server
    account_one = [sign_in(lab, "revoke", client_id=1) for _ in range(sessions)]
    account_two = sign_in(lab, "revoke", client_id=2)
    assert all(account_one) and account_two
    live_before = sum(whoami(server, "revoke", c) == [1, 1] for c in account_one)  # type: ignore[arg-type]
    body, headers = form(
        {
            "action": "EndSsoSessions",
            "identifier": API_IDENTIFIER,
            "secret": lab.api_secret,
            "responsetype": "json",
            "client_id": 1,
        }
    )
    answer = server.request("POST", "revoke", API_PATH, body=body, headers=headers)
    revoked = answer.status == 200 and answer.json().get("result") == "success"
    anonymous = sum(whoami(server, "revoke", c) is None for c in account_one)  # type: ignore[arg-type]
    other_kept = whoami(server, "revoke", account_two) == [2, 2]
    # revocation ends the sessions started before it, not the account's sign-on
    fresh = sign_in(lab, "revoke", client_id=1)
    fresh_works = fresh is not None and whoami(server, "revoke", fresh) == [1, 1]
    out = server.request("POST", "revoke", LOGOUT_PATH, headers={"Cookie": f"{COOKIE_NAME}={account_two}"})
    after_logout = whoami(server, "revoke", account_two)

    # timeouts: idle 1 s, absolute 2 s ("short" variant)
    idle, active = sign_in(lab, "short"), sign_in(lab, "short")
    assert idle and active
    started = time.monotonic()
    active_seen = []
    while time.monotonic() - started < 2.3:
        active_seen.append((time.monotonic() - started, whoami(server, "short", active)))
        time.sleep(0.4)
    idle_after = whoami(server, "short", idle)  # untouched for over 1 s
    kept_until_absolute = all(who == [1, 1] for at, who in active_seen if at < 1.9)
    ended_at_absolute = active_seen[-1][1] is None
    return {
        "sessions": sessions,
        "live_before": live_before,
        "api_status": answer.status,
        "api_answered": revoked,
        "anonymous_after": anonymous,
        "other_account_kept": other_kept,
        "sign_on_after": fresh_works,
        "logout_status": out.status,
        "anonymous_after_logout": after_logout is None,
        "idle_ended": idle_after is None,
        "active_kept_until_absolute": kept_until_absolute,
        "absolute_ended": ended_at_absolute,
    }


# --------------------------------------------------------------------------- figures


def prove(lab: Lab) -> list[Figure]:
    n = 5 if lab.quick else 50
    log(f"lifecycle: replay ({n} trials), replay during the first redemption")
    rep = replay(lab, n)
    race_trials = 3 if lab.quick else 20
    race = replay_during_redemption(lab, race_trials)
    per_batch = 10 if lab.quick else 50
    log(f"lifecycle: expiry, 3 batches of {per_batch} redeemed concurrently")
    exp = expiry(lab, per_batch)
    log("lifecycle: revocation, logout, idle and absolute timeouts")
    rev = revocation(lab, 5)
    at08, at12, kept = exp["0.8 s"], exp["1.2 s"], exp["1.2 s, key without TTL"]
    return [
        Figure(
            "2",
            "Replay denied, audited, first session ended",
            f"denied {rep['denied']}/{n}, audited {rep['audited']}/{n}, "
            f"first session ended {rep['ended']}/{n}",
            f"{n}/{n} each",
            rep["denied"] == rep["audited"] == rep["ended"] == rep["signed_in"] == n,
            rep,
        ),
        Figure(
            "2",
            "Replay while the first redemption is in flight: no session survives",
            f"first redemption denied {race_trials - race['first_signed_in']}, 303 for an ended session "
            f"{race['first_signed_in'] - race['first_session_survived']}, survived "
            f"{race['first_session_survived']}; replays denied {race['replays_denied']}/{race_trials}",
            f"0 survived, {race_trials}/{race_trials} replays denied",
            race["first_session_survived"] == 0 and race["replays_denied"] == race_trials,
            race,
        ),
        Figure(
            "3",
            "Expiry, TTL 1 s, redeemed at 0.8 s",
            f"{at08['succeeded']}/{at08['trials']} succeeded "
            f"(age {at08['age_min']:.3f}-{at08['age_max']:.3f} s)",
            f"{per_batch}/{per_batch}",
            at08["succeeded"] == per_batch,
            at08,
        ),
        Figure(
            "3",
            "Expiry, TTL 1 s, redeemed at 1.2 s",
            f"{at12['succeeded']}/{at12['trials']} succeeded, {at12['refused']} refused "
            f"(age {at12['age_min']:.3f}-{at12['age_max']:.3f} s)",
            f"0/{per_batch}",
            at12["succeeded"] == 0 and at12["refused"] == per_batch,
            at12,
        ),
        Figure(
            "3",
            "Key that lost its TTL refused by issue time (1.2 s)",
            f"{kept['refused']}/{kept['trials']} refused; {kept['key_kept_without_ttl']} keys "
            f"still present without TTL just before; {exp['denied_by_issue_time']} denials logged "
            "as too old by the record",
            f"{per_batch}/{per_batch}, keys present, reason logged",
            kept["refused"] == per_batch == kept["key_kept_without_ttl"] == exp["denied_by_issue_time"],
            kept,
        ),
        Figure(
            "4",
            "Revocation, logout, idle and absolute timeouts",
            f"EndSsoSessions answered: {rev['api_answered']}; of {rev['live_before']} live sessions "
            f"{rev['anonymous_after']}/{rev['sessions']} old cookies anonymous, other account kept: "
            f"{rev['other_account_kept']}, sign-on after works: {rev['sign_on_after']}; "
            f"after logout anonymous: {rev['anonymous_after_logout']}; "
            f"idle 1 s ended: {rev['idle_ended']}; absolute 2 s held then ended: "
            f"{rev['active_kept_until_absolute'] and rev['absolute_ended']}",
            "all sessions ended at once, every check true",
            rev["live_before"] == rev["anonymous_after"] == rev["sessions"]
            and rev["api_answered"]
            and rev["other_account_kept"]
            and rev["sign_on_after"]
            and rev["anonymous_after_logout"]
            and rev["idle_ended"]
            and rev["active_kept_until_absolute"]
            and rev["absolute_ended"],
            rev,
        ),
    ]
