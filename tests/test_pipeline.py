"""examples/pipeline.ini: served as it is by pserve (with waitress) and by
gunicorn, given only $SSO_SECRET_KEYS and a Redis; loaded by PasteDeploy with
its development defaults or the values given on the command line; and served
by gunicorn with several worker processes sharing Redis and the accounts."""

from __future__ import annotations

import concurrent.futures
import http.cookiejar
import json
import logging.config
import os
import re
import stat
import subprocess
import sys
import tempfile
import typing as t
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from paste.deploy import loadapp

from examples import pipeline as example
from sso_middleware import SSOMiddleware
from sso_middleware.credentials import hash_secret
from tests.support.helpers import API_PATH, ROOT, SSO_PATH, doc_block
from tests.support.live import pipeline_args, serve_gunicorn, serve_process
from tests.support.redis_server import free_port

SIGN_INS = 24
#: The ini as a user names it, from the checkout.
INI = "examples/pipeline.ini"
#: The programs of this virtualenv, as a user runs them.
BIN = Path(sys.executable).parent
#: A timestamped audit line of examples/pipeline.ini's logging section.
REDEEMED_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \[\d+\] sso_middleware:"
    r" Single Sign-On token \S+ redeemed for User ID: 1, client 1$",
    re.M,
)
#: Files a run could leave in the checkout: databases, sockets, logs, pids.
LEFTOVERS = ("*.db", "*.db-journal", "*.sqlite", "*.ctl", "*.log", "*.pid")


def browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def leftovers() -> set[Path]:
    return {path for folder in (ROOT, ROOT / "examples") for p in LEFTOVERS for path in folder.glob(p)}


# Served as it is -----------------------------------------------------------


def pserve(port: int, redis_url: str) -> list[str]:
    """pserve runs waitress, from the ini's [server:main]."""
    return [
        str(BIN / "pserve"),
        INI,
        f"http_port={port}",
        f"public_url=http://127.0.0.1:{port}",
        f"redis={redis_url}",
    ]


def gunicorn(port: int, redis_url: str) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "--paste",
        INI,
        "--bind",
        f"127.0.0.1:{port}",
        "--paste-global",
        f"public_url=http://127.0.0.1:{port}",
        "--paste-global",
        f"redis={redis_url}",
    ]


#: Each way to serve the ini, and the server that answers. Neither needs
#: PYTHONPATH: gunicorn imports from the current folder, and scripts/setup
#: puts the checkout on the virtualenv's path for pserve.
SERVERS = {"pserve": (pserve, "waitress"), "gunicorn": (gunicorn, "gunicorn")}


