"""Inputs that were once taken too lightly: request bodies over the limit sent
chunked, two client authentication methods at once, a token minted before
its request was fully checked, the demo echoing a secret it was given, and
ini settings that escaped as plain errors."""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import secrets
import socket
import sys
import textwrap
import typing as t
from urllib.parse import quote_plus, urlencode

import pytest
from werkzeug.serving import BaseWSGIServer
from werkzeug.test import EnvironBuilder, encode_multipart, run_wsgi_app

from sso_middleware import ConfigurationError
from sso_middleware.credentials import hash_secret
from sso_middleware.paste import filter_factory
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    ROOT,
    SECRET_KEY,
    SYSTEM_URL,
    TOKEN_PATH,
    api_form,
    echo_app,
    filter_settings,
)
from tests.support.live import serve_gunicorn
from tests.support.redis_server import free_port

API_LIMIT, TOKEN_LIMIT = 64 * 1024, 16 * 1024
FORM = "application/x-www-form-urlencoded"


def basic(identifier: str, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(identifier)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def token_keys(redis_client) -> list[bytes]:
    return list(redis_client.scan_iter(match="sso:v2:t:*"))


def padded(fields: dict[str, str], size: int) -> bytes:
    """``fields`` form-encoded, then a ``padding`` parameter making the body
    exactly ``size`` bytes long."""
    head = urlencode(fields) + "&padding="
    return (head + "x" * (size - len(head))).encode()


def post(
    middleware,
    path: str,
    body: bytes,
    *,
    chunked: bool,
    content_type: str = FORM,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, t.Any]]:
    """POST ``body`` straight to the WSGI app: with Content-Length, or as a
    server that de-chunks a body does (no Content-Length,
    ``wsgi.input_terminated``)."""
    environ = EnvironBuilder(
        path=path, method="POST", base_url=SYSTEM_URL, data=body, content_type=content_type, headers=headers
    ).get_environ()
    if chunked:
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
        environ["wsgi.input"] = io.BytesIO(body)
    app_iter, status, _ = run_wsgi_app(middleware, environ, buffered=True)
    return int(status.split()[0]), json.loads(b"".join(app_iter))


@pytest.fixture
def credential(middleware) -> tuple[str, str]:
    """A credential set bound to service 101 (client 1): (identifier, secret)."""
    created, secret = middleware.oauth_credentials.create(
        grant_type="single_sign_on", scope="clientarea:invoices clientarea:product_details", service_id=101
    )
    return created.identifier, secret


# -- 1. bodies over the limit, however framed ------------------------------------


@pytest.mark.parametrize("order", ["client_id first", "client_id after the padding"])
def test_a_chunked_body_over_the_limit_is_413_at_the_admin_api(middleware, redis_client, order):
    """A 1 MB chunked body was cut at 64 KiB without a word: the request was
    served from whatever came first (200 with client_id first, 400 without)."""
    padding = "x" * 1024 * 1024
    if order == "client_id first":
        body = urlencode(api_form(client_id="1", padding=padding)).encode()
    else:
        body = urlencode(api_form(padding=padding, client_id="1")).encode()
    status, answer = post(middleware, API_PATH, body, chunked=True)
    assert (status, answer) == (
        413,
        {"result": "error", "message": f"The request body must not exceed {API_LIMIT} bytes"},
    )
    assert token_keys(redis_client) == []


