"""The operator commands (create-token, end-sessions, credentials, hash-secret):
their answers, shaped as the admin API's, and their refusals of bad input.
The demo has its own tests, in tests/test_demo.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sso_middleware.credentials import hash_secret
from tests.support.helpers import API_PATH, SECRET_KEY, api_form, browser, sso_path
from tests.support.redis_server import free_port
from tests.support.redis_topologies import documented_acl_rules


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


def answer(result) -> dict:
    """The one JSON document a command printed: one line, nothing else."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.endswith("\n"), result.stdout
    return json.loads(result.stdout)


def failure(result) -> str:
    """The message of a command's error answer, which exits 1."""
    assert result.returncode == 1, result.stderr
    body = answer(result)
    assert list(body) == ["result", "message"] and body["result"] == "error", body
    return body["message"]


def usage_error(result) -> str:
    """What a command line that cannot run printed: argparse's usage and
    error on stderr, exit 2, nothing on stdout."""
    assert result.returncode == 2 and result.stdout == "", (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "usage: sso-middleware" in result.stderr
    return result.stderr


def api(app, action: str, **fields: str) -> dict:
    """The admin API's JSON answer to ``action``."""
    return json.loads(app.post(API_PATH, api_form(action=action, **fields)).body)


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
    assert "SSO_SECRET_KEYS" in failure(result)


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


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give --client-id, --user-id or both"),
        (["--user-id", "0"], "argument --user-id: a positive whole number"),
        (["--client-id", "x"], "argument --client-id: a positive whole number"),
    ],
)
def test_end_sessions_refuses_bad_input(redis_server, args, message):
    assert message in usage_error(cli("end-sessions", "--redis-url", redis_server.url, *args))


def test_create_token_reports_errors(redis_server):
    result = create_token_cli(redis_server.url, client_id="4")
    assert failure(result) == "SSO authentication blocked for client 4"


def test_create_token_with_redis_down():
    result = create_token_cli(f"redis://127.0.0.1:{free_port()}/0")
    assert failure(result).startswith("Redis error: ")


def test_create_token_bad_user_store(redis_server):
    result = create_token_cli(redis_server.url, "--user-store", "nope")
    assert "argument --user-store: 'nope': write package.module:factory" in usage_error(result)


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
    assert message in usage_error(cli(*args))


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
    ],
)
def test_a_redis_url_redis_py_would_refuse_is_a_usage_error(args, message):
    refused = usage_error(cli(*args))
    assert "argument --redis-url: the Redis URL is not usable: " in refused and message in refused


@pytest.mark.parametrize(
    "factory, message",
    [
        ("json:loads", "cannot make the user store with 'json:loads': TypeError"),
        ("os:getcwd", "'os:getcwd' made a str, not a user store"),
    ],
)
def test_a_factory_that_makes_no_user_store_is_an_error_answer(factory, message):
    result = cli("credentials", "list", "--redis-url", "redis://127.0.0.1:1/0", "--user-store", factory)
    assert failure(result).startswith(message)


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
    assert message in usage_error(result)


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


def test_a_url_whose_password_holds_a_slash_is_not_shown():
    result = cli("credentials", "list", "--redis-url", "redis://:Hunter2Secret/abc@127.0.0.1:6379/0")
    assert result.returncode == 2 and "Hunter2" not in result.stderr + result.stdout, result.stderr


@pytest.mark.parametrize("command", [["credentials", "list"], ["end-sessions", "--client-id", "1"]])
def test_a_prefix_that_is_not_text_is_a_usage_error(redis_server, command):
    result = cli(*command, "--redis-url", redis_server.url, "--prefix", "sso:\udcff:")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "argument --prefix" in result.stderr and result.stdout == ""


def test_a_malformed_url_from_the_environment_is_not_shown_either():
    result = cli("credentials", "list", env={"SSO_REDIS_URL": "redis://:hunter2-password@[::1/0"})
    assert result.returncode != 0 and "hunter2" not in result.stderr + result.stdout, result.stderr


