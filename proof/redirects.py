"""
Redirect safety (figure 8)
==========================

Every input is tried in four roles against a deployment served under a path
prefix (``https://portal.example.com/app``), so that climbing out of the
prefix counts as leaving the deployment:

1. ``destination`` of ``CreateSsoToken`` (admin API);
2. ``sso_redirect_path`` with ``destination=sso:custom_redirect``;
3. ``scope`` sent along with a valid link to the SSO endpoint;
4. ``scope`` at the token endpoint (``clientarea:sso <input>``).

Whenever a token results, it is redeemed, and every ``Location`` the
middleware answers is checked by :func:`escape` the way a browser would read
it. The inputs are Django's open-redirect corpus (``bad_urls`` of
``url_has_allowed_host_and_scheme``), well-known open-redirect payloads and
more of their kind (:data:`MORE_BAD_URLS`), and Hypothesis strings
(``--quick``: 300, full: 10,000).
"""

from __future__ import annotations

import re
import time
import typing as t
import urllib.parse

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from sso_middleware import AdminAPIOptions, Limit, Limits, SSOMiddleware, Stores
from sso_middleware.credentials import hash_secret
from sso_middleware.demo import demo_user_store

from .figures import Figure
from .harness import API_IDENTIFIER, API_PATH, SSO_PATH, TOKEN_PATH, Lab, log

BASE = "https://portal.example.com/app"

#: Django's ``URLHasAllowedHostAndSchemeTests.test_bad_urls`` (tests/utils_tests/test_http.py).
DJANGO_BAD_URLS = (
    "http://example.com",
    "http:///example.com",
    "https://example.com",
    "ftp://example.com",
    r"\\example.com",
    r"\\\example.com",
    r"/\\/example.com",
    r"\\\example.com",
    r"\\example.com",
    r"\\//example.com",
    r"/\/example.com",
    r"\/example.com",
    r"/\example.com",
    "http:///example.com",
    r"http:/\//example.com",
    r"http:\/example.com",
    r"http:/\example.com",
    'javascript:alert("XSS")',
    "\njavascript:alert(x)",
    "java\nscript:alert(x)",
    "\x08//example.com",
    r"http://otherserver\@example.com",
    r"http:\\testserver\@example.com",
    r"http://testserver\me:pass@example.com",
    r"http://testserver\@example.com",
    r"http:\\testserver\confirm\me@example.com",
    "http:999999999",
    "ftp:9999999999",
    "\n",
    "http://[2001:cdba:0000:0000:0000:0000:3257:9652/",
    "http://2001:cdba:0000:0000:0000:0000:3257:9652]/",
)

#: Well-known open-redirect payloads and more of their kind: leading
#: slashes and backslashes, control characters raw and percent-encoded,
#: dot segments raw, encoded and half-encoded, Unicode look-alikes of "/"
#: and ".".
MORE_BAD_URLS = (
    "////evil.com",
    "///evil.com",
    "//evil.com",
    "/\\evil.com",
    "http:/\\evil.com",
    "\\x08//evil.com",
    "\x08//evil.com",
    "\x00//evil.com",
    " //evil.com",
    "\t//evil.com",
    "/\r\nLocation: https://evil.com",
    "/%0d%0aLocation:%20https://evil.com",
    "%0d%0a//evil.com",
    "/a\rb",
    "/a\nb",
    "/%0a",
    "/%0D",
    "/%00",
    "/%09//evil.com",
    "/%7f",
    "/..",
    "/../",
    "/../evil",
    "/a/../../evil",
    "/%2e%2e/evil",
    "/.%2e/evil",
    "/%2e./evil",
    "/%2E%2E/evil",
    "/a/%2e%2e%2f..%2fevil",
    "/..;/evil",
    "/..?x",
    "/..#x",
    "/.",
    "/./",
    "..",
    "../evil",
    ".%2e/evil",
    "%2e%2e",
    "/\u2215evil.com",
    "/\uff0fevil.com",
    "/\u3002evil.com",
    "//evil%E3%80%82com",
    "%2f%2fevil.com",
    "/%2f/evil.com",
    "/%5cevil.com",
    "https:evil.com",
    "https://evil.com@portal.example.com",
    "//portal.example.com@evil.com",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.com",
    "@evil.com",
    "/" + "a" * 3000,
    "",
    " ",
    "?next=//evil.com",
    "#//evil.com",
)