def test_a_chunked_multipart_body_over_the_limit_is_413_at_the_admin_api(middleware, redis_client):
    """multipart/form-data, which the admin API also takes, cut at the limit
    used to parse as an empty form (an authentication failure)."""
    boundary, body = encode_multipart({**api_form(client_id="1"), "padding": "x" * 1024 * 1024})
    status, answer = post(
        middleware, API_PATH, body, chunked=True, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert status == 413 and answer["result"] == "error"
    assert token_keys(redis_client) == []


def test_a_chunked_body_over_the_limit_is_413_at_the_token_endpoint(middleware, redis_client, credential):
    """RFC 6749 shape; the credentials before the cut no longer mint a token."""
    body = urlencode(
        {"grant_type": "single_sign_on", "scope": "clientarea:sso", "padding": "x" * 1024 * 1024}
    ).encode()
    status, answer = post(middleware, TOKEN_PATH, body, chunked=True, headers=basic(*credential))
    assert (status, answer) == (
        413,
        {
            "error": "invalid_request",
            "error_description": f"The request body must not exceed {TOKEN_LIMIT} bytes",
        },
    )
    assert token_keys(redis_client) == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("extra, status", [(0, 200), (1, 413)], ids=["at-the-limit", "one-byte-over"])
def test_the_limit_is_exact_however_the_body_is_framed(middleware, credential, chunked, extra, status):
    """A body of exactly the limit is served, one byte more is refused, with
    Content-Length or without (a chunked body used to be read up to the
    limit, the rest dropped)."""
    api = post(middleware, API_PATH, padded(api_form(client_id="1"), API_LIMIT + extra), chunked=chunked)
    assert api[0] == status, api
    assert api[1]["result"] == ("success" if status == 200 else "error")
    token = post(
        middleware,
        TOKEN_PATH,
        padded({"grant_type": "single_sign_on", "scope": "clientarea:sso"}, TOKEN_LIMIT + extra),
        chunked=chunked,
        headers=basic(*credential),
    )
    assert token[0] == status, token
    assert ("access_token" in token[1]) == (status == 200)
    if status == 413:
        assert token[1]["error"] == "invalid_request"


def echo_factory(global_conf, **settings):
    return echo_app


@pytest.fixture
def gunicorn(redis_server, tmp_path):
    """The middleware in an ini pipeline, served by gunicorn with threads and
    keep-alive, on real Redis."""
    ini = tmp_path / "portal.ini"
    ini.write_text(
        textwrap.dedent(f"""\
        [pipeline:main]
        pipeline = sso portal

        [filter:sso]
        use = egg:sso_middleware#sso
        system_url = {SYSTEM_URL}
        redis_url = {redis_server.url}
        secret_keys = {SECRET_KEY}
        user_store = sso_middleware.demo:demo_user_store
        api_credentials =
            {API_IDENTIFIER} = {hash_secret(API_SECRET)}

        [app:portal]
        paste.app_factory = tests.test_hardening_inputs:echo_factory
        """)
    )
    port = free_port()
    with serve_gunicorn(
        [
            "--paste",
            str(ini),
            "--pythonpath",
            str(ROOT),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        url=f"http://127.0.0.1:{port}/",
        log=tmp_path / "gunicorn.log",
        cwd=tmp_path,
    ):
        yield port


def test_a_real_chunked_request_over_the_limit_is_413_through_gunicorn(gunicorn, redis_client):
    """Real Transfer-Encoding: chunked through gunicorn (which sets
    wsgi.input_terminated): a prompt 413 in each endpoint's shape, nothing
    minted, and the server goes on serving. gunicorn closes a connection
    whose unread body is past what it drains (64 KiB), possibly while the
    client is still sending; like curl, the client then reads the answer."""

    def chunked(path: str, body: bytes) -> tuple[int, dict]:
        with socket.create_connection(("127.0.0.1", gunicorn), timeout=10) as sock:
            try:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n".encode()
                )
                for i in range(0, len(body), 8192):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192]))
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered and closed before the body's end
            response = http.client.HTTPResponse(sock)
            try:
                response.begin()
                return response.status, json.loads(response.read())
            finally:
                response.close()

    padding = "x" * 1024 * 1024
    assert chunked(API_PATH, urlencode(api_form(client_id="1", padding=padding)).encode()) == (
        413,
        {"result": "error", "message": f"The request body must not exceed {API_LIMIT} bytes"},
    )
    body = urlencode(
        {
            "grant_type": "single_sign_on",
            "scope": "clientarea:sso",
            "client_id": "x",
            "client_secret": "y",
            "padding": padding,
        }
    ).encode()
    assert chunked(TOKEN_PATH, body) == (
        413,
        {
            "error": "invalid_request",
            "error_description": f"The request body must not exceed {TOKEN_LIMIT} bytes",
        },
    )
    assert token_keys(redis_client) == []
    status, answer = chunked(API_PATH, urlencode(api_form(client_id="1")).encode())
    assert (status, answer["result"]) == (200, "success")


