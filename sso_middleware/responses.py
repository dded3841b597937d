"""
Responses
=========

Every response the middleware itself sends: redirects, plain error pages and
JSON. All carry the same hardening headers, since any of them may answer a
request that carried a token: not cached, no ``Referer`` onwards, no content
sniffing. Error pages are self-contained (no external resources, no links
out) and say nothing about why a token failed: the reason is logged instead.
"""

from __future__ import annotations

import json
import typing as t
from html import escape

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

#: Headers on every response of the middleware's own endpoints.
HARDENING_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)

#: Error pages may load nothing and be framed by no one.
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"

#: Seconds a client should wait after a 503.
RETRY_AFTER = 5

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}</style>
</head><body><h1>{title}</h1><p>{message}</p></body></html>
"""

#: (title, message) of each error page, by status.
PAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "This single sign-on link is malformed."),
    403: (
        "Sign-in failed",
        (
            "This sign-in link is invalid, has expired or has already been used."
            " Go back to the site that sent you here and try again."
        ),
    ),
    405: ("Method not allowed", "This address only accepts links followed in a browser."),
    429: (
        "Too many attempts",
        (
            "There were too many failed sign-in attempts from your network."
            " Please wait a few minutes and try again."
        ),
    ),
    503: ("Temporarily unavailable", "Sign-in is temporarily unavailable. Please try again in a moment."),
}


def hardening_headers(status: int) -> tuple[tuple[str, str], ...]:
    """:data:`HARDENING_HEADERS`, and after a 503 when to try again."""
    return (*HARDENING_HEADERS, ("Retry-After", str(RETRY_AFTER))) if status == 503 else HARDENING_HEADERS


def harden(response: Response) -> Response:
    """Add :func:`hardening_headers` to ``response`` and return it."""
    for name, value in hardening_headers(response.status_code):
        response.headers[name] = value
    return response


def error_page(status: int, *, allow: str | None = None) -> Response:
    """The plain HTML page for an error ``status`` from :data:`PAGES`.

    The body depends on the status alone, so e.g. every 403 is byte-identical
    whatever the reason behind it.
    """
    title, message = PAGES[status]
    response = Response(
        _PAGE.format(title=escape(title), message=escape(message)),
        status=status,
        content_type="text/html; charset=utf-8",
    )
    response.headers["Content-Security-Policy"] = PAGE_CSP
    if allow:
        response.headers["Allow"] = allow
    return harden(response)


_CONFIRM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continue to sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}</style>
</head><body><h1>Continue to sign in</h1>
<p>You followed a sign-in link. Continue only if you opened it yourself;
continuing ends any session you have here now.</p>
<form method="post" action="{action}"><button type="submit">Continue</button></form>
</body></html>
"""


def confirm_page(environ: t.Mapping[str, t.Any]) -> Response:
    """A page whose button POSTs the request's own URL (the link), so that
    only a person, not a link scanner, redeems it. Not cached, no referrer:
    the form carries the token."""
    action = (
        f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}"
    )
    response = Response(_CONFIRM.format(action=escape(action)), content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = PAGE_CSP + "; form-action 'self'"
    return harden(response)


def json_response(
    data: t.Mapping[str, t.Any], status: int = 200, *, headers: t.Mapping[str, str] | None = None
) -> Answer:
    """A compact JSON response."""
    return Answer(json.dumps(data, separators=(",", ":")).encode(), status, "application/json", headers or {})


class Answer:
    """A response as a bare WSGI response, with the hardening headers: the
    token endpoint and the admin API answer every call with one, and a
    werkzeug ``Response`` cost more than the token endpoint's own checks
    (``benchmarks.lean_paths``), so the headers are a plain list.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(self, body: bytes, status: int, content_type: str, headers: t.Mapping[str, str]):
        #: The status line.
        self.status = f"{status} {HTTP_STATUS_CODES[status]}"
        #: Every header, in order.
        self.headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *hardening_headers(status),
            *headers.items(),
        ]
        #: The body.
        self.body = body

    def __call__(self, environ: t.Mapping[str, t.Any], start_response: t.Any) -> t.Iterable[bytes]:
        start_response(self.status, self.headers)
        return () if environ.get("REQUEST_METHOD") == "HEAD" else (self.body,)


class SeeOther:
    """A 303 to an absolute URL this middleware built itself, as a bare WSGI
    response: the browser follows it with a GET at once, so the token leaves
    the address bar. On the redemption path a werkzeug ``Response`` would
    cost more than all the middleware's own code, so the headers are a
    plain list (the cookie still comes from :func:`werkzeug.http.dump_cookie`).
    """

    __slots__ = ("headers",)

    def __init__(self, location: str, *extra_headers: tuple[str, str]):
        #: Every header, in order.
        self.headers = [("Location", location), ("Content-Length", "0"), *HARDENING_HEADERS, *extra_headers]

    def __call__(self, environ: t.Mapping[str, t.Any], start_response: t.Any) -> t.Iterable[bytes]:
        start_response("303 See Other", self.headers)
        return ()
