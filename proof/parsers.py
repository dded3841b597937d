"""
Parsers never 500 (figure 9)
============================

Hypothesis properties over the four targets of :mod:`proof.targets` (the
SSO query, the admin API form, the token endpoint form and Basic header, the
cookie), and the bounded atheris run of ``python -m proof.fuzz``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.parse
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .figures import Figure
from .harness import ROOT, Lab, log
from .targets import COOKIE, Crash, Targets

_LATIN1 = st.characters(min_codepoint=0, max_codepoint=255)
_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_TOKENISH = st.text(alphabet=_BASE64URL, min_size=40, max_size=46)
_TOKEN = st.text(alphabet=_BASE64URL, min_size=43, max_size=43)
#: The shape of a token's key at rest (and in a cookie).
_KEY = st.text(alphabet=_BASE64URL, min_size=22, max_size=22)
_ID = st.one_of(st.integers(-1, 2**63).map(str), st.text(_LATIN1, max_size=6))
#: A sign-on time, as an older release's cookies carried.
_RECENT_MS = st.integers(-(10**7), 10**12).map(lambda d: str(int(time.time() * 1000) + d))
_PIECES = st.one_of(
    st.sampled_from(
        [
            "access_token",
            "scope",
            "=",
            "&",
            ";",
            "%",
            "%00",
            "%zz",
            "+",
            "%26",
            "access_token=",
            "&access_token=",
            "clientarea:sso",
            " ",
            "#",
            "?",
            "%3D",
            "action",
            "identifier",
            "secret",
            "client_id",
            "user_id",
            "destination",
            "sso_redirect_path",
            "service_id",
            "responsetype",
            "json",
            "xml",
            "nvp",
            "CreateSsoToken",
            "EndSsoSessions",
            "CreateOAuthCredential",
            "UpdateOAuthCredential",
            "DeleteOAuthCredential",
            "ListOAuthCredentials",
            "credentialId",
            "resetSecret",
            "grant_type",
            "single_sign_on",
            "client_secret",
            "subscriber_unique_id",
            "token",
            "module",
            "module_type",
            "1",
            "-1",
            "0",
            "99999999999999999999",
            "1.5",
            "\u00e9",
            "\xff",
            "\x00",
        ]
    ),
    _TOKENISH,
    st.text(_LATIN1, max_size=8),
)
_QUERY = st.one_of(st.text(_LATIN1, max_size=300), st.lists(_PIECES, max_size=16).map("".join))
_METHODS = st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "TRACE", "get"])
_PURPOSE = st.one_of(
    st.none(),
    st.sampled_from(["prefetch", "prefetch;prerender", "Prefetch", "preview", "", "prerender"]),
    st.text(_LATIN1, max_size=20),
)
_CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "multipart/form-data; boundary=",
            "application/json",
            "text/plain",
            "",
        ]
    ),
    st.text(_LATIN1, max_size=40),
)


#: Actions an authenticated admin form may name: every answer shape (a
#: token, a list, an error, an unknown or empty action), in any case; none
#: that would delete or reset the credential set the token form relies on.
_API_ACTIONS = st.sampled_from(
    [
        "CreateSsoToken",
        "createssotoken",
        "CREATESSOTOKEN",
        "ListOAuthCredentials",
        "listoauthcredentials",
        "EndSsoSessions",
        "CreateOAuthCredential",
        "Nope",
        "",
        " ",
    ]
)
#: ``responsetype`` values: the three types, in any case, and others.
_RESPONSE_TYPES = st.one_of(
    st.sampled_from(["json", "xml", "nvp", "XML", "Nvp", "", "yaml"]), st.text(_LATIN1, max_size=8)
)


def _form_body(authenticated: bool, api_secret: str) -> st.SearchStrategy[bytes]:
    pairs = st.lists(st.tuples(_PIECES, _PIECES), max_size=10)
    preamble = st.tuples(st.one_of(st.none(), _API_ACTIONS), st.one_of(st.none(), _RESPONSE_TYPES))

    def encode(drawn: tuple[tuple[str | None, str | None], list[tuple[str, str]]]) -> bytes:
        (action, response_type), items = drawn
        if authenticated:
            chosen = [
                (name, value)
                for name, value in (("action", action), ("responsetype", response_type))
                if value is not None
            ]
            items = [("identifier", "parsers"), ("secret", api_secret), *chosen, *items]
        return urllib.parse.urlencode(items).encode("utf-8", "surrogatepass")

    return st.one_of(
        st.tuples(preamble, pairs).map(encode),
        st.binary(max_size=300),
        _QUERY.map(lambda s: s.encode("latin-1")),
    )


def _basic(targets: Targets) -> st.SearchStrategy[str | None]:
    raw = st.one_of(
        st.binary(max_size=60),
        st.tuples(_PIECES, _PIECES).map(lambda p: f"{p[0]}:{p[1]}".encode("utf-8", "surrogatepass")),
        st.just(f"{targets.client_id}:{targets.client_secret}".encode()),
    )
    return st.one_of(
        st.none(),
        st.text(_LATIN1, max_size=80),
        raw.map(lambda b: "Basic " + base64.b64encode(b).decode()),
        st.tuples(
            st.sampled_from(["Basic", "basic", "Bearer", "Basic  ", ""]), st.text(_LATIN1, max_size=40)
        ).map(" ".join),
    )


def _payloads(targets: Targets) -> st.SearchStrategy[str]:
    """Cookie payloads of the middleware's format (key, secret, user,
    account), mostly well-formed so that they reach the store, naming no
    live session: a random key, the key of a real token or session with a
    secret that is not its session's, or an earlier release's key (43
    characters); sometimes with an older release's fifth field, a sign-on
    time."""
    key = st.one_of(_KEY, st.sampled_from(targets.record_keys), _TOKEN, _TOKENISH)
    fields = st.tuples(key, _TOKEN, _ID, _ID)
    return st.one_of(fields, st.tuples(key, _TOKEN, _ID, _ID, st.one_of(_RECENT_MS, _ID))).map(".".join)


def _cookies(targets: Targets) -> st.SearchStrategy[str]:
    payloads = _payloads(targets)
    value = st.one_of(
        st.text(_LATIN1, max_size=120),
        payloads.map(targets.signed),  # well signed, no such session
        st.text(max_size=60).map(targets.signed),  # well signed, not a payload
        st.tuples(payloads, _TOKENISH).map(".".join),  # a signature that is none
        st.tuples(payloads.map(targets.signed), st.text(_LATIN1, max_size=4)).map(
            lambda p: p[0] + p[1]
        ),  # signed, then tampered with
    )
    return st.one_of(
        value.map(lambda v: f"{COOKIE}={v}"),
        st.tuples(st.text(_LATIN1, max_size=40), value).map(lambda p: f"{p[0]}; {COOKIE}={p[1]}"),
        value.map(lambda v: f'{COOKIE}="{v}"'),
        st.text(_LATIN1, max_size=200),
    )


PROPERTIES = ("sso_query", "admin_form", "token_form", "cookie")


def run(lab: Lab, examples: int, properties: t.Sequence[str] = PROPERTIES) -> dict[str, t.Any]:
    client = lab.redises.client(lab.redis)
    secret = lab.canary.new_secret("admin API secret")
    targets = Targets(client, lab.secret_key, secret)
    lab.canary.add(targets.client_secret, "client secret")
    crashes: dict[str, list[str]] = {}

    examples_run: dict[str, int] = {}

    def guarded(call: t.Callable[..., t.Any], *args: t.Any) -> None:
        """Record a crash and go on, so every property runs its full budget
        and every distinct defect is counted, not just the first."""
        examples_run[call.__name__] = examples_run.get(call.__name__, 0) + 1
        try:
            call(*args)
        except Crash as e:
            crashes.setdefault(e.kind, []).append(e.detail)
            if len(crashes[e.kind]) <= 3:  # as a log would render it
                lab.canary.scan_exception(e, "rendered exceptions (parsers)")

    common = dict(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )

    @settings(**common)
    @given(_METHODS, _QUERY, _PURPOSE)
    def sso_query(method: str, query: str, purpose: str | None) -> None:
        guarded(targets.sso_query, method, query, purpose)

    @settings(**common)
    @given(
        st.booleans().flatmap(lambda auth: _form_body(auth, secret)),
        st.one_of(st.just("application/x-www-form-urlencoded"), _CONTENT_TYPES),
        st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    )
    def admin_form(body: bytes, content_type: str | None, method: str) -> None:
        guarded(targets.admin_form, body, content_type, method)

    @settings(**common)
    @given(st.data())
    def token_form(data: st.DataObject) -> None:
        body = data.draw(
            st.one_of(_form_body(False, secret), st.just(b"grant_type=single_sign_on&scope=clientarea%3Asso"))
        )
        query = data.draw(st.one_of(st.just(""), _QUERY))
        authorization = data.draw(_basic(targets))
        content_type = data.draw(st.one_of(st.just("application/x-www-form-urlencoded"), _CONTENT_TYPES))
        guarded(targets.token_form, body, query, authorization, content_type)

    @settings(**common)
    @given(st.data())
    def cookie(data: st.DataObject) -> None:
        guarded(targets.cookie, data.draw(_cookies(targets)))

    try:
        chosen = {
            "sso_query": sso_query,
            "admin_form": admin_form,
            "token_form": token_form,
            "cookie": cookie,
        }
        for prop in (chosen[name] for name in properties):
            try:
                prop()
            except Exception as e:  # the harness itself failed: counted as a crash
                crashes.setdefault(f"{prop.__name__}: {type(e).__name__}: {e}"[:200], []).append("")
    finally:
        targets.close()
        client.close()
    return {
        "examples": examples_run,
        "crashes": sum(map(len, crashes.values())),
        "kinds": {kind: {"count": len(found), "example": found[0]} for kind, found in crashes.items()},
    }


def prove(lab: Lab) -> list[Figure]:
    examples = 150 if lab.quick else 2_500
    log(f"parsers: 4 Hypothesis properties x {examples} examples")
    result = run(lab, examples)
    total = sum(result["examples"].values())
    each = ", ".join(f"{k} {n}" for k, n in result["examples"].items())
    kinds = "".join(f"; {v['count']}x {k} (e.g. {v['example']})" for k, v in result["kinds"].items())
    return [
        Figure(
            "9",
            "Parsers never 500 (Hypothesis: SSO query, admin form, token form + Basic, cookie)",
            f"{total} examples ({each}); {result['crashes']} crashes{kinds}",
            f"0 crashes, >= {4 * examples} examples",
            result["crashes"] == 0 and total >= 4 * examples,
            result,
        ),
        *prove_http(lab),
    ]


def prove_fuzz(lab: Lab, seconds: float | None = None) -> list[Figure]:
    seconds = seconds if seconds is not None else (1.0 if lab.quick else 30.0)
    log(f"fuzz: atheris harnesses, {seconds:g} s each (python -m proof.fuzz)")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "fuzz.json"
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "proof.fuzz",
                "--seconds",
                str(seconds),
                "--json",
                str(out),
                "--redis-url",
                lab.redis.url,
            ],
            capture_output=True,
            text=True,
            timeout=120 + 10 * seconds,
            cwd=ROOT,
        )
        lab.canary.scan_text(completed.stdout + completed.stderr, "fuzz output")
        if not out.exists():
            return [
                Figure(
                    "9", "atheris harnesses", f"did not run: {completed.stderr[-300:]}", "0 crashes", False
                )
            ]
        report = json.loads(out.read_text())
    if report.get("skipped"):
        return [
            Figure(
                "9",
                "atheris harnesses (proof/fuzz)",
                f"skipped: {report['skipped']}",
                "0 crashes",
                True,
                report,
            )
        ]
    harnesses = report["harnesses"]
    executions = sum(h["executions"] for h in harnesses)
    crashes = sum(h["crashed"] for h in harnesses)
    each = ", ".join("{} {}".format(h["name"], h["executions"]) for h in harnesses)
    details = "".join("; {}: {}".format(h["name"], h["detail"]) for h in harnesses if h["crashed"])
    return [
        Figure(
            "9",
            f"atheris harnesses (proof/fuzz, {seconds:g} s each)",
            f"{executions} executions ({each}); {crashes} crashes{details}",
            "0 crashes, every harness ran",
            crashes == 0 and all(h["executions"] > 0 for h in harnesses),
            report,
        )
    ]


#: Raw requests a client can send, each with the answers allowed: what the
#: in-process properties found, checked through the real server.
_RAW_PROBES: tuple[tuple[str, bytes, set[int]], ...] = (
    ("own cookie not UTF-8, page", b"GET /main/page HTTP/1.1\r\nCookie: __Host-sso_session=\x80\r\n", {200}),
    (
        "another app's latin-1 cookie, page",
        b"GET /main/page HTTP/1.1\r\nCookie: lang=caf\xe9; __Host-sso_session=x\r\n",
        {200},
    ),
    (
        "another app's latin-1 cookie, logout",
        b"POST /main/logout HTTP/1.1\r\nContent-Length: 0\r\nCookie: lang=caf\xe9; __Host-sso_session=x\r\n",
        {303},
    ),
    (
        "another app's latin-1 cookie, SSO",
        b"GET /main/oauth/singlesignon.php?access_token="
        + b"A" * 43
        + b" HTTP/1.1\r\nCookie: lang=caf\xe9; __Host-sso_session=x\r\n",
        {403},
    ),
    (
        "percent-encoded non-UTF-8 query, SSO",
        b"GET /main/oauth/singlesignon.php?access_token=%80 HTTP/1.1\r\n",
        {400},
    ),
    ("raw non-UTF-8 query, SSO", b"GET /main/oauth/singlesignon.php?access_token=\xe9 HTTP/1.1\r\n", {400}),
    (
        "raw non-UTF-8 query, token endpoint",
        (
            b"POST /main/oauth/token.php?\xe9=1 HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 0\r\n"
        ),
        {400},
    ),
    (
        "Basic header not Base64",
        (
            b"POST /main/oauth/token.php HTTP/1.1\r\nAuthorization: Basic \xff\xfe\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\ngrant_type=single_sign_on"
        ),
        {401},
    ),
)


def http_probes(lab: Lab) -> dict[str, t.Any]:
    import socket

    server = lab.server
    results = {}
    for name, request, allowed in _RAW_PROBES:
        head, _, body = request.partition(b"\r\n\r\n")
        if body:
            head += b"\r\nContent-Length: %d" % len(body)
        data = head + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" + body
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(data)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status = int(answer.split(b" ", 2)[1])
        results[name] = {"status": status, "ok": status in allowed, "allowed": sorted(allowed)}
    return results


def prove_http(lab: Lab) -> list[Figure]:
    log(f"parsers: {len(_RAW_PROBES)} malformed requests through {lab.server_kind}")
    results = http_probes(lab)
    bad = {name: r["status"] for name, r in results.items() if not r["ok"]}
    return [
        Figure(
            "9",
            f"Malformed requests through {lab.server_kind} (raw bytes)",
            f"{len(results) - len(bad)}/{len(results)} answered as defined"
            + "".join(f"; {name}: {status}" for name, status in bad.items()),
            f"{len(results)}/{len(results)}, never 5xx",
            not bad,
            results,
        )
    ]