def test_a_chunked_body_the_server_cannot_read_is_400_not_503(gunicorn):
    """A malformed chunk size makes gunicorn's input stream raise: the
    client sent a bad request, which is neither an outage (503) nor an
    error with a traceback for the operator."""

    def bad_chunks(path: str) -> tuple[int, dict]:
        with socket.create_connection(("127.0.0.1", gunicorn), timeout=10) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\n"
                "Transfer-Encoding: chunked\r\n\r\nzz\r\naction=x\r\n0\r\n\r\n".encode()
            )
            response = http.client.HTTPResponse(sock)
            response.begin()
            try:
                return response.status, json.loads(response.read())
            finally:
                response.close()

    assert bad_chunks(API_PATH) == (400, {"result": "error", "message": "The request body could not be read"})
    assert bad_chunks(TOKEN_PATH) == (
        400,
        {"error": "invalid_request", "error_description": "The request body could not be read"},
    )


@pytest.mark.parametrize("terminated", [False, True], ids=["werkzeug's stream", "server-terminated"])
@pytest.mark.parametrize("path", [API_PATH, TOKEN_PATH])
def test_a_body_shorter_than_its_content_length_is_400(
    middleware, redis_client, credential, path, terminated
):
    """The client went away (or half-closed) mid-body: what arrived is not
    parsed as if it were the whole form. A server that terminates the input
    itself (``wsgi.input_terminated``, as gunicorn) just ends the stream."""
    arrived = api_form(client_id="1") if path == API_PATH else {"grant_type": "single_sign_on"}
    environ = EnvironBuilder(
        path=path, method="POST", base_url=SYSTEM_URL, data=arrived, headers=basic(*credential)
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(int(environ["CONTENT_LENGTH"]) + len("&service_id=101"))
    if terminated:
        environ["wsgi.input_terminated"] = True
    app_iter, status, _ = run_wsgi_app(middleware, environ, buffered=True)
    answer = json.loads(b"".join(app_iter))
    assert status.startswith("400")
    assert "The request body could not be read" in answer.get("message", answer.get("error_description"))
    assert not list(redis_client.scan_iter("sso:v2:t:*"))  # nothing minted


def test_a_query_string_no_server_would_send_is_a_400_at_the_admin_api(middleware):
    """PEP 3333 environ strings are latin-1; a text beyond it (from a
    middleware in front that decoded it) is refused, not a traceback."""
    environ = EnvironBuilder(
        path=API_PATH, method="POST", base_url=SYSTEM_URL, data=api_form(client_id="1")
    ).get_environ()
    environ["QUERY_STRING"] = "x=\u0100"
    app_iter, status, _ = run_wsgi_app(middleware, environ, buffered=True)
    assert status.startswith("400")
    assert json.loads(b"".join(app_iter))["result"] == "error"


# -- 2. one client authentication method at a time --------------------------------


@pytest.mark.parametrize(
    "methods",
    [
        pytest.param(("link", "body"), id="link-and-wrong-body-credentials"),
        pytest.param(("link", "client_id"), id="link-and-client_id-alone"),
        pytest.param(("body", "token"), id="body-and-a-token-field"),
        pytest.param(("link", "basic"), id="link-and-basic"),
        pytest.param(("link", "body", "basic"), id="all-three"),
    ],
)
def test_two_client_authentication_methods_are_invalid_request(app, redis_client, credential, methods):
    """The Application Links fields used to win over a wrong client_id and
    client_secret in the body: 200. Any two methods are refused (RFC 6749
    section 2.3), whichever of them is right."""
    identifier, secret = credential
    fields = {"grant_type": "single_sign_on", "scope": "clientarea:sso"}
    headers = {}
    if "link" in methods:
        fields.update(subscriber_unique_id=identifier, token=secret)
    if "body" in methods:
        fields.update(client_id="0" * 32, client_secret="wrong")
    if "client_id" in methods:
        fields["client_id"] = "0" * 32
    if "token" in methods:
        fields.update(client_id=identifier, client_secret=secret, token="anything")
    if "basic" in methods:
        headers = basic(identifier, secret)
    response = app.post(TOKEN_PATH, fields, headers=headers, status=400)
    assert response.json["error"] == "invalid_request"
    assert response.json["error_description"].startswith("Use one client authentication method")
    assert token_keys(redis_client) == []


# -- 3. every input checked before anything is minted -----------------------------


@pytest.mark.parametrize("auth", ["link", "basic"])
def test_a_refused_link_request_mints_stores_and_audits_nothing(app, redis_client, credential, caplog, auth):
    """module_type/module were checked after the token was minted, stored
    and audited as issued; the answer was a 400 all the same."""
    identifier, secret = credential
    fields = {"grant_type": "single_sign_on"}
    headers = {}
    if auth == "link":
        fields.update(subscriber_unique_id=identifier, token=secret)
    else:
        headers = basic(identifier, secret)
    caplog.set_level(logging.INFO, logger="sso_middleware")
    response = app.post(
        f"{TOKEN_PATH}?scope=clientarea:sso&module_type=server&module=%3Cscript%3E",
        fields,
        headers=headers,
        status=400,
    )
    assert response.json == {
        "error": "invalid_request",
        "error_description": "module_type and module must be short names",
    }
    assert token_keys(redis_client) == []
    assert [r for r in caplog.records if getattr(r, "sso_event", None) == "issued"] == []


# -- 4. the demo prints only a secret it generated --------------------------------


def run_example(monkeypatch, capsys) -> tuple[str, dict[str, str]]:
    """Run :func:`serve_example` up to its server; return what it printed and
    the admin API credentials it configured."""
    from examples import portal

    configured: dict[str, t.Any] = {}
    monkeypatch.setattr(sys, "argv", ["example", "--port", "0"])
    monkeypatch.setattr(BaseWSGIServer, "serve_forever", lambda self: None)
    portal.serve_example(lambda **options: configured.update(options), "An example portal.", 8001)
    return capsys.readouterr().out, dict(configured["api"].credentials)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "99999"], "argument --port: 99999 is not a TCP port"),
        (["--redis-url", "redis://:pw@localhost:abc/0"], "the Redis URL is not usable"),
    ],
)
def test_an_example_portal_refuses_a_bad_option_without_a_traceback(monkeypatch, capsys, args, message):
    from examples.portal import serve_example

    monkeypatch.setattr(sys, "argv", ["example", *args])
    with pytest.raises(SystemExit) as exit:
        serve_example(lambda **options: None, "An example portal.", 8001)
    error = capsys.readouterr().err
    assert (
        exit.value.code == 2 and message in error and "pw" not in error.split("usage:")[-1].split("\n", 1)[1]
    )


