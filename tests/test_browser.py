"""The real cross-site flow in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium): a trusted panel on one origin links to
the portal on another; the browser must keep the session cookie across the
redirect chain, which only a real browser's SameSite and Secure rules prove.

Screenshots go to artifacts/screenshots/ for a reviewer to look at.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import http.client
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import typing as t
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.helpers import API_PATH, COOKIE_NAME, ROOT, SSO_PATH
from tests.support.live import pipeline_args, serve_gunicorn, serve_process
from tests.support.redis_server import free_port

SCREENSHOTS = ROOT / "artifacts" / "screenshots"


class Panel(http.server.ThreadingHTTPServer):
    """A trusted system's page: each visit mints a token through the admin API
    and links to the portal with it."""

    def __init__(self, pipeline):
        super().__init__(("127.0.0.1", 0), PanelPage)
        self.pipeline = pipeline
        self.last_link: str | None = None


class PanelPage(http.server.BaseHTTPRequestHandler):
    server: Panel

    def do_GET(self):
        if self.path != "/":  # e.g. /favicon.ico
            self.send_error(404)
            return
        pipeline = self.server.pipeline
        data = urllib.parse.urlencode(
            {
                "action": "CreateSsoToken",
                "identifier": "demo",
                "secret": pipeline.api_secret,
                "client_id": "1",
                "destination": "clientarea:invoices",
                "responsetype": "json",
            }
        ).encode()
        with urllib.request.urlopen(pipeline.url + API_PATH, data, timeout=5) as r:
            link = json.load(r)["redirect_url"]
        self.server.last_link = link
        body = (
            f"<!doctype html><title>Control panel</title><h1>Control panel</h1>"
            f'<a id="open" href="{link}">Open the client area</a>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def panel(pipeline):
    server = Panel(pipeline)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def start_chromium(*arguments: str) -> webdriver.Chrome:
    """Headless Chromium, with ``arguments`` added to the usual ones."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1000,700",
        *arguments,
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(20)
    return driver


@pytest.fixture
def chromium():
    driver = start_chromium()
    yield driver
    driver.quit()


def screenshot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")


def who(driver):
    return driver.find_element(By.ID, "who").text


def settled(driver):
    """Wait for a page that is still loading: its elements may vanish
    between finding and reading them (stale, or, as Chromium sometimes says
    it mid-navigation, "Node with given id does not belong to the document")."""
    return WebDriverWait(
        driver,
        10,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException, WebDriverException),
    )


def test_cross_site_sign_in_in_a_real_browser(pipeline, panel, chromium):
    # the panel is "localhost", the portal "127.0.0.1": two sites, as in production
    chromium.get(f"http://localhost:{panel.server_port}/")
    chromium.find_element(By.ID, "open").click()
    settled(chromium).until(expected_conditions.url_to_be(pipeline.url + "/account/invoices"))
    assert who(chromium) == "Signed in as user 1 for client 1."
    screenshot(chromium, "landing.png")

    cookies = {c["name"]: c for c in chromium.get_cookies()}
    session = cookies[COOKIE_NAME]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
    assert session["path"] == "/" and "expiry" not in session

    chromium.refresh()
    assert who(chromium) == "Signed in as user 1 for client 1."

    chromium.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    settled(chromium).until(lambda d: who(d) == "Not signed in.")
    assert COOKIE_NAME not in {c["name"] for c in chromium.get_cookies()}

    chromium.get(panel.last_link)  # the same link, replayed
    assert chromium.find_element(By.TAG_NAME, "h1").text == "Sign-in failed"
    assert chromium.current_url.startswith(pipeline.url + SSO_PATH)
    screenshot(chromium, "error.png")
    chromium.get(pipeline.url + "/account/invoices")
    assert who(chromium) == "Not signed in."


# A cookie planted by a sibling host under a look-alike name --------------
#
# Two names under one parent domain, both mapped to 127.0.0.1 in Chromium:
# the portal, on HTTPS with its default __Host- cookie, and a sibling host
# that an attacker controls. Both serve a throwaway certificate.