SYSTEM_URL_REFUSED = "argument --system-url: system_url must be the public base URL of the app"
SSO_PATH_REFUSED = "argument --sso-path: the SSO path"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--system-url", "ftp://portal.example.com"], SYSTEM_URL_REFUSED),
        (["--system-url", "ftp://x"], SYSTEM_URL_REFUSED),
        (["--system-url", "portal.example.com"], SYSTEM_URL_REFUSED),
        (["--system-url", "https://portal.example.com#frag"], SYSTEM_URL_REFUSED),
        (["--system-url", "https://portal.example.com?x=1"], SYSTEM_URL_REFUSED),
        (["--system-url", "https://u:p@portal.example.com"], SYSTEM_URL_REFUSED),
        (["--system-url", "https://portal.example.com:99999"], SYSTEM_URL_REFUSED),
        (["--system-url", "https://portal.example.com/a b"], SYSTEM_URL_REFUSED),
        (["--system-url", "https://portal.example.com", "--sso-path", "/x?y"], SSO_PATH_REFUSED),
        (["--system-url", "https://portal.example.com", "--sso-path", "/x#y"], SSO_PATH_REFUSED),
    ],
)
def test_create_token_refuses_a_base_url_or_path_the_middleware_would(
    redis_server, redis_client, args, message
):
    """What ``check_system_url`` and ``check_path`` refuse, as the option
    named and the reason, before anything is minted."""
    result = cli("create-token", "--redis-url", redis_server.url, "--client-id", "1", *args)
    assert message in usage_error(result)
    assert not list(redis_client.scan_iter("*"))  # nothing minted


def test_create_token_takes_the_urls_the_middleware_takes(redis_server):
    for url in ("http://127.0.0.1:8000", "https://[::1]:8443/portal/", "HTTPS://portal.example.com"):
        assert answer(create_token_cli(redis_server.url, system_url=url))["result"] == "success", url


def test_end_sessions_refuses_a_prefix_nothing_is_stored_under(redis_server, redis_client, make_middleware):
    from sso_middleware.stores import Stores

    middleware = make_middleware(stores=Stores.redis(redis_client, prefix="portal-a:"))
    app = browser(middleware)
    app.get(sso_path(middleware.create_sso_token(client_id=1)["redirect_url"]), status=303)
    for typo in ("portal-a", "portal_a:"):
        result = cli("end-sessions", "--redis-url", redis_server.url, "--prefix", typo, "--user-id", "1")
        assert failure(result).startswith("nothing of a deployment is stored under the prefix")
    assert not list(redis_client.scan_iter("portal_a:*")) and not list(redis_client.scan_iter("portal-ae:*"))


def test_end_sessions_with_redis_down_is_an_error_answer():
    result = cli("end-sessions", "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--user-id", "1")
    assert failure(result).startswith("Redis error: ")


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
        assert answer(result) == {"result": "success", "user_id": 1}
        assert "no SCAN permission" in result.stderr, result.stderr
        assert json.loads(app.get("/page").body)["identity"] is None
    finally:
        redis_client.execute_command("ACL", "DELUSER", "sso-app")


# -- answers shaped as the admin API's -------------------------------------------------------


def test_create_token_answers_as_create_sso_token(redis_server, app):
    minted = answer(create_token_cli(redis_server.url, "--destination", "clientarea:invoices"))
    assert list(minted) == list(api(app, "CreateSsoToken", client_id="1", destination="clientarea:invoices"))
    assert list(minted) == ["result", "access_token", "redirect_url"]
    refused = create_token_cli(redis_server.url, client_id="3")
    assert failure(refused) == api(app, "CreateSsoToken", client_id="3")["message"]


def test_end_sessions_answers_as_end_sso_sessions(redis_server, app):
    app.get(sso_path(api(app, "CreateSsoToken", client_id="1")["redirect_url"]), status=303)
    ended = cli("end-sessions", "--redis-url", redis_server.url, "--client-id", "1", "--user-id", "5")
    assert ended.returncode == 0, ended.stderr
    assert answer(ended) == api(app, "EndSsoSessions", client_id="1", user_id="5")
    assert answer(ended) == {"result": "success", "client_id": 1, "user_id": 5}


def credentials_cli(redis_url: str, action: str, *args: str):
    return cli("credentials", action, "--redis-url", redis_url, *args)


