"""The real cross-site flow in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium): a trusted panel on one origin links to
the portal on another; the browser must keep the session cookie across the
redirect chain, which only a real browser's SameSite and Secure rules prove.

Screenshots go to artifacts/screenshots/ for a reviewer to look at.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
import urllib.request

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT

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
        data = urllib.parse.urlencode({
            "action": "CreateSsoToken", "identifier": "demo", "secret": pipeline.api_secret,
            "client_id": "1", "destination": "clientarea:invoices"}).encode()
        with urllib.request.urlopen(pipeline.url + "/includes/api.php", data, timeout=5) as r:
            link = json.load(r)["redirect_url"]
        self.server.last_link = link
        body = (f'<!doctype html><title>Control panel</title><h1>Control panel</h1>'
                f'<a id="open" href="{link}">Open the client area</a>').encode()
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


@pytest.fixture
def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1000,700"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(20)
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
    between finding and reading them."""
    return WebDriverWait(driver, 10, ignored_exceptions=(NoSuchElementException,
                                                          StaleElementReferenceException))


def test_cross_site_sign_in_in_a_real_browser(pipeline, panel, chromium):
    # the panel is "localhost", the portal "127.0.0.1": two sites, as in production
    chromium.get(f"http://localhost:{panel.server_port}/")
    chromium.find_element(By.ID, "open").click()
    settled(chromium).until(expected_conditions.url_to_be(pipeline.url + "/account/invoices"))
    assert who(chromium) == "Signed in as user 1 for client 1."
    screenshot(chromium, "landing.png")

    cookies = {c["name"]: c for c in chromium.get_cookies()}
    session = cookies["__Host-sso_session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
    assert session["path"] == "/" and "expiry" not in session

    chromium.refresh()
    assert who(chromium) == "Signed in as user 1 for client 1."

    chromium.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    settled(chromium).until(lambda d: who(d) == "Not signed in.")
    assert "__Host-sso_session" not in {c["name"] for c in chromium.get_cookies()}

    chromium.get(panel.last_link)  # the same link, replayed
    assert chromium.find_element(By.TAG_NAME, "h1").text == "Sign-in failed"
    assert chromium.current_url.startswith(pipeline.url + "/oauth/singlesignon.php")
    screenshot(chromium, "error.png")
    chromium.get(pipeline.url + "/account/invoices")
    assert who(chromium) == "Not signed in."