CORPUS = tuple(dict.fromkeys(DJANGO_BAD_URLS + MORE_BAD_URLS))

_FRAGMENTS = [
    "/",
    "//",
    "\\",
    ":",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2f",
    "%5c",
    "%0d",
    "%0a",
    "%00",
    "%",
    "\r",
    "\n",
    "\t",
    "\x00",
    "\x08",
    " ",
    "@",
    "?",
    "#",
    "&",
    "=",
    ";",
    "evil.com",
    "http:",
    "https:",
    "javascript:",
    "clientarea:",
    "clientarea:sso",
    "clientarea:invoices",
    "sso:custom_redirect",
    "\u2215",
    "\uff0f",
    "\u3002",
    "a",
    "app",
]

STRINGS = st.one_of(
    st.text(),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join),
    st.tuples(st.sampled_from(CORPUS), st.lists(st.sampled_from(_FRAGMENTS), max_size=3)).map(
        lambda pair: pair[0] + "".join(pair[1])
    ),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)

_SINGLE_DOT = re.compile(r"^(\.|%2e)$", re.IGNORECASE)
_DOUBLE_DOT = re.compile(r"^(\.|%2e){2}$", re.IGNORECASE)


def escape(location: str | None, base: str = BASE) -> str | None:
    """Why a browser following ``Location`` would leave the deployment at
    ``base`` (or could be made to, through the header itself); ``None`` if
    it stays. Dot segments are resolved as the URL Standard does, ``%2e``
    included."""
    if location is None:
        return None
    if any(not 0x21 <= ord(c) <= 0x7E for c in location):
        return "control, space or non-ASCII character in Location"
    if not location.startswith(base + "/"):
        return "not under system_url"
    parts = urllib.parse.urlsplit(location)
    origin = urllib.parse.urlsplit(base)
    if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
        return "another origin"
    output: list[str] = []
    for segment in parts.path.replace("\\", "/").split("/")[1:]:
        if _DOUBLE_DOT.match(segment):
            if output:
                output.pop()
        elif not _SINGLE_DOT.match(segment):
            output.append(segment)
    resolved = "/" + "/".join(output)
    if not (resolved == origin.path or resolved.startswith(origin.path + "/")):
        return f"dot segments climb out of {origin.path}"
    return None