def test_credential_commands_answer_as_the_admin_api(redis_server, app):
    """Each command prints what its admin API action answers, field for
    field, so a script reads either the same way."""
    url = redis_server.url
    by_api = api(app, "CreateOAuthCredential", grantType="single_sign_on", serviceId="101")
    created = credentials_cli(url, "create", "--service-id", "101", "--scope", "clientarea:invoices")
    assert created.returncode == 0, created.stderr
    by_cli = answer(created)
    assert list(by_cli) == list(by_api) == ["result", "credentialId", "clientIdentifier", "clientSecret"]
    assert by_cli["clientSecret"] not in created.stderr

    listed = answer(credentials_cli(url, "list"))
    assert listed == api(app, "ListOAuthCredentials")
    assert listed["totalresults"] == 2 and "clientSecret" not in json.dumps(listed)
    assert [c["scope"] for c in listed["clients"]] == ["clientarea:sso", "clientarea:sso clientarea:invoices"]

    credential_id = str(by_cli["credentialId"])
    reset = answer(credentials_cli(url, "reset-secret", "--credential-id", credential_id))
    reset_by_api = api(
        app, "UpdateOAuthCredential", credentialId=str(by_api["credentialId"]), resetSecret="true"
    )
    assert list(reset) == list(reset_by_api) == ["result", "credentialId", "clientIdentifier", "clientSecret"]
    assert reset["clientIdentifier"] == by_cli["clientIdentifier"]
    assert reset["clientSecret"] != by_cli["clientSecret"]

    deleted = answer(credentials_cli(url, "delete", "--credential-id", credential_id))
    assert deleted == {"result": "success", "credentialId": by_cli["credentialId"]}
    assert list(deleted) == list(api(app, "DeleteOAuthCredential", credentialId=str(by_api["credentialId"])))
    assert answer(credentials_cli(url, "list")) == {"result": "success", "totalresults": 0, "clients": []}

    refused = credentials_cli(url, "delete", "--credential-id", credential_id)
    assert failure(refused) == api(app, "DeleteOAuthCredential", credentialId=credential_id)["message"]


def test_credentials_import_answers_with_a_result(redis_server, redis_client):
    imported = credentials_cli(redis_server.url, "import", "--from-prefix", "sso:v1:")
    assert answer(imported) == {"result": "success", "applied": False, "credentials": [], "unreadable": 0}
    assert "--apply" in imported.stderr  # the advice is a note, not part of the answer


# -- --scope --------------------------------------------------------------------------------


def test_scope_given_several_times_keeps_every_destination_once(redis_server, redis_client):
    created = credentials_cli(
        redis_server.url,
        "create",
        "--service-id",
        "101",
        "--scope",
        "clientarea:invoices",
        "--scope",
        "clientarea:services",
        "--scope",
        "clientarea:domains  clientarea:invoices",
    )
    assert answer(created)["result"] == "success"
    [listed] = answer(credentials_cli(redis_server.url, "list"))["clients"]
    assert listed["scope"] == "clientarea:sso clientarea:invoices clientarea:services clientarea:domains"


def test_the_scope_help_says_it_may_be_repeated():
    helped = cli("credentials", "create", "--help")
    assert "repeat" in helped.stdout and "counts once" in helped.stdout


def test_a_scope_that_is_no_destination_is_refused_as_the_api_refuses_it(redis_server, redis_client):
    result = credentials_cli(
        redis_server.url,
        "create",
        "--service-id",
        "101",
        "--scope",
        "clientarea:invoices",
        "--scope",
        "bogus",
    )
    assert failure(result) == 'The requested scope "bogus" is invalid.'
    assert answer(credentials_cli(redis_server.url, "list"))["clients"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["create-token", "--ttl", "²"], "argument --ttl: whole seconds from 1 to"),
        (
            ["end-sessions", "--client-id", "1", "--absolute-timeout", str(2**63)],
            "argument --absolute-timeout",
        ),
    ],
)
def test_seconds_out_of_range_are_a_usage_error(redis_server, args, message):
    assert message in usage_error(cli(*args, "--redis-url", redis_server.url))
