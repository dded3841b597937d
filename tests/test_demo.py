"""The demo portal served for real (``sso-middleware demo``): what it prints
at start-up, its credentials, its confirmation page, its logout and its log."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request

import pytest

from sso_middleware.demo import DemoCredentials
from tests.support.helpers import API_PATH

API_ID, API_SECRET = "demo-admin", "demo-secret-" + "z" * 32
CHOSEN = {"SSO_DEMO_API_IDENTIFIER": API_ID, "SSO_DEMO_API_SECRET": API_SECRET}

#: The start of a log line as the demo configures logging: a timestamp.
TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "


class Demo:
    """A demo process and the banner it printed before serving."""

    def __init__(self, process: subprocess.Popen[str]):
        self.process = process
        self.banner: list[str] = []
        for line in iter(process.stdout.readline, ""):
            self.banner.append(line.rstrip("\n"))
            if line.startswith("then open the redirect_url"):
                break
        assert self.banner and self.banner[0].startswith("Demo portal on http://127.0.0.1:"), self.banner
        self.base = self.banner[0].split()[3]

    def stop(self) -> str:
        """Stop the demo; what it wrote on standard error."""
        self.process.terminate()
        return self.process.communicate(timeout=10)[1]


@pytest.fixture
def start_demo():
    """Start ``sso-middleware demo --port 0`` with more options, and the
    environment's SSO_DEMO_* variables replaced by ``env``; stopped after
    the test."""
    started: list[Demo] = []

    def start(*args: str, env: dict[str, str] | None = None, command: list[str] | None = None) -> Demo:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SSO_DEMO_")}
        process = subprocess.Popen(
            command or [sys.executable, "-m", "sso_middleware", "demo", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**environ, **(env or {})},
        )
        try:
            demo = Demo(process)
        except BaseException:
            process.kill()
            process.communicate(timeout=10)
            raise
        started.append(demo)
        return demo

    yield start
    for demo in started:
        if demo.process.poll() is None:
            demo.stop()


def create_token(base: str, identifier: str = API_ID, secret: str = API_SECRET, **inputs: str) -> dict:
    data = urllib.parse.urlencode(
        {
            "action": "CreateSsoToken",
            "identifier": identifier,
            "secret": secret,
            "responsetype": "json",
            **inputs,
        }
    )
    try:
        with urllib.request.urlopen(base + API_PATH, data.encode(), timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        with e:
            return json.load(e)


def new_browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def visit(browser: urllib.request.OpenerDirector, url: str, **request: object) -> tuple[int, str, str]:
    """Status, final URL and body of a request (redirects followed)."""
    try:
        with browser.open(urllib.request.Request(url, **request), timeout=5) as r:
            return r.status, r.url, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.url, e.read().decode()


def whoami(browser: urllib.request.OpenerDirector, base: str) -> dict:
    return json.loads(visit(browser, base + "/whoami")[2])


def exported(line: str) -> dict[str, str]:
    """What the shell sets when ``line`` is pasted into it."""
    script = line + '\nprintf "%s\\n%s" "$SSO_DEMO_API_IDENTIFIER" "$SSO_DEMO_API_SECRET"'
    result = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=10, env={"PATH": os.environ["PATH"]}
    )
    assert result.returncode == 0, result.stderr
    identifier, secret = result.stdout.split("\n")
    return {"SSO_DEMO_API_IDENTIFIER": identifier, "SSO_DEMO_API_SECRET": secret}


@pytest.mark.parametrize("stores", ["memory", "redis"])
def test_demo_end_to_end(start_demo, request, stores):
    args = ["--redis-url", request.getfixturevalue("redis_server").url] if stores == "redis" else []
    demo = start_demo(*args, env=CHOSEN)
    base, browser = demo.base, new_browser()

    result = create_token(base, client_id="1", destination="clientarea:product_details", service_id="101")
    assert result["result"] == "success"
    token = result["access_token"]
    status, landed, page = visit(browser, result["redirect_url"])
    assert landed == base + "/clientarea.php?action=productdetails&id=101"
    assert "Signed in as user 1 for client 1" in page
    assert whoami(browser, base) == {"user_id": 1, "client_id": 1}

    assert visit(new_browser(), result["redirect_url"])[0] == 403  # spent

    assert create_token(base, client_id="3") == {
        "result": "error",
        "message": "SSO authentication blocked for client 3",
    }

    visit(browser, base + "/logout")  # a GET: the demo logs out on GET too
    assert whoami(browser, base) == {"error": "not signed in"}

    log = demo.stop()
    # The operator chose the secret: the banner names its variable, never its value.
    banner = "\n".join(demo.banner)
    assert "secret=(from $SSO_DEMO_API_SECRET)" in banner
    assert API_SECRET not in banner and "export" not in banner
    assert "Unable to authenticate with Single Sign-On token" in log
    assert "access_token=[redacted]" in log
    assert token not in log


# -- --confirm ------------------------------------------------------------------------------


def test_confirm_always_shows_the_confirmation_page_before_signing_in(start_demo):
    demo = start_demo("--confirm", "always", env=CHOSEN)
    browser = new_browser()
    link = create_token(demo.base, client_id="1", destination="clientarea:invoices")["redirect_url"]

    status, _, page = visit(browser, link)
    assert status == 200 and "Continue to sign in" in page
    assert whoami(browser, demo.base) == {"error": "not signed in"}  # the GET spent nothing

    status, landed, _ = visit(browser, link, method="POST", data=b"", headers={"Origin": demo.base})
    assert (status, landed) == (200, demo.base + "/clientarea.php?action=invoices")
    assert whoami(browser, demo.base) == {"user_id": 1, "client_id": 1}
    assert any("confirmation page first" in line for line in demo.banner), demo.banner


def test_confirm_signed_in_asks_only_a_browser_that_has_a_session(start_demo):
    demo = start_demo("--confirm", "signed_in", env=CHOSEN)
    browser = new_browser()
    first = create_token(demo.base, client_id="1")["redirect_url"]
    assert "Signed in as user 1" in visit(browser, first)[2]  # no session yet: at once

    second = create_token(demo.base, client_id="1", user_id="5")["redirect_url"]
    status, _, page = visit(browser, second)
    assert status == 200 and "Continue to sign in" in page
    assert whoami(browser, demo.base) == {"user_id": 1, "client_id": 1}


def test_by_default_a_link_signs_in_at_once(start_demo):
    demo = start_demo(env=CHOSEN)
    browser = new_browser()
    status, _, page = visit(browser, create_token(demo.base, client_id="1")["redirect_url"])
    assert status == 200 and "Signed in as user 1" in page


def test_an_unknown_confirm_mode_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "sso_middleware", "demo", "--confirm", "sometimes"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "argument --confirm: invalid choice: 'sometimes'" in result.stderr, result.stderr
    assert "never" in result.stderr and "signed_in" in result.stderr


# -- logout on GET ----------------------------------------------------------------------------


def test_the_demo_says_it_logs_out_on_get_and_why_deployments_do_not(start_demo):
    demo = start_demo(env=CHOSEN)
    banner = "\n".join(demo.banner)
    assert "logout_on_get=True" in banner and "<img src=/logout>" in banner
    helped = subprocess.run(
        [sys.executable, "-m", "sso_middleware", "demo", "--help"], capture_output=True, text=True, timeout=30
    )
    assert "logout_on_get=True" in helped.stdout and "<img src=/logout>" in helped.stdout


# -- the log ----------------------------------------------------------------------------------


def test_the_audit_log_shows_with_timestamps(start_demo):
    demo = start_demo(env=CHOSEN)
    visit(new_browser(), demo.base + "/oauth/singlesignon.php?access_token=not-a-token")
    log = demo.stop()
    line = "^" + TIMESTAMP + "INFO sso_middleware: Malformed Single Sign-On request"
    assert re.search(line, log, re.MULTILINE), log


def test_logging_the_process_configured_is_left_as_it_is(start_demo):
    """A program that routes the package's log itself and then runs the
    demo gets its own lines, not a second, timestamped copy of each."""
    program = textwrap.dedent(
        """
        import logging, sys
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("OWN %(levelname)s %(message)s"))
        logging.getLogger("sso_middleware").addHandler(handler)
        logging.getLogger("sso_middleware").setLevel(logging.INFO)
        from sso_middleware.cli import main
        sys.exit(main(["demo", "--port", "0"]))
        """
    )
    demo = start_demo(command=[sys.executable, "-c", program], env=CHOSEN)
    visit(new_browser(), demo.base + "/oauth/singlesignon.php?access_token=not-a-token")
    log = demo.stop()
    assert log.count("Malformed Single Sign-On request") == 1, log
    assert "OWN INFO Malformed Single Sign-On request" in log


# -- the credentials it prints ----------------------------------------------------------------


def test_the_export_line_it_prints_calls_the_api(start_demo):
    demo = start_demo()
    [line] = [line.strip() for line in demo.banner if line.strip().startswith("export ")]
    credentials = exported(line)
    assert credentials["SSO_DEMO_API_IDENTIFIER"].startswith("demo-")
    assert f"identifier={credentials['SSO_DEMO_API_IDENTIFIER']}" in demo.banner[1]
    assert create_token(demo.base, *credentials.values(), client_id="1")["result"] == "success"


def test_pasting_the_export_line_keeps_the_credentials_across_restarts(start_demo):
    first = start_demo()
    [line] = [line.strip() for line in first.banner if line.strip().startswith("export ")]
    credentials = exported(line)
    first.stop()
    again = start_demo(env=credentials)
    assert not any("export" in line for line in again.banner)
    assert credentials["SSO_DEMO_API_SECRET"] not in "\n".join(again.banner)
    assert create_token(again.base, *credentials.values(), client_id="1")["result"] == "success"


def test_only_what_it_generated_is_exported(start_demo):
    demo = start_demo(env={"SSO_DEMO_API_SECRET": API_SECRET})
    [line] = [line.strip() for line in demo.banner if line.strip().startswith("export ")]
    assert "SSO_DEMO_API_SECRET" not in line and API_SECRET not in "\n".join(demo.banner)
    identifier = exported(line)["SSO_DEMO_API_IDENTIFIER"]
    assert create_token(demo.base, identifier, API_SECRET, client_id="1")["result"] == "success"

    chosen = start_demo(env={"SSO_DEMO_API_IDENTIFIER": "ops team's"})
    [line] = [line.strip() for line in chosen.banner if line.strip().startswith("export ")]
    assert "SSO_DEMO_API_IDENTIFIER" not in line
    secret = exported(line)["SSO_DEMO_API_SECRET"]
    assert create_token(chosen.base, "ops team's", secret, client_id="1")["result"] == "success"


@pytest.mark.parametrize("env", [{}, {"SSO_DEMO_API_IDENTIFIER": "ops team's"}], ids=["generated", "chosen"])
def test_the_request_it_suggests_works_as_printed(start_demo, env):
    demo = start_demo(env=env)
    suggested = demo.banner[demo.banner.index("Try:") + 1 : -1]
    result = subprocess.run(
        ["sh", "-c", "\n".join(suggested)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], **env},
    )
    assert json.loads(result.stdout)["result"] == "success", (suggested, result.stdout, result.stderr)


def test_the_export_line_quotes_what_the_shell_would_read():
    odd = DemoCredentials("x'; echo pwned; '", '$(id) `id` "q" \\ s p', frozenset(CHOSEN))
    assert exported(odd.export_line()) == {
        "SSO_DEMO_API_IDENTIFIER": odd.identifier,
        "SSO_DEMO_API_SECRET": odd.secret,
    }
    assert DemoCredentials("a", "b", frozenset()).export_line() is None


# -- --port ----------------------------------------------------------------------------


def test_a_port_out_of_range_is_a_usage_error():
    """Not served on another port: 70000 would bind 70000 - 65536."""
    result = subprocess.run(
        [sys.executable, "-m", "sso_middleware", "demo", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "argument --port" in result.stderr, result.stderr


# -- /metrics -------------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text``."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    [value] = re.findall(rf"^{name}{{{re.escape(wanted)}}} (\S+)$", text, flags=re.M)
    return float(value)


def test_the_demo_serves_prometheus_metrics(start_demo):
    demo = start_demo(env=CHOSEN)
    assert f"Prometheus metrics on {demo.base}/metrics" in demo.banner
    browser = new_browser()
    link = create_token(demo.base, client_id="1")["redirect_url"]
    assert visit(browser, link)[0] == 200
    assert visit(new_browser(), link)[0] == 403  # a replay

    status, _, text = visit(new_browser(), demo.base + "/metrics")
    assert status == 200
    assert metric(text, "sso_tokens_minted_total", channel="admin_api") == 1
    assert metric(text, "sso_redemptions_total", outcome="signed_in", reason="") == 1
    assert metric(text, "sso_redemptions_total", outcome="replay", reason="") == 1


def test_without_the_metrics_extra_metrics_is_a_404_not_the_portal(monkeypatch):
    """A scraper pointed at the demo must not parse the portal's page."""
    from webtest import TestApp

    from sso_middleware import Stores, demo

    monkeypatch.setattr(demo, "metrics_available", lambda: False)
    app = TestApp(demo.build_demo(8000, Stores.memory(), API_ID, API_SECRET, "k" * 32))
    response = app.get("/metrics", status=404)
    assert "install the metrics extra" in response.text
    assert app.get("/").status_int == 200
