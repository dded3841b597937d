"""The middleware served over real HTTP on a free loopback port, and a
browser with a cookie jar to follow its links."""

from __future__ import annotations

import http.cookiejar
import json
import threading
import typing as t
import urllib.error
import urllib.request

from werkzeug.serving import make_server

from sso_middleware.demo import RedactingRequestHandler


def placeholder(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


class Served(t.NamedTuple):
    base: str
    middleware: t.Any


class Servers:
    """Start ``make_middleware(**overrides)`` servers, each with
    ``system_url`` set to its own port; :meth:`close` stops them all."""

    def __init__(self, make_middleware: t.Callable[..., t.Any]):
        self.make_middleware = make_middleware
        self.running: list[tuple[t.Any, threading.Thread]] = []

    def __call__(self, **overrides: t.Any) -> Served:
        # the demo's handler keeps access_token values out of the access log
        server = make_server(
            "127.0.0.1", 0, placeholder, threaded=True, request_handler=RedactingRequestHandler
        )
        base = f"http://127.0.0.1:{server.server_port}"
        middleware = self.make_middleware(system_url=base, secure_cookies=False, **overrides)
        server.app = middleware
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        self.running.append((server, thread))
        return Served(base, middleware)

    def close(self) -> None:
        for server, thread in self.running:
            server.shutdown()
            server.server_close()
            thread.join(10)


def new_browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def follow(browser: urllib.request.OpenerDirector, url: str) -> tuple[str, dict]:
    """Open ``url`` in ``browser`` (redirects followed); the final URL and
    the echo app's JSON."""
    with browser.open(url, timeout=5) as response:
        assert response.status == 200
        return response.url, json.load(response)


def status_of(browser: urllib.request.OpenerDirector, url: str) -> int:
    try:
        with browser.open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        with e:
            return e.code
