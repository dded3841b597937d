"""Audit events as log lines: one JSON object per line with python-json-logger,
configured exactly as docs/howto/json-logs.md shows (``dictConfig`` and an
ini file's logging sections), and the example portals' timestamped lines."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from sso_middleware.users import AccountStatus
from tests.support.helpers import (
    API_PATH,
    API_SECRET,
    COOKIE_NAME,
    ROOT,
    SECRET_KEY,
    api_form,
    browser,
    doc_block,
    sso_path,
)
from tests.support.live import new_browser, serve_process
from tests.support.redis_server import free_port

HOWTO = ROOT / "docs" / "howto" / "json-logs.md"
CLOSED = 'Single Sign-On authentication denied for "Closed" User ID: 1'
#: How each configuration names the audit fields.
PLAIN = {"event": "event", "reason": "reason", "client_id": "client_id", "user_id": "user_id"}
PREFIXED = {name: f"sso_{name}" for name in PLAIN}


def howto_block(language: str, marker: str) -> str:
    """The one ``language`` code block of the how-to that contains ``marker``."""
    return doc_block(HOWTO, language, marker)


def configure_with_dict_config(tmp_path) -> None:
    exec(howto_block("python", "dictConfig"), {})


def configure_with_ini(tmp_path) -> None:
    ini = tmp_path / "logging.ini"
    ini.write_text(howto_block("ini", "[formatter_json]"))
    logging.config.fileConfig(ini, disable_existing_loggers=False)  # as pserve and gunicorn call it


@pytest.fixture
def logging_restored(capsys):
    """Put the root and ``sso_middleware`` loggers back as they were (before
    capsys closes the stream the configured handlers write to)."""
    loggers = [logging.getLogger(), logging.getLogger("sso_middleware")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, handlers, level, propagate in saved:
        for handler in lg.handlers:
            if handler not in handlers:
                handler.close()
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.mark.parametrize(
    "configure, names",
    [
        pytest.param(configure_with_dict_config, PLAIN, id="dictConfig"),
        pytest.param(configure_with_ini, PREFIXED, id="ini"),
    ],
)
def test_audit_events_are_json_lines(
    configure, names, make_middleware, user_store, logging_restored, capsys, tmp_path
):
    configure(tmp_path)
    middleware = make_middleware()

    # a sign-on: minted through the admin API, redeemed in a browser
    signed_in = browser(middleware)
    first = signed_in.post(API_PATH, api_form(client_id="1", destination="clientarea:invoices")).json
    signed_in.get(sso_path(first["redirect_url"]), status=303)
    cookie = signed_in.cookies[COOKIE_NAME]
    assert signed_in.get("/account/invoices").json["identity"] == [1, 1]

    # a link minted before the account was closed, followed after
    second = signed_in.post(API_PATH, api_form(client_id="1")).json
    user_store.set_status(1, AccountStatus.CLOSED)
    page = browser(middleware).get(sso_path(second["redirect_url"]), status=403)
    assert "Sign-in failed" in page.text

    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    event, reason, client_id, user_id = (names[n] for n in ("event", "reason", "client_id", "user_id"))
    assert [r[event] for r in records] == ["issued", "redeemed", "issued", "denied"]
    issued, redeemed, _, denied = records
    assert (issued[client_id], issued[user_id], issued["sso_actor"]) == (1, 1, "api:billing")
    assert (redeemed[client_id], redeemed[user_id]) == (1, 1)
    assert redeemed["sso_token"] == issued["sso_token"]
    assert denied[reason] == denied["message"] == CLOSED
    assert (denied[client_id], denied[user_id]) == (1, 1)  # indexable without parsing the reason
    assert denied["levelname"] == "WARNING" and issued["levelname"] == "INFO"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", r["asctime"]) for r in records)
    assert all(r["name"] == "sso_middleware" for r in records)

    # nothing in any line lets anyone sign in or forge anything
    session_secret = cookie.split(".")[1]
    never = [first["access_token"], second["access_token"], cookie, session_secret, API_SECRET, SECRET_KEY]
    for line in lines:
        for value in never:
            assert value not in line


# The example portals --------------------------------------------------------


@pytest.mark.parametrize("framework", ["flask", "pyramid", "bottle"])
def test_the_example_portals_log_timestamped_audit_lines(framework, redis_server, tmp_path):
    """``scripts/example <framework>``: each sign-on shows in its output with
    the time it happened, and the token does not."""
    port, api_secret, log = free_port(), "example-" + "s" * 32, tmp_path / "example.log"
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", f"examples.{framework}_app.app", "--port", str(port)]
    env = {**os.environ, "SSO_DEMO_API_SECRET": api_secret}
    with serve_process([*command, "--redis-url", redis_server.url], url=url + "/", log=log, env=env):
        form = {"identifier": "demo", "secret": api_secret, "client_id": "1"}
        data = urllib.parse.urlencode(api_form(**form)).encode()
        with urllib.request.urlopen(url + API_PATH, data, timeout=5) as r:
            token = json.load(r)
        with new_browser().open(token["redirect_url"], timeout=5) as landing:
            assert landing.status == 200
    output = log.read_text()
    timestamped = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \[\d+\] sso_middleware: "
    assert re.search(timestamped + r"Issued Single Sign-On token \S+ for User ID: 1, client 1", output, re.M)
    assert re.search(
        timestamped + r"Single Sign-On token \S+ redeemed for User ID: 1, client 1", output, re.M
    )
    assert token["access_token"] not in output
