"""The command line: the demo served for real, create-token and hash-secret."""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from sso_middleware.credentials import hash_secret
from tests.support.helpers import API_PATH, SECRET_KEY, browser, sso_path
from tests.support.redis_server import free_port
from tests.support.redis_topologies import documented_acl_rules

API_ID, API_SECRET = "demo-admin", "demo-secret-" + "z" * 32


def cli(*args, input=None, env=None):
    """Run the command line with the deployment's keys in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "sso_middleware", *args],
        capture_output=True,
        text=True,
        timeout=30,
        input=input,
        env={
            **os.environ,
            "SSO_SECRET_KEYS": SECRET_KEY,
            "SSO_USER_STORE": "sso_middleware.demo:demo_user_store",
            **(env or {}),
        },
    )


def create_token_cli(redis_url, *options, system_url="https://portal.example.com", client_id="1", env=None):
    """``create-token`` on ``redis_url`` for ``client_id`` at ``system_url``;
    ``options`` add to the command line."""
    return cli(
        "create-token",
        "--redis-url",
        redis_url,
        "--system-url",
        system_url,
        "--client-id",
        client_id,
        *options,
        env=env,
    )


@pytest.fixture(params=["memory", "redis"])
def demo(request):
    args = ["demo", "--port", "0"]
    if request.param == "redis":
        args += ["--redis-url", request.getfixturevalue("redis_server").url]
    process = subprocess.Popen(
        [sys.executable, "-m", "sso_middleware", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SSO_DEMO_API_IDENTIFIER": API_ID, "SSO_DEMO_API_SECRET": API_SECRET},
    )
    first_line = process.stdout.readline()
    base = first_line.split()[3]
    assert base.startswith("http://127.0.0.1:"), first_line
    process.banner = first_line + "".join(process.stdout.readline() for _ in range(3))
    yield base, process
    process.terminate()
    process.wait(10)


def create_token(base, **inputs):
    data = urllib.parse.urlencode(
        {
            "action": "CreateSsoToken",
            "identifier": API_ID,
            "secret": API_SECRET,
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


def test_demo_end_to_end(demo):
    base, process = demo
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    result = create_token(base, client_id="1", destination="clientarea:product_details", service_id="101")
    assert result["result"] == "success"
    token = result["access_token"]
    with browser.open(result["redirect_url"], timeout=5) as landing:
        assert landing.url == base + "/clientarea.php?action=productdetails&id=101"
        assert "Signed in as user 1 for client 1" in landing.read().decode()
    with browser.open(base + "/whoami", timeout=5) as r:
        assert json.load(r) == {"user_id": 1, "client_id": 1}

    with pytest.raises(urllib.error.HTTPError) as replay:
        urllib.request.urlopen(result["redirect_url"], timeout=5)
    assert replay.value.code == 403
    replay.value.close()

    assert create_token(base, client_id="3") == {
        "result": "error",
        "message": "SSO authentication blocked for client 3",
    }

    browser.open(urllib.request.Request(base + "/logout", method="GET"), timeout=5).close()
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        browser.open(base + "/whoami", timeout=5)
    assert anonymous.value.code == 401
    anonymous.value.close()

    process.terminate()
    _, log = process.communicate(timeout=10)
    # The operator chose the secret: the banner names its variable, never its value.
    assert "secret=(from $SSO_DEMO_API_SECRET)" in process.banner
    assert API_SECRET not in process.banner
    assert "Unable to authenticate with Single Sign-On token" in log
    assert "access_token=[redacted]" in log
    assert token not in log


def test_create_token_against_redis(redis_server, redis_client):
    result = create_token_cli(
        redis_server.url, "--destination", "clientarea:invoices", system_url="https://portal.example.com/"
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["redirect_url"] == (
        "https://portal.example.com/oauth/singlesignon.php?access_token=" + response["access_token"]
    )
    keys = list(redis_client.scan_iter("sso:v2:t:*"))
    assert len(keys) == 1 and response["access_token"].encode() not in keys[0]


def test_a_token_minted_by_the_cli_signs_in_with_the_deployment_keys(redis_server, make_middleware):
    result = create_token_cli(redis_server.url)
    app = browser(make_middleware())
    app.get(sso_path(json.loads(result.stdout)["redirect_url"]), status=303)
    assert json.loads(app.get("/page").body)["identity"] == [1, 1]


def test_a_token_minted_with_other_keys_signs_nobody_in(redis_server, make_middleware):
    result = create_token_cli(redis_server.url, env={"SSO_SECRET_KEYS": "o" * 32})
    app = browser(make_middleware())
    app.get(sso_path(json.loads(result.stdout)["redirect_url"]), status=403)


def test_create_token_needs_the_deployment_keys(redis_server):
    result = create_token_cli(redis_server.url, env={"SSO_SECRET_KEYS": ""})
    assert result.returncode != 0 and "SSO_SECRET_KEYS" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "who, ended, kept",
    [
        (["--user-id", "5"], (5, 1), (1, 1)),
        (["--client-id", "1"], (5, 1), (2, 2)),
    ],
)
def test_end_sessions_ends_a_users_or_an_accounts_sessions(redis_server, make_middleware, who, ended, kept):
    middleware = make_middleware()
    apps = {}
    for user_id, client_id in (ended, kept):
        apps[user_id] = browser(middleware)
        apps[user_id].get(
            sso_path(middleware.create_sso_token(client_id=client_id, user_id=user_id)["redirect_url"]),
            status=303,
        )
    result = cli("end-sessions", "--redis-url", redis_server.url, *who)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["result"] == "success"
    assert json.loads(apps[ended[0]].get("/page").body)["identity"] is None
    assert json.loads(apps[kept[0]].get("/page").body)["identity"] == list(kept)


@pytest.mark.parametrize("args", [[], ["--user-id", "0"], ["--client-id", "x"]])
def test_end_sessions_refuses_bad_input(redis_server, args):
    result = cli("end-sessions", "--redis-url", redis_server.url, *args)
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_create_token_reports_errors(redis_server):
    result = create_token_cli(redis_server.url, client_id="4")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "result": "error",
        "message": "SSO authentication blocked for client 4",
    }


def test_create_token_with_redis_down():
    result = create_token_cli(f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert "error: Redis error" in result.stderr and "Traceback" not in result.stderr


def test_create_token_bad_user_store(redis_server):
    result = create_token_cli(redis_server.url, "--user-store", "nope")
    assert result.returncode != 0 and "write package.module:factory" in result.stderr


def test_hash_secret():
    result = cli("hash-secret", input="s3cret\n")
    assert result.returncode == 0
    assert result.stdout.strip() == hash_secret("s3cret")
    assert cli("hash-secret", input="\n").returncode == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["credentials", "list", "--redis-url", "bogus://x"], "redis://"),
        (
            [
                "create-token",
                "--redis-url",
                "http://x",
                "--system-url",
                "https://p.example",
                "--client-id",
                "1",
            ],
            "redis://",
        ),
        (
            ["credentials", "list", "--redis-url", "redis://127.0.0.1:1/0", "--user-store", "os:sep"],
            "not a factory",
        ),
    ],
)
def test_bad_operator_input_is_an_error_not_a_traceback(args, message):
    result = cli(*args)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_operator_commands_act_on_the_deployments_own_prefix(redis_server, redis_client, make_middleware):
    """A deployment with its own redis_prefix: revoking and minting through
    the command line reach that deployment, not the default prefix."""
    from sso_middleware.stores import Stores

    middleware = make_middleware(stores=Stores.redis(redis_client, prefix="portal-a:"))
    app = browser(middleware)
    app.get(sso_path(middleware.create_sso_token(client_id=1)["redirect_url"]), status=303)
    result = cli("end-sessions", "--redis-url", redis_server.url, "--prefix", "portal-a:", "--user-id", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(app.get("/page").body)["identity"] is None
    minted = create_token_cli(redis_server.url, "--prefix", "portal-a:")
    app.get(sso_path(json.loads(minted.stdout)["redirect_url"]), status=303)
    assert not list(redis_client.scan_iter("sso:v2:*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["end-sessions", "--redis-url", "redis://127.0.0.1:99999/0", "--user-id", "1"],
            "Port out of range",
        ),
        (
            ["credentials", "list", "--redis-url", "redis://127.0.0.1:1/0?socket_timeout=abc"],
            "socket_timeout",
        ),
        (["credentials", "list", "--redis-url", "redis://127.0.0.1:1/0?foo=bar"], "foo"),
        (
            ["credentials", "list", "--redis-url", "redis://127.0.0.1:1/0", "--user-store", "json:loads"],
            "cannot make the user store",
        ),
        (
            ["credentials", "list", "--redis-url", "redis://127.0.0.1:1/0", "--user-store", "os:getcwd"],
            "not a user store",
        ),
    ],
)
def test_more_bad_operator_input_is_an_error_not_a_traceback(args, message):
    result = cli(*args)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--system-url", "javascript:alert(1)//"], "--system-url"),
        (["--system-url", "https://portal.example.com", "--sso-path", ""], "--sso-path"),
        (["--system-url", "https://portal.example.com"], "--user-store"),
    ],
)
def test_create_token_refuses_what_would_make_an_unusable_link(redis_server, args, message):
    result = cli(
        "create-token",
        "--redis-url",
        redis_server.url,
        "--client-id",
        "1",
        *args,
        env={"SSO_USER_STORE": ""} if message == "--user-store" else None,
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_hash_secret_reads_a_line_ending_in_crlf_as_the_same_secret():
    assert cli("hash-secret", input="s3cret\r\n").stdout == cli("hash-secret", input="s3cret\n").stdout


@pytest.mark.parametrize(
    "args",
    [
        ["end-sessions", "--redis-url", "redis://:hunter2-password@[::1/0", "--user-id", "1"],
        [
            "create-token",
            "--redis-url",
            "redis://127.0.0.1:1/0",
            "--system-url",
            "https://u:hunter2-password@[::1",
            "--client-id",
            "1",
        ],
    ],
)
def test_a_malformed_url_is_refused_without_showing_it(args):
    result = cli(*args)
    assert result.returncode != 0 and "hunter2" not in result.stderr + result.stdout, result.stderr


def test_a_malformed_url_from_the_environment_is_not_shown_either():
    result = cli("credentials", "list", env={"SSO_REDIS_URL": "redis://:hunter2-password@[::1/0"})
    assert result.returncode != 0 and "hunter2" not in result.stderr + result.stdout, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--system-url", "https://portal.example.com#frag"],
        ["--system-url", "https://portal.example.com?x=1"],
        ["--system-url", "https://u:p@portal.example.com"],
        ["--system-url", "https://portal.example.com:99999"],
        ["--system-url", "https://portal.example.com/a b"],
        ["--system-url", "https://portal.example.com", "--sso-path", "/x?y"],
        ["--system-url", "https://portal.example.com", "--sso-path", "/x#y"],
    ],
)
def test_create_token_refuses_a_base_url_or_path_the_middleware_would(redis_server, redis_client, args):
    result = cli("create-token", "--redis-url", redis_server.url, "--client-id", "1", *args)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert not list(redis_client.scan_iter("*"))  # nothing minted


def test_end_sessions_refuses_a_prefix_nothing_is_stored_under(redis_server, redis_client, make_middleware):
    from sso_middleware.stores import Stores

    middleware = make_middleware(stores=Stores.redis(redis_client, prefix="portal-a:"))
    app = browser(middleware)
    app.get(sso_path(middleware.create_sso_token(client_id=1)["redirect_url"]), status=303)
    for typo in ("portal-a", "portal_a:"):
        result = cli("end-sessions", "--redis-url", redis_server.url, "--prefix", typo, "--user-id", "1")
        assert result.returncode != 0 and "nothing of a deployment" in result.stderr, result.stderr
    assert not list(redis_client.scan_iter("portal_a:*")) and not list(redis_client.scan_iter("portal-ae:*"))


def test_end_sessions_with_redis_down_is_an_error_line():
    result = cli("end-sessions", "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--user-id", "1")
    assert result.returncode == 1 and "error: Redis error" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_end_sessions_works_as_the_documented_acl_user(redis_server, redis_client, make_middleware):
    """The ACL user of docs/deployment.md may not SCAN: the prefix check is
    skipped with a warning, and the revocation still happens."""
    rules = [">acl-password" if rule == ">PASSWORD" else rule for rule in documented_acl_rules()]
    redis_client.execute_command("ACL", "SETUSER", "sso-app", "reset", *rules)
    try:
        middleware = make_middleware()
        app = browser(middleware)
        app.get(sso_path(middleware.create_sso_token(client_id=1)["redirect_url"]), status=303)
        url = redis_server.url.replace("redis://", "redis://sso-app:acl-password@")
        result = cli("end-sessions", "--redis-url", url, "--user-id", "1")
        assert result.returncode == 0 and "no SCAN permission" in result.stderr, result.stderr
        assert json.loads(app.get("/page").body)["identity"] is None
    finally:
        redis_client.execute_command("ACL", "DELUSER", "sso-app")
