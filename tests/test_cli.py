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

from redis_server import free_port
from sso_middleware.credentials import hash_secret

API_ID, API_SECRET = "demo-admin", "demo-secret-" + "z" * 32


def cli(*args, input=None, env=None):
    return subprocess.run([sys.executable, "-m", "sso_middleware", *args], capture_output=True,
                          text=True, timeout=30, input=input, env={**os.environ, **(env or {})})


@pytest.fixture(params=["memory", "redis"])
def demo(request):
    args = ["demo", "--port", "0"]
    if request.param == "redis":
        args += ["--redis-url", request.getfixturevalue("redis_server").url]
    process = subprocess.Popen(
        [sys.executable, "-m", "sso_middleware", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SSO_DEMO_API_IDENTIFIER": API_ID, "SSO_DEMO_API_SECRET": API_SECRET},
    )
    first_line = process.stdout.readline()
    base = first_line.split()[3]
    assert base.startswith("http://127.0.0.1:"), first_line
    yield base, process
    process.terminate()
    process.wait(10)


def create_token(base, **inputs):
    data = urllib.parse.urlencode({"action": "CreateSsoToken", "identifier": API_ID,
                                   "secret": API_SECRET, "responsetype": "json", **inputs})
    try:
        with urllib.request.urlopen(base + "/includes/api.php", data.encode(), timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        with e:
            return json.load(e)


def test_demo_end_to_end(demo):
    base, process = demo
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    result = create_token(base, client_id="1", destination="clientarea:product_details",
                          service_id="101")
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
        "result": "error", "message": "SSO authentication blocked for client 3"}

    browser.open(urllib.request.Request(base + "/logout", method="GET"), timeout=5).close()
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        browser.open(base + "/whoami", timeout=5)
    assert anonymous.value.code == 401
    anonymous.value.close()

    process.terminate()
    _, log = process.communicate(timeout=10)
    assert "Unable to authenticate with Single Sign-On token" in log
    assert "access_token=[redacted]" in log
    assert token not in log


def test_create_token_against_redis(redis_server, redis_client):
    result = cli("create-token", "--redis-url", redis_server.url,
                 "--system-url", "https://portal.example.com/", "--client-id", "1",
                 "--destination", "clientarea:invoices")
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["redirect_url"] == (
        "https://portal.example.com/oauth/singlesignon.php?access_token=" + response["access_token"])
    keys = list(redis_client.scan_iter("sso:v1:t:*"))
    assert len(keys) == 1 and response["access_token"].encode() not in keys[0]


def test_create_token_reports_errors(redis_server):
    result = cli("create-token", "--redis-url", redis_server.url,
                 "--system-url", "https://portal.example.com", "--client-id", "4")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"result": "error",
                                         "message": "SSO authentication blocked for client 4"}


def test_create_token_with_redis_down():
    result = cli("create-token", "--redis-url", f"redis://127.0.0.1:{free_port()}/0",
                 "--system-url", "https://portal.example.com", "--client-id", "1")
    assert result.returncode == 1
    assert "error: Redis error" in result.stderr and "Traceback" not in result.stderr


def test_create_token_bad_user_store(redis_server):
    result = cli("create-token", "--redis-url", redis_server.url, "--system-url",
                 "https://portal.example.com", "--client-id", "1", "--user-store", "nope")
    assert result.returncode != 0 and "package.module:attribute" in result.stderr


def test_hash_secret():
    result = cli("hash-secret", input="s3cret\n")
    assert result.returncode == 0
    assert result.stdout.strip() == hash_secret("s3cret")
    assert cli("hash-secret", input="\n").returncode == 2