def test_an_example_portal_on_port_0_names_the_port_it_got(monkeypatch, capsys):
    from examples import portal

    urls: list[str] = []
    monkeypatch.setattr(sys, "argv", ["example", "--port", "0"])
    monkeypatch.setattr(BaseWSGIServer, "serve_forever", lambda self: None)
    portal.serve_example(lambda **options: urls.append(options["system_url"]), "An example portal.", 8001)
    [url] = urls
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")


def test_an_example_portal_never_prints_a_secret_it_was_given(monkeypatch, capsys):
    chosen = "operator-chosen-" + "c" * 32
    monkeypatch.setenv("SSO_DEMO_API_SECRET", chosen)
    monkeypatch.setenv("SSO_DEMO_API_IDENTIFIER", "demo")
    printed, credentials = run_example(monkeypatch, capsys)
    assert credentials == {"demo": hash_secret(chosen)}
    assert chosen not in printed and "export" not in printed
    assert "identifier=demo" in printed and "SSO_DEMO_API_SECRET" in printed


def test_an_example_portal_prints_the_secret_it_generated(monkeypatch, capsys):
    monkeypatch.delenv("SSO_DEMO_API_SECRET", raising=False)
    monkeypatch.setenv("SSO_DEMO_API_IDENTIFIER", "demo")
    generated: list[str] = []
    real = secrets.token_urlsafe
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: generated.append(real(n)) or generated[-1])
    printed, credentials = run_example(monkeypatch, capsys)
    secret = next(s for s in generated if hash_secret(s) == credentials["demo"])
    assert secret in printed