PORTAL_HOST = "portal.portal.test"
SIBLING_HOST = "evil.portal.test"
PARENT_DOMAIN = "portal.test"
#: The portal's cookie name behind a no-break space (byte 0xA0): no __Host-
#: name to a browser, so Domain= is allowed; str.strip() removes the 0xA0.
LOOK_ALIKE = "\xa0" + COOKIE_NAME


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A throwaway self-signed certificate for both hosts and 127.0.0.1, and
    a client context that trusts it."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={PORTAL_HOST}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-addext",
            f"subjectAltName=DNS:{PORTAL_HOST},DNS:{SIBLING_HOST},IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    trusting = ssl.create_default_context(cafile=str(cert))
    trusting.options |= ssl.OP_IGNORE_UNEXPECTED_EOF  # the sibling closes without close_notify
    return cert, key, trusting


@dataclasses.dataclass
class TLSPortal:
    """examples/pipeline.ini on HTTPS, public as https://portal.portal.test:PORT."""

    port: int
    api_secret: str
    log: Path
    context: ssl.SSLContext

    @property
    def url(self) -> str:
        return f"https://{PORTAL_HOST}:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One request from the test itself (no browser): to 127.0.0.1, with
        the portal's Host; redirects are not followed."""
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=10)
        try:
            connection.request(method, path, body, {"Host": f"{PORTAL_HOST}:{self.port}", **(headers or {})})
            response = connection.getresponse()
            return response, response.read()
        finally:
            connection.close()

    def link(self, **fields: str) -> str:
        """A sign-on link minted through the admin API."""
        body = urllib.parse.urlencode(
            {
                "action": "CreateSsoToken",
                "identifier": "demo",
                "secret": self.api_secret,
                "responsetype": "json",
                **fields,
            }
        ).encode()
        response, data = self.request(
            "POST", API_PATH, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        answer = json.loads(data)
        assert response.status == 200 and answer["result"] == "success", answer
        assert answer["redirect_url"].startswith(self.url + "/")
        return answer["redirect_url"]

    def sign_in(self, link: str) -> str:
        """Follow a sign-on link with a plain HTTP client; return the session
        cookie's value from the response."""
        response, _ = self.request("GET", link[len(self.url) :])
        assert response.status == 303, response.status
        name, _, rest = response.getheader("Set-Cookie", "").partition("=")
        assert name == COOKIE_NAME
        return rest.partition(";")[0]

    def whoami(self, cookie_header: str) -> tuple[int, dict]:
        response, data = self.request("GET", "/whoami", headers={"Cookie": cookie_header})
        return response.status, json.loads(data)

    def cookie_names_sent(self, path: str) -> list[list[str]]:
        """The names of the cookies each request for ``path`` carried, from
        the server's log (tests/support/gunicorn_cookie_names.py)."""
        prefix = f"cookie names on {path}: "
        return [
            ast.literal_eval(line.partition(prefix)[2])
            for line in self.log.read_text("utf-8").splitlines()
            if prefix in line
        ]


@pytest.fixture(scope="module")
def tls_portal(redis_server, certificate, tmp_path_factory):
    """examples/pipeline.ini served by gunicorn over HTTPS, with the default
    cookie (``__Host-sso_session``, Secure) and system_url
    https://portal.portal.test:PORT. The server runs this checkout's
    sso_middleware (PYTHONPATH), and logs the cookie names each request
    brings."""
    cert, key, trusting = certificate
    folder = tmp_path_factory.mktemp("tls_portal")
    port, api_secret = free_port(), "tls-portal-" + "s" * 32
    env = {
        **os.environ,
        "PORTAL_DB": str(folder / "portal.db"),
        "SSO_SECRET_KEYS": "q" * 32,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = folder / "gunicorn.log"
    with serve_gunicorn(
        [
            "-c",
            str(ROOT / "tests" / "support" / "gunicorn_cookie_names.py"),
            *pipeline_args(port, f"https://{PORTAL_HOST}:{port}", redis_server.url, api_secret),
            "--certfile",
            str(cert),
            "--keyfile",
            str(key),
        ],
        url=f"https://127.0.0.1:{port}/",
        log=log,
        cwd=folder,
        env=env,
        context=trusting,
    ):
        loaded = ROOT / "sso_middleware" / "__init__.py"
        assert f"sso_middleware loaded from {loaded}" in log.read_text(), log.read_text()
        yield TLSPortal(port, api_secret, log, trusting)


class Sibling(http.server.ThreadingHTTPServer):
    """The attacker's host under the same parent domain, on HTTPS: its page
    sets ``planted`` (a cookie value) as the look-alike cookie for the whole
    parent domain and the path /whoami, with the raw 0xA0 byte on the wire."""

    daemon_threads = True

    def __init__(self, cert: Path, key: Path):
        super().__init__(("127.0.0.1", 0), SiblingPage)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        # the handshake runs in the request's thread (SiblingPage.setup)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.planted = b""

    def set_cookie_line(self) -> bytes:
        return (
            b"Set-Cookie: "
            + LOOK_ALIKE.encode("latin-1")
            + b"="
            + self.planted
            + b"; Domain="
            + PARENT_DOMAIN.encode()
            + b"; Path=/whoami; Secure\r\n"
        )


class SiblingPage(http.server.BaseHTTPRequestHandler):
    server: Sibling
    timeout = 10

    def setup(self):
        super().setup()
        self.request.do_handshake()

    def do_GET(self):
        if self.path != "/":  # e.g. /favicon.ico
            self.send_error(404)
            return
        body = b"<!doctype html><title>Sibling</title><h1>A sibling host</h1>"
        # written as bytes, not through send_header, so the 0xA0 byte is ours
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + b"Content-Length: %d\r\n" % len(body)
            + self.server.set_cookie_line()
            + b"Connection: close\r\n\r\n"
            + body
        )
        self.close_connection = True

    def log_message(self, format, *args):
        pass


@pytest.fixture
def sibling(certificate):
    cert, key, _ = certificate
    server = Sibling(cert, key)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def raw_response(port: int, host: str, context: ssl.SSLContext) -> bytes:
    """The bytes a server sends for GET /, read from a socket."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def chromium_on_portal_test():
    """Chromium that finds both hosts on 127.0.0.1 and accepts the throwaway
    certificate."""
    driver = start_chromium(
        f"--host-resolver-rules=MAP {PORTAL_HOST} 127.0.0.1, MAP {SIBLING_HOST} 127.0.0.1",
        "--ignore-certificate-errors",
    )
    yield driver
    driver.quit()


def test_sibling_host_cannot_plant_a_look_alike_session_cookie(
    tls_portal, certificate, sibling, chromium_on_portal_test
):
    """evil.portal.test plants the attacker's own valid session cookie as
    "\\xa0__Host-sso_session" with Domain=portal.test and Path=/whoami. No
    __Host- cookie to the browser, so it is kept and sent to the portal on
    /whoami, ahead of the victim's own cookie (longer path first). The
    middleware must not take it for its cookie: the victim is never the
    attacker."""
    portal, driver = tls_portal, chromium_on_portal_test

    # The attacker signs in as user 5 of client 1 with a plain HTTP client.
    attacker = portal.sign_in(portal.link(client_id="1", user_id="5"))
    assert portal.whoami(f"{COOKIE_NAME}={attacker}") == (200, {"user_id": 5, "client_id": 1})
    sibling.planted = attacker.encode("ascii")
    raw = raw_response(sibling.server_port, SIBLING_HOST, certificate[2])
    assert b"\r\nSet-Cookie: \xa0__Host-sso_session=" + sibling.planted + b";" in raw

    # The victim signs in as user 1 in the browser, then visits the sibling.
    driver.get(portal.link(client_id="1", user_id="1", destination="clientarea:invoices"))
    settled(driver).until(expected_conditions.url_to_be(portal.url + "/account/invoices"))
    assert who(driver) == "Signed in as user 1 for client 1."
    driver.get(f"https://{SIBLING_HOST}:{sibling.server_port}/")
    assert driver.find_element(By.TAG_NAME, "h1").text == "A sibling host"
    screenshot(driver, "sibling.png")

    driver.get(portal.url + "/whoami")
    screenshot(driver, "whoami_after_sibling.png")
    # The attack reached the middleware: the browser sent the planted
    # cookie, first, along with the victim's.
    sent = portal.cookie_names_sent("/whoami")
    assert sent and sent[-1] == [LOOK_ALIKE, COOKIE_NAME], sent
    answer = json.loads(driver.find_element(By.TAG_NAME, "pre").text)  # Chromium's JSON view
    assert answer != {"user_id": 5, "client_id": 1}, "the victim is signed in as the attacker"
    assert answer in ({"user_id": 1, "client_id": 1}, {"error": "not signed in"}), answer

    # Elsewhere (no planted cookie) the victim's own session is untouched.
    driver.get(portal.url + "/account/invoices")
    assert who(driver) == "Signed in as user 1 for client 1."


# The Django portal ------------------------------------------------------------
#
# examples/django_app as `scripts/example django` serves it: werkzeug's
# threaded development server on plain HTTP, Django's RemoteUserMiddleware
# behind the middleware.


@dataclasses.dataclass
class DjangoPortal:
    """``python -m examples.django_app.app`` on 127.0.0.1 (what Panel needs:
    its url, and the admin API secret of identifier ``demo``)."""

    url: str
    api_secret: str
    log: Path


@contextlib.contextmanager
def serve_django_portal(redis_url: str, folder: Path) -> t.Iterator[DjangoPortal]:
    """Run the portal until the block ends, its output in ``folder``, its
    temporary files (Django's database) in ``folder/tmp``; stop it with
    Ctrl-C, as a developer would."""
    port, api_secret = free_port(), "django-portal-" + "s" * 32
    url, log, tmp = f"http://127.0.0.1:{port}", folder / "django.log", folder / "tmp"
    tmp.mkdir()
    env = {**os.environ, "SSO_DEMO_API_SECRET": api_secret, "TMPDIR": str(tmp)}
    command = [sys.executable, "-m", "examples.django_app.app", "--port", str(port), "--redis-url", redis_url]
    with serve_process(command, url=url + "/", log=log, env=env, stop=signal.SIGINT):
        yield DjangoPortal(url, api_secret, log)


def test_django_round_trip_in_a_real_browser(redis_server, chromium, tmp_path):
    with serve_django_portal(redis_server.url, tmp_path) as portal:
        panel = Panel(portal)
        threading.Thread(target=panel.serve_forever, daemon=True).start()
        try:
            # anonymous: @login_required sends the browser to the sign-in page
            chromium.get(portal.url + "/account/profile")
            assert chromium.current_url == portal.url + "/sign-in?next=/account/profile"
            assert who(chromium) == "Not signed in."

            chromium.get(f"http://localhost:{panel.server_port}/")
            chromium.find_element(By.ID, "open").click()
            settled(chromium).until(expected_conditions.url_to_be(portal.url + "/account/invoices"))
            assert who(chromium) == "Signed in as user 1 for client 1."
            screenshot(chromium, "django_landing.png")
            assert {"sso_session", "sessionid"} <= {c["name"] for c in chromium.get_cookies()}

            # Django's CSRF token and session cookie work in the browser
            chromium.get(portal.url + "/account/security")
            chromium.find_element(By.XPATH, "//button[text()='Switch single sign-on off']").click()
            settled(chromium).until(lambda d: "Allow single sign-on: off." in d.page_source)
            chromium.find_element(By.XPATH, "//button[text()='Switch single sign-on on']").click()
            settled(chromium).until(lambda d: "Allow single sign-on: on." in d.page_source)
            assert who(chromium) == "Signed in as user 1 for client 1."

            chromium.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
            settled(chromium).until(lambda d: who(d) == "Not signed in.")
            # the middleware's cookie is cleared; Django's went on the next request
            assert not {"sso_session", "sessionid"} & {c["name"] for c in chromium.get_cookies()}

            link = panel.last_link
            assert link is not None
            chromium.get(link)  # the same link, replayed
            assert chromium.find_element(By.TAG_NAME, "h1").text == "Sign-in failed"
            chromium.get(portal.url + "/account/invoices")
            assert chromium.current_url == portal.url + "/sign-in?next=/account/invoices"
            assert who(chromium) == "Not signed in."
        finally:
            panel.shutdown()
            panel.server_close()
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["access_token"][0]
    assert token not in portal.log.read_text()
    assert list((tmp_path / "tmp").iterdir()) == []  # Django's database went with the server