class Target:
    """The deployment under test, in process, over the real Redis."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.redis = lab.redises.client(lab.redis)
        limit = Limit(10**7, 600)
        self.app = SSOMiddleware(
            lambda environ, start_response: (start_response("200 OK", []), [b""])[1],
            system_url=BASE,
            secret_keys=[lab.secret_key],
            user_store=demo_user_store(),
            stores=Stores.redis(self.redis, prefix="redirect:"),
            api=AdminAPIOptions(credentials={API_IDENTIFIER: hash_secret(lab.api_secret)}),
            limits=Limits(redeem=limit, client_auth=limit, address_auth=limit),
        )
        self.client = Client(self.app)
        self.requests = 0
        self.redirects = 0
        self.escapes: list[tuple[str, str, str]] = []
        created = self.api(
            {
                "action": "CreateOAuthCredential",
                "grantType": "single_sign_on",
                "serviceId": "101",
                "scope": "clientarea:invoices clientarea:product_details clientarea:profile",
            }
        )
        body = created.get_json()
        self.client_id, self.client_secret = body["clientIdentifier"], body["clientSecret"]
        lab.canary.add(self.client_secret, "client secret")

    def close(self) -> None:
        self.redis.close()

    def api(self, fields: dict[str, str]) -> t.Any:
        self.requests += 1
        return self.client.post(
            API_PATH,
            base_url=BASE,
            data={
                "identifier": API_IDENTIFIER,
                "secret": self.lab.api_secret,
                "responsetype": "json",
                **fields,
            },
        )

    @staticmethod
    def minted(response: t.Any, role: str, text: str) -> bool:
        """Whether ``CreateSsoToken`` minted a link. As in WHMCS, a refused
        input is 200 with ``result=error``, never another status."""
        assert response.status_code == 200, (role, text, response.status_code)
        result = response.get_json()["result"]
        assert result in ("success", "error"), (role, text, result)
        return bool(result == "success")

    def follow(self, link: str, role: str, text: str, scope: str | None = None) -> None:
        assert link.startswith(BASE + SSO_PATH + "?")
        query = link.split("?", 1)[1]
        token = urllib.parse.parse_qs(query)["access_token"][0]
        self.lab.canary.add(token)
        if scope is not None:
            query += "&" + urllib.parse.urlencode({"scope": scope})
        self.requests += 1
        response = self.client.get(SSO_PATH, base_url=BASE, query_string=query)
        self.check(response, role, text)

    def check(self, response: t.Any, role: str, text: str) -> None:
        assert response.status_code < 500, (role, text, response.status_code)
        location = response.headers.get("Location")
        if response.status_code in (301, 302, 303, 307, 308) or location:
            self.redirects += 1
            why = escape(location)
            if why:
                self.escapes.append((role, repr(text), why))
        cookie = response.headers.get("Set-Cookie", "")
        if cookie.startswith("__Host-sso_session="):
            self.lab.canary.add_cookie(cookie.split(";", 1)[0].split("=", 1)[1] or None)

    def try_input(self, text: str) -> None:
        # 1. destination
        r = self.api(
            {
                "action": "CreateSsoToken",
                "client_id": "1",
                "destination": text,
                "service_id": "101",
                "domain_id": "111",
            }
        )
        if self.minted(r, "destination", text):
            self.follow(r.get_json()["redirect_url"], "destination", text)
        # 2. sso_redirect_path
        r = self.api(
            {
                "action": "CreateSsoToken",
                "client_id": "1",
                "destination": "sso:custom_redirect",
                "sso_redirect_path": text,
            }
        )
        if self.minted(r, "sso_redirect_path", text):
            self.follow(r.get_json()["redirect_url"], "sso_redirect_path", text)
        # 3. scope along with a valid link
        link = self.app.create_sso_token(client_id=1, destination="clientarea:invoices")["redirect_url"]
        self.follow(link, "scope (SSO endpoint)", text, scope=text)
        # 4. scope at the token endpoint
        self.requests += 1
        r = self.client.post(
            TOKEN_PATH,
            base_url=BASE,
            data={
                "grant_type": "single_sign_on",
                "scope": "clientarea:sso " + text,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        assert r.status_code < 500, ("token scope", text, r.status_code)
        if r.status_code == 200:
            self.follow(r.get_json()["redirect_url"], "scope (token endpoint)", text)


def run(lab: Lab, examples: int) -> dict[str, t.Any]:
    target = Target(lab)
    started = time.monotonic()
    generated = 0
    failure: list[str] = []
    try:
        for text in CORPUS:
            target.try_input(text)

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=False,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
        )
        @given(STRINGS)
        def prop(text: str) -> None:
            nonlocal generated
            generated += 1
            target.try_input(text)

        try:
            prop()
        except Exception as e:  # a 5xx or an assertion: reported as a figure, with the example
            failure.append(f"{type(e).__name__}: {e}"[:300])
    finally:
        target.close()
    return {
        "corpus": len(CORPUS),
        "generated": generated,
        "requests": target.requests,
        "redirects": target.redirects,
        "escapes": target.escapes[:20],
        "escape_count": len(target.escapes),
        "failure": failure,
        "seconds": time.monotonic() - started,
    }


def prove(lab: Lab) -> list[Figure]:
    examples = 300 if lab.quick else 10_000
    log(f"redirects: corpus of {len(CORPUS)} + {examples} Hypothesis strings, 4 roles each")
    result = run(lab, examples)
    tried = result["corpus"] + result["generated"]
    return [
        Figure(
            "8",
            "Redirect safety (destination, sso_redirect_path, scope x2)",
            f"{tried} inputs ({result['corpus']} corpus + {result['generated']} Hypothesis) x 4 roles, "
            f"{result['requests']} requests, {result['redirects']} redirects checked, "
            f"{result['escape_count']} escapes{'; ' + result['failure'][0] if result['failure'] else ''}",
            f"0 escapes, >= {len(CORPUS) + examples} inputs",
            result["escape_count"] == 0 and not result["failure"] and result["generated"] >= examples,
            result,
        ),
    ]
