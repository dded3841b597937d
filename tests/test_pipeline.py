"""examples/pipeline.ini: loaded by PasteDeploy and served by gunicorn with
several worker processes sharing Redis and the accounts."""

from __future__ import annotations

import concurrent.futures
import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

from paste.deploy import loadapp

from sso_middleware import SSOMiddleware
from sso_middleware.credentials import hash_secret
from tests.support.helpers import API_PATH, ROOT

SIGN_INS = 24


def call_api(pipeline, **inputs):
    data = urllib.parse.urlencode(
        {
            "action": "CreateSsoToken",
            "identifier": "demo",
            "secret": pipeline.api_secret,
            "responsetype": "json",
            **inputs,
        }
    ).encode()
    try:
        with urllib.request.urlopen(pipeline.url + API_PATH, data, timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        with e:
            return json.load(e)


class LoopbackIsSecure(http.cookiejar.DefaultCookiePolicy):
    """Like browsers, treat http://127.0.0.1 as a secure context, so the
    Secure session cookie is sent back."""

    def return_ok_secure(self, cookie, request):
        return urllib.parse.urlsplit(
            request.get_full_url()
        ).hostname == "127.0.0.1" or super().return_ok_secure(cookie, request)


def browser():
    jar = http.cookiejar.CookieJar(LoopbackIsSecure())
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def sign_in(pipeline, **inputs):
    """Mint, follow the link in a fresh browser; return the browser."""
    result = call_api(pipeline, **inputs)
    assert result["result"] == "success", result
    opener = browser()
    with opener.open(result["redirect_url"], timeout=5) as landing:
        assert landing.status == 200
    return opener


def whoami(opener, pipeline):
    with opener.open(pipeline.url + "/whoami", timeout=5) as r:
        return json.load(r)


def test_the_ini_loads_with_paste_deploy(redis_server, monkeypatch, tmp_path):
    monkeypatch.setenv("SSO_SECRET_KEYS", "p" * 32)
    monkeypatch.setenv("PORTAL_DB", str(tmp_path / "portal.db"))
    app = loadapp(
        f"config:{ROOT / 'examples' / 'pipeline.ini'}",
        global_conf={
            "public_url": "http://127.0.0.1:8000",
            "redis": redis_server.url,
            "api_secret_hash": hash_secret("x"),
        },
    )
    assert isinstance(app, SSOMiddleware)
    assert app.system_url == "http://127.0.0.1:8000"
    assert app.issuer.destinations.resolve("clientarea:invoices") == "/account/invoices"


def test_sign_ins_work_across_worker_processes(pipeline):
    def one(_):
        opener = sign_in(pipeline, client_id="1", destination="clientarea:invoices")
        return whoami(opener, pipeline)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(SIGN_INS)))
    assert results == [{"user_id": 1, "client_id": 1}] * SIGN_INS

    served = re.findall(r"<(\d+)> GET /oauth/singlesignon.php 303", pipeline.log.read_text())
    assert len(served) >= SIGN_INS
    assert len(set(served)) == 2, "both workers redeemed tokens, each with its own Redis pool"


def test_the_access_log_holds_no_token(pipeline):
    result = call_api(pipeline, client_id="1")
    browser().open(result["redirect_url"], timeout=5).close()
    assert result["access_token"] not in pipeline.log.read_text()


def test_the_security_setting_holds_in_every_worker(pipeline):
    opener = sign_in(pipeline, client_id="1")
    request = urllib.request.Request(
        pipeline.url + "/account/security", b"allow_sso=0", headers={"Origin": pipeline.url}
    )
    opener.open(request, timeout=5).close()
    try:
        for _ in range(6):  # whichever worker answers
            assert call_api(pipeline, client_id="1") == {
                "result": "error",
                "message": "SSO authentication blocked for client 1",
            }
    finally:
        request = urllib.request.Request(
            pipeline.url + "/account/security", b"allow_sso=1", headers={"Origin": pipeline.url}
        )
        opener.open(request, timeout=5).close()
    assert call_api(pipeline, client_id="1")["result"] == "success"