def test_an_example_portal_takes_the_demos_variables_and_prints_an_export_line(monkeypatch, capsys):
    """The tutorial's requests read $SSO_DEMO_API_IDENTIFIER and
    $SSO_DEMO_API_SECRET; an example portal uses and exports the same."""
    monkeypatch.setenv("SSO_DEMO_API_IDENTIFIER", "operator")
    monkeypatch.delenv("SSO_DEMO_API_SECRET", raising=False)
    printed, credentials = run_example(monkeypatch, capsys)
    [identifier] = credentials
    assert identifier == "operator"
    [export] = [line for line in printed.splitlines() if line.startswith("export ")]
    assert export.startswith("export SSO_DEMO_API_SECRET=") and "IDENTIFIER" not in export

    monkeypatch.delenv("SSO_DEMO_API_IDENTIFIER")
    printed, credentials = run_example(monkeypatch, capsys)
    assert list(credentials) == ["demo"]  # the examples' default, exported with the secret
    assert "export SSO_DEMO_API_IDENTIFIER=demo SSO_DEMO_API_SECRET=" in printed


# -- 5. ini settings: every bad one is a ConfigurationError that names it ----------


@pytest.mark.parametrize(
    "change, name",
    [
        pytest.param({"token_ttl": "²"}, "token_ttl", id="superscript-digit"),
        pytest.param({"token_ttl": "٣"}, "token_ttl", id="arabic-indic-digit"),
        pytest.param({"idle_timeout": "１２"}, "idle_timeout", id="fullwidth-digits"),
        pytest.param({"token_ttl": "9" * 5000}, "token_ttl", id="past-int-digit-limit"),
        pytest.param({"redeem_limit": "²/60"}, "redeem_limit", id="limit-superscript"),
        pytest.param({"client_auth_limit": "0/60"}, "client_auth_limit", id="limit-zero"),
        pytest.param({"redis_wait": "²/50"}, "redis_wait", id="wait-superscript"),
        pytest.param({"redis_wait": "0/50"}, "redis_wait", id="wait-zero"),
        pytest.param({"redis_url": "http://127.0.0.1:6379/0"}, "redis_url", id="url-scheme"),
        pytest.param({"redis_url": "redis://127.0.0.1:port/0"}, "redis_url", id="url-port"),
        pytest.param(
            {"redis_url": None, "redis_sentinels": "127.0.0.1:²", "redis_service": "m"},
            "redis_sentinels",
            id="sentinel-port-superscript",
        ),
        pytest.param(
            {"redis_url": None, "redis_cluster_nodes": "127.0.0.1:²"},
            "redis_cluster_nodes",
            id="cluster-port-superscript",
        ),
        pytest.param(
            {"redis_url": None, "redis_cluster_nodes": "127.0.0.1:99999"},
            "redis_cluster_nodes",
            id="cluster-port-out-of-range",
        ),
        pytest.param(
            {"redis_url": None, "redis_cluster_nodes": f"127.0.0.1:{free_port()}"},
            "redis_cluster_nodes",
            id="cluster-unreachable",
        ),
        pytest.param({"user_store": "os:sep"}, "user_store", id="user-store-not-callable"),
        pytest.param(
            {"user_store": "sso_middleware.paste:as_int"}, "user_store", id="user-store-wants-arguments"
        ),
        pytest.param({"system_url": "https://[portal.example.com"}, "system_url", id="system-url-bracket"),
        pytest.param({"system_url": "https://portal.example.com:99999"}, "system_url", id="system-url-port"),
        pytest.param({"system_url": "https://portal.example.com/\x00"}, "system_url", id="system-url-nul"),
        pytest.param({"home": "/{"}, "destination", id="home-stray-brace"),
        pytest.param(
            {"destinations": "clientarea:x = /x/{service_id!r}"}, "destination", id="template-conversion"
        ),
        pytest.param(
            {"destinations": "clientarea:x = /x/{service_id:Q}"}, "destination", id="template-format-spec"
        ),
        pytest.param({"cookie_name": "a;b=c"}, "cookie_name", id="cookie-name-separator"),
        pytest.param({"cookie_name": ""}, "cookie_name", id="cookie-name-empty"),
        pytest.param({"logout_redirect": "/bye\x00"}, "logout_redirect", id="logout-redirect-nul"),
        pytest.param({"logout_path": "/log out"}, "logout_path", id="logout-path-space"),
        pytest.param(
            {"redis_ssl": "true", "redis_ssl_ca_certs": "/nonexistent/ca.pem"},
            "redis_ssl_ca_certs",
            id="ca-file-missing",
        ),
        pytest.param({"redis_url": "redis://127.0.0.1:6379/0?foo=bar"}, "redis_url", id="url-unknown-option"),
        pytest.param(
            {"redis_url": "redis://127.0.0.1:6379/0?protocol=9"}, "redis_url", id="url-bad-protocol"
        ),
        pytest.param({"redis_url": "unix://"}, "redis_url", id="url-unix-without-path"),
        pytest.param(
            {"absolute_timeout": "9" * 18}, "absolute_timeout must be whole seconds", id="timeout-past-redis"
        ),
        pytest.param({"sso_path": "/oauth/sso.php?x=1"}, "sso_path", id="endpoint-path-query"),
        pytest.param({"token_path": "/oauth/t%2Ephp"}, "token_path", id="endpoint-path-escape"),
        pytest.param({"logout_path": "/logout#x"}, "logout_path", id="endpoint-path-fragment"),
        pytest.param(
            {"redis_url": "rediss://127.0.0.1:6379/0", "redis_ssl_ca_certs": "/nonexistent/ca.pem"},
            "redis_ssl_ca_certs",
            id="ca-with-rediss-checked",
        ),
        pytest.param({"redis_ssl_ca_certs": __file__}, "redis_ssl_ca_certs", id="ca-without-tls"),
        pytest.param({"redis_url": "redis://127.0.0.1:6379/2x"}, "redis_url", id="url-database-typo"),
        pytest.param(
            {"system_url": "https://evil.example\\.portal.example.com"},
            "system_url",
            id="system-url-backslash-another-host-to-browsers",
        ),
    ],
)
def test_bad_settings_are_configuration_errors_naming_the_setting(redis_server, change, name):
    with pytest.raises(ConfigurationError) as error:
        filter_factory({}, **filter_settings(redis_server.url, **change))(lambda e, s: [])
    assert str(error.value).startswith(name), str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2-password@127.0.0.1:port/0",
        # a password with an unencoded "/", "#" or "?": the URL parser reads
        # its start as the port, and redis-py's error names that "port"
        "redis://:Hunter2Secret/abc@127.0.0.1:6379/0",
        "redis://:Hunter2Secret#abc@127.0.0.1:6379/0",
        "redis://:Hunter2Secret?abc@127.0.0.1:6379/0",
        # a piece shorter than any window a heuristic would look for
        "redis://user:pas#word@127.0.0.1:6379/0",
        "redis://:p?x=1@127.0.0.1:6379/0",
    ],
)
def test_a_bad_redis_url_is_refused_without_echoing_its_password(redis_server, url):
    with pytest.raises(ConfigurationError) as error:
        filter_factory({}, **filter_settings(url))
    message = str(error.value)
    assert message.startswith("redis_url") and "hunter2" not in message.lower()
    assert "cast to integer" not in message  # redis-py's words, which quote what it took for the port


