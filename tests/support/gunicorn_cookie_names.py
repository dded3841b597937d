"""gunicorn settings (``-c``) for the HTTPS portal of test_browser.py: the log
tells which sso_middleware the server runs, and the names (never the values)
of the cookies each request brings, so a test can check what really reached
the middleware."""

from __future__ import annotations


def when_ready(server):
    import sso_middleware

    server.log.info("sso_middleware loaded from %s", sso_middleware.__file__)


def pre_request(worker, req):
    # Header values arrive as latin-1 text, one character per byte, as WSGI
    # hands them on; repr() shows a byte such as 0xA0 as '\xa0'.
    names = [
        pair.partition("=")[0].strip(" \t")
        for name, value in req.headers
        if name == "COOKIE"
        for pair in value.split(";")
    ]
    worker.log.info("cookie names on %s: %r", req.path, names)