def user_environment(tmp_path: Path, *, keys: str | None) -> dict[str, str]:
    """The environment of a user's shell: no setting of ours but
    ``SSO_SECRET_KEYS``, no PYTHONPATH; the system's
    temporary directory is this test's, where the accounts go by default."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SSO_", "PORTAL_")) and name != "PYTHONPATH"
    }
    env["TMPDIR"] = str(tmp_path)
    if keys is not None:
        env["SSO_SECRET_KEYS"] = keys
    return env


def mint_from_the_command_line(env: dict[str, str], url: str, redis_url: str) -> str:
    """``sso-middleware create-token`` with the same keys and accounts: the
    link it prints."""
    result = subprocess.run(
        [
            str(BIN / "sso-middleware"),
            "create-token",
            "--redis-url",
            redis_url,
            "--user-store",
            "examples.pipeline:user_store",
            "--system-url",
            url,
            "--client-id",
            "1",
            "--destination",
            "sso:custom_redirect",
            "--sso-redirect-path",
            "account/invoices",
        ],
        env={**env, "PYTHONPATH": "."},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["redirect_url"]


@pytest.mark.parametrize("name", SERVERS)
def test_the_ini_serves_as_it_is(name, redis_server, tmp_path):
    command, server = SERVERS[name]
    keys = "k" * 32
    env = user_environment(tmp_path, keys=keys)
    port, log, before = free_port(), tmp_path / "server.log", leftovers()
    url = f"http://127.0.0.1:{port}"
    with serve_process(command(port, redis_server.url), url=url + "/", log=log, env=env):
        link = mint_from_the_command_line(env, url, redis_server.url)
        assert link.startswith(url + SSO_PATH + "?access_token=")
        opener = browser()
        with opener.open(link, timeout=5) as landing:
            page = landing.read().decode()
            assert (landing.status, landing.url) == (200, url + "/account/invoices")
            assert landing.headers["Server"].startswith(server)
        assert '<p id="who">Signed in as user 1 for client 1.</p>' in page
        assert "Client 1 has no unpaid invoices." in page
        with opener.open(url + "/whoami", timeout=5) as r:
            assert json.load(r) == {"user_id": 1, "client_id": 1}
    output = log.read_text()
    assert REDEEMED_LINE.search(output), output
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["access_token"][0]
    assert token not in output and keys not in output
    # the accounts are in the user's own temporary folder, nothing in the checkout
    assert (tmp_path / f"sso-middleware-example-{os.geteuid()}" / "portal.db").is_file()
    assert leftovers() == before


@pytest.mark.parametrize(
    "name, keys, message",
    [
        pytest.param("pserve", None, "SSO_SECRET_KEYS is not set", id="pserve-unset"),
        pytest.param("pserve", " \n", "SSO_SECRET_KEYS is empty", id="pserve-empty"),
        pytest.param("gunicorn", "", "SSO_SECRET_KEYS is empty", id="gunicorn-empty"),
    ],
)
def test_without_keys_the_server_stops_naming_the_variable(name, keys, message, tmp_path):
    command, _ = SERVERS[name]
    result = subprocess.run(
        command(free_port(), "redis://127.0.0.1:1/0"),
        env=user_environment(tmp_path, keys=keys),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"ConfigurationError: secret_keys_env: environment variable {message}" in result.stderr


# Loaded by PasteDeploy ------------------------------------------------------


@pytest.fixture
def keys_and_accounts(monkeypatch, tmp_path):
    monkeypatch.setenv("SSO_SECRET_KEYS", "p" * 32)
    monkeypatch.setenv("PORTAL_DB", str(tmp_path / "portal.db"))


def test_the_development_defaults(keys_and_accounts):
    app = loadapp(f"config:{ROOT / INI}")
    assert isinstance(app, SSOMiddleware)
    assert app.system_url == "http://127.0.0.1:8000"
    assert app.sessions.cookie_name == "sso_session"  # no Secure on plain HTTP
    assert API_PATH not in app.endpoints  # no credential, no admin API
    assert app.issuer.destinations.resolve("clientarea:invoices") == "/account/invoices"


def test_values_from_the_command_line_win_over_the_defaults(keys_and_accounts, redis_server, redis_client):
    app = loadapp(
        f"config:{ROOT / INI}",
        global_conf={
            "public_url": "https://portal.example.com",
            "redis": redis_server.url,
            "cookies_secure": "true",
            "admin_api_credentials": f"demo = {hash_secret('x' * 32)}",
        },
    )
    assert app.system_url == "https://portal.example.com"
    assert app.sessions.cookie_name == "__Host-sso_session"
    assert app.endpoints[API_PATH].api_keys.knows("demo")
    assert app.create_sso_token(client_id=1)["result"] == "success"
    assert redis_client.dbsize() == 1  # the token, in the Redis given


# The accounts file -----------------------------------------------------------


def test_the_accounts_live_in_a_private_temporary_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = example.default_db_path()
    assert path == tmp_path / f"sso-middleware-example-{os.geteuid()}" / "portal.db"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_folder_others_may_write_to_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = tmp_path / f"sso-middleware-example-{os.geteuid()}"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(RuntimeError, match="remove it, or set PORTAL_DB"):
        example.default_db_path()


def test_an_existing_database_is_kept(tmp_path):
    path = tmp_path / "portal.db"
    example.create_db(path)
    store = example.SQLiteUserStore(path)
    store.set_sso_allowed(1, False)
    example.create_db(path)
    assert store.get_account(1).sso_allowed is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["portal.db"]  # nothing half-made left


# Several workers ---------------------------------------------------------------


class Workers(t.NamedTuple):
    url: str
    api_secret: str
    log: Path


@pytest.fixture(scope="module")
def workers(redis_server, tmp_path_factory):
    """examples/pipeline.ini served by gunicorn with two workers forked after
    loading the app, the admin API switched on from the command line, on
    real Redis; each request logged as "pid method path status"."""
    folder = tmp_path_factory.mktemp("pipeline")
    port, api_secret = free_port(), "pipeline-" + "s" * 32
    url = f"http://127.0.0.1:{port}"
    args = pipeline_args(port, url, redis_server.url, api_secret, secure_cookies=False)
    env = {**os.environ, "PORTAL_DB": str(folder / "portal.db"), "SSO_SECRET_KEYS": "p" * 32}
    log = folder / "gunicorn.log"
    with serve_gunicorn(args, url=url + "/", log=log, cwd=folder, env=env):
        yield Workers(url, api_secret, log)


def call_api(workers: Workers, **inputs: str) -> dict[str, t.Any]:
    data = urllib.parse.urlencode(
        {
            "action": "CreateSsoToken",
            "identifier": "demo",
            "secret": workers.api_secret,
            "responsetype": "json",
            **inputs,
        }
    ).encode()
    try:
        with urllib.request.urlopen(workers.url + API_PATH, data, timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        with e:
            return json.load(e)


def sign_in(workers: Workers, **inputs: str) -> urllib.request.OpenerDirector:
    """Mint, follow the link in a fresh browser; return the browser."""
    result = call_api(workers, **inputs)
    assert result["result"] == "success", result
    opener = browser()
    with opener.open(result["redirect_url"], timeout=5) as landing:
        assert landing.status == 200
    return opener


def whoami(opener: urllib.request.OpenerDirector, workers: Workers) -> t.Any:
    with opener.open(workers.url + "/whoami", timeout=5) as r:
        return json.load(r)


def test_sign_ins_work_across_worker_processes(workers):
    def one(_: int) -> t.Any:
        return whoami(sign_in(workers, client_id="1", destination="clientarea:invoices"), workers)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(SIGN_INS)))
    assert results == [{"user_id": 1, "client_id": 1}] * SIGN_INS

    served = re.findall(r"<(\d+)> GET /oauth/singlesignon.php 303", workers.log.read_text())
    assert len(served) >= SIGN_INS
    assert len(set(served)) == 2, "both workers redeemed tokens, each with its own Redis pool"


def test_the_log_has_timestamped_audit_lines_and_no_token(workers):
    result = call_api(workers, client_id="1")
    browser().open(result["redirect_url"], timeout=5).close()
    log = workers.log.read_text()
    assert REDEEMED_LINE.search(log), log
    assert result["access_token"] not in log and workers.api_secret not in log


def test_the_security_setting_holds_in_every_worker(workers):
    opener = sign_in(workers, client_id="1")

    def allow_sso(value: str) -> None:
        request = urllib.request.Request(
            workers.url + "/account/security", f"allow_sso={value}".encode(), headers={"Origin": workers.url}
        )
        opener.open(request, timeout=5).close()

    allow_sso("0")
    try:
        for _ in range(6):  # whichever worker answers
            assert call_api(workers, client_id="1") == {
                "result": "error",
                "message": "SSO authentication blocked for client 1",
            }
    finally:
        allow_sso("1")
    assert call_api(workers, client_id="1")["result"] == "success"


def test_gunicorn_logs_json_lines_with_the_howtos_dictionary(redis_server, tmp_path, monkeypatch):
    """docs/howto/json-logs.md: the dictConfig dictionary, saved as JSON,
    given to gunicorn with --log-config-json: it starts, and the audit
    records are JSON objects with the plain field names."""
    captured: list[dict[str, t.Any]] = []
    monkeypatch.setattr(logging.config, "dictConfig", captured.append)
    exec(doc_block(ROOT / "docs" / "howto" / "json-logs.md", "python", "dictConfig"), {})
    [dictionary] = captured
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(dictionary))
    keys = "k" * 32
    env = user_environment(tmp_path, keys=keys)
    port, log = free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    command = [*gunicorn(port, redis_server.url), "--log-config-json", str(config)]
    with serve_process(command, url=url + "/", log=log, env=env):
        link = mint_from_the_command_line(env, url, redis_server.url)
        with browser().open(link, timeout=5) as landing:
            assert landing.url == url + "/account/invoices"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [redeemed] = [r for r in records if r.get("event") == "redeemed"]
    assert (redeemed["user_id"], redeemed["client_id"]) == (1, 1)