def key_file_settings(redis_server, path) -> dict[str, str]:
    return filter_settings(redis_server.url, secret_keys=None, secret_key_file=str(path))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660, 0o666], ids=oct)
def test_a_key_file_others_may_read_or_write_is_refused(redis_server, tmp_path, mode):
    keys = tmp_path / "keys"
    keys.write_text("o" * 32 + "\n")
    keys.chmod(mode)
    with pytest.raises(ConfigurationError) as error:
        filter_factory({}, **key_file_settings(redis_server, keys))
    message = str(error.value)
    assert message.startswith(f"secret_key_file {keys}:")
    assert f"chmod 600 {keys}" in message


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=oct)
def test_a_key_file_only_its_owner_may_use_is_accepted(redis_server, tmp_path, mode):
    keys = tmp_path / "keys"
    keys.write_text("o" * 32 + "\n")
    keys.chmod(mode)
    app = filter_factory({}, **key_file_settings(redis_server, keys))(lambda e, s: [])
    assert app.sessions.signer.secret_keys == [b"o" * 32]


def test_a_key_file_another_user_owns_is_refused(redis_server, tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    keys.write_text("o" * 32 + "\n")
    keys.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(keys, 65534, 65534)  # nobody, who could rewrite the keys
    else:  # a file of ours, read by a process that runs as another user
        monkeypatch.setattr(os, "geteuid", lambda: keys.stat().st_uid + 1)
    with pytest.raises(ConfigurationError, match=f"owned by user {keys.stat().st_uid}"):
        filter_factory({}, **key_file_settings(redis_server, keys))


@pytest.mark.parametrize("folder_mode", [0o777, 0o775], ids=oct)
def test_a_key_file_others_may_replace_is_refused(redis_server, tmp_path, folder_mode):
    folder = tmp_path / "shared"
    folder.mkdir()
    keys = folder / "keys"
    keys.write_text("o" * 32 + "\n")
    keys.chmod(0o600)
    folder.chmod(folder_mode)
    with pytest.raises(ConfigurationError, match="others may replace it in its folder"):
        filter_factory({}, **key_file_settings(redis_server, keys))


def test_a_key_file_that_is_not_utf8_is_a_configuration_error(redis_server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_bytes(b"\xff" * 40 + b"\n")
    os.chmod(keys, 0o600)
    with pytest.raises(ConfigurationError, match="secret_key_file .*: not UTF-8"):
        filter_factory({}, **key_file_settings(redis_server, keys))


def test_a_ca_file_with_a_rediss_url_is_used(redis_server, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until a connection is made\n")
    app = filter_factory(
        {}, **filter_settings(redis_server.url.replace("redis://", "rediss://"), redis_ssl_ca_certs=str(ca))
    )(lambda e, s: [])
    kwargs = app.sessions.store.client.get_connection_kwargs()
    assert kwargs["ssl_ca_certs"] == str(ca)


class Trickle:
    """A ``wsgi.input`` that, like a socket, hands over a few bytes a read."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, size: int | None = -1) -> bytes:
        n = len(self.data) if size is None or size < 0 else min(size, 7)
        out, self.data = self.data[:n], self.data[n:]
        return out


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_arriving_in_pieces_is_read_whole(middleware, credential, chunked):
    body = urlencode({"grant_type": "single_sign_on", "scope": "clientarea:sso"}).encode()
    environ = EnvironBuilder(
        path=TOKEN_PATH,
        method="POST",
        base_url=SYSTEM_URL,
        data=body,
        content_type=FORM,
        headers=basic(*credential),
    ).get_environ()
    if chunked:
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
    environ["wsgi.input"] = Trickle(body)
    app_iter, status, _ = run_wsgi_app(middleware, environ, buffered=True)
    answer = json.loads(b"".join(app_iter))
    assert status.startswith("200"), answer
    assert answer["scope"] == "clientarea:sso"
