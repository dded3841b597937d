"""The Django portal of ``examples/django_app``: Django's
``RemoteUserMiddleware`` makes the middleware's sign-on ``request.user``, for
``@login_required`` and the templates, and drops it as soon as the
middleware's session ends (logout, a replayed link, ``end_sessions``).

Django's settings are process-wide: the module loads the portal's once,
with ``DJANGO_SETTINGS_MODULE`` set only while it does, and empties Django's
user table before each test."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys

import pytest
import webtest

from examples.django_app.app import SETTINGS_MODULE, create_app, setup_django
from examples.django_app.views import NOT_SIGNED_IN
from sso_middleware import AdminAPIOptions, Identity, SSOMiddleware
from sso_middleware.credentials import hash_secret
from sso_middleware.stores import Stores
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    COOKIE_NAME,
    ROOT,
    SECRET_KEY,
    SYSTEM_URL,
    api_form,
    browser,
    sso_path,
)
from tests.support.portals import LANDINGS, PROTECTED, SAME_ORIGIN, mint, sign_in, whoami

#: Django's session cookie: it only remembers whom REMOTE_USER named.
DJANGO_SESSION = "sessionid"


@pytest.fixture(scope="module", autouse=True)
def django_settings():
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
        environment.delenv("PORTAL_SECURE_COOKIES", raising=False)
        setup_django()
    from django.conf import settings

    assert settings.ROOT_URLCONF == "examples.django_app.urls", "another Django project was loaded first"


@pytest.fixture(autouse=True)
def no_django_users():
    from django.contrib.auth import get_user_model

    get_user_model().objects.all().delete()


@pytest.fixture
def portal(redis_client, user_store) -> SSOMiddleware:
    return create_app(
        system_url=SYSTEM_URL,
        stores=Stores.redis(redis_client),
        secret_keys=[SECRET_KEY],
        user_store=user_store,
        api=AdminAPIOptions(credentials={API_IDENTIFIER: hash_secret(API_SECRET)}),
    )


@pytest.fixture
def web(portal) -> webtest.TestApp:
    return browser(portal)


def usernames() -> list[str]:
    """The usernames of Django's user rows."""
    from django.contrib.auth import get_user_model

    return sorted(user.get_username() for user in get_user_model().objects.all())


def who(page: webtest.TestResponse) -> str:
    return page.html.find(id="who").text


def sent_to_sign_in(web: webtest.TestApp, path: str) -> webtest.TestResponse:
    """Open a ``@login_required`` page anonymously: the sign-in page."""
    response = web.get(path, status=302)
    assert response.location == f"/sign-in?next={path}"
    page = response.follow(status=200)
    assert who(page) == "Not signed in."
    assert NOT_SIGNED_IN in page.text
    return page


def test_round_trip(portal, web):
    sent_to_sign_in(web, "/account/invoices")

    answer = web.post(API_PATH, api_form(client_id="1", destination="clientarea:invoices")).json
    assert answer["result"] == "success", answer
    link = sso_path(answer["redirect_url"])
    landing = web.get(link, status=303)
    assert landing.location == SYSTEM_URL + "/account/invoices"
    page = web.get("/account/invoices", status=200)
    assert who(page) == "Signed in as user 1 for client 1."
    assert "Client 1 has no unpaid invoices." in page.text
    assert usernames() == ["1"]  # the row RemoteUserBackend made for SSO user 1
    assert DJANGO_SESSION in web.cookies  # Django logged that user in

    assert 'action="/logout"' in page.text
    web.post("/logout", status=303)
    assert COOKIE_NAME not in web.cookies
    assert DJANGO_SESSION in web.cookies  # the logout left Django's cookie behind...
    sent_to_sign_in(web, "/account/invoices")  # ...but its login is gone
    assert whoami(web) == (401, {"error": "not signed in"})

    replay = web.get(link, status=403)
    assert "Sign-in failed" in replay.text
    sent_to_sign_in(web, "/account/invoices")
    assert "Not signed in." in web.get("/").text


@pytest.mark.parametrize(("inputs", "path"), LANDINGS)
def test_sign_on_lands_on_the_mapped_route(portal, web, inputs, path):
    landing = web.get(mint(portal, client_id=1, **inputs), status=303)
    assert landing.location == SYSTEM_URL + path
    assert who(web.get(path, status=200)) == "Signed in as user 1 for client 1."


@pytest.mark.parametrize("path", PROTECTED)
def test_anonymous_requests_are_sent_to_sign_in(web, path):
    sent_to_sign_in(web, path)


def test_anonymous_home_and_whoami(web):
    assert who(web.get("/")) == "Not signed in."
    assert whoami(web) == (401, {"error": "not signed in"})
    assert usernames() == []


def test_account_pages_for_the_signed_in_user(portal, web):
    sign_in(portal, web)
    assert "Account details of client 1." in web.get("/account/profile").text
    services = web.get("/account/services").text
    assert "/account/services/101" in services and "/account/services/201" not in services
    assert "Shared hosting of client 1." in web.get("/account/services/101").text
    for path in ("/account/services/201", "/account/services/999", "/account/services/x"):
        web.get(path, status=404)
    assert whoami(web) == (200, {"user_id": 1, "client_id": 1})


def test_the_django_user_follows_the_sign_on(portal, web):
    sign_in(portal, web)
    page = sign_in(portal, web, user_id=5)  # someone else, in the same browser
    assert who(page) == "Signed in as user 5 for client 1."
    assert whoami(web) == (200, {"user_id": 5, "client_id": 1})
    assert usernames() == ["1", "5"]


def test_a_replayed_link_ends_the_django_login_too(portal, web):
    link = mint(portal, client_id=1)
    web.get(link, status=303)
    assert who(web.get("/")) == "Signed in as user 1 for client 1."
    browser(portal).get(link, status=403)  # the link leaked: its session ends
    sent_to_sign_in(web, "/account/profile")


def test_ending_sessions_ends_the_django_login(portal, web):
    sign_in(portal, web)
    portal.end_sessions(client_id=1)
    sent_to_sign_in(web, "/account/profile")
    assert whoami(web)[0] == 401


def test_the_django_row_has_no_usable_password(portal, web):
    sign_in(portal, web)
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.get_by_natural_key("1").has_usable_password()


def test_rows_provisioned_elsewhere(portal, web):
    from django.contrib.auth import get_user_model
    from django.test import override_settings

    with override_settings(AUTHENTICATION_BACKENDS=["examples.django_app.backends.ProvisionedUserBackend"]):
        page = sign_in(portal, web)
        assert who(page) == "Not signed in."  # signed on, but no Django user
        sent_to_sign_in(web, "/account/profile")
        assert usernames() == []

        get_user_model().objects.create_user("1")
        assert who(web.get("/")) == "Signed in as user 1 for client 1."
        assert "Account details of client 1." in web.get("/account/profile", status=200).text


def test_remote_user_from_the_client_is_not_trusted(portal):
    forged = webtest.TestApp(
        portal,
        extra_environ={
            "wsgi.url_scheme": "https",
            "HTTP_HOST": "portal.example.com",
            "REMOTE_USER": "1",
            "HTTP_REMOTE_USER": "1",
            "sso_middleware.identity": Identity(1, 1),
        },
    )
    assert who(forged.get("/")) == "Not signed in."
    for path in PROTECTED:
        forged.get(path, status=302)
    assert usernames() == []


def post_security(web: webtest.TestApp, headers: dict[str, str], **fields: str) -> webtest.TestResponse:
    """POST the Security settings form with its CSRF token, these fields and
    only these headers (a webtest form would add a Referer)."""
    form = web.get("/account/security").forms[1]  # [0] is the logout form
    token = {"csrfmiddlewaretoken": form["csrfmiddlewaretoken"].value}
    return web.post("/account/security", {**token, **fields}, headers=headers, expect_errors=True)


def test_switching_single_sign_on_off_and_on(portal, web, user_store):
    sign_in(portal, web)
    response = post_security(web, SAME_ORIGIN, allow_sso="0")
    assert response.status_int == 303 and response.location == "/account/security"
    assert user_store.get_account(1).sso_allowed is False
    assert "Allow single sign-on: off." in web.get("/account/security").text
    assert portal.create_sso_token(client_id=1) == {
        "result": "error",
        "message": "SSO authentication blocked for client 1",
    }
    assert whoami(web) == (200, {"user_id": 1, "client_id": 1})  # the session goes on

    referer = {"Referer": SYSTEM_URL + "/account/security"}
    assert post_security(web, referer, allow_sso="1").status_int == 303
    assert user_store.get_account(1).sso_allowed is True
    assert post_security(web, SAME_ORIGIN, allow_sso="off").status_int == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/account/security"},
        {"Origin": "https://evil.example", "Referer": SYSTEM_URL + "/account/security"},
        {},
    ],
)
def test_cross_site_posts_are_refused(portal, web, user_store, headers):
    sign_in(portal, web)
    assert post_security(web, headers, allow_sso="0").status_int == 403
    assert user_store.get_account(1).sso_allowed is True


def test_a_post_without_the_csrf_token_is_refused(portal, web, user_store):
    sign_in(portal, web)
    web.post("/account/security", {"allow_sso": "0"}, headers=SAME_ORIGIN, status=403)
    assert user_store.get_account(1).sso_allowed is True


def test_the_wsgi_module(redis_server, redis_client, monkeypatch):
    monkeypatch.setenv("PORTAL_URL", SYSTEM_URL)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("SSO_SECRET_KEYS", f"{'o' * 32} {SECRET_KEY}")
    monkeypatch.setenv("SSO_API_SECRET_HASH", hash_secret(API_SECRET))
    application = runpy.run_module("examples.django_app.wsgi")["application"]
    web = browser(application)
    answer = web.post(API_PATH, api_form(identifier="demo", client_id="1")).json
    assert answer["result"] == "success", answer
    web.get(sso_path(answer["redirect_url"]), status=303)
    assert who(web.get("/")) == "Signed in as user 1 for client 1."
    assert usernames() == ["1"]


@pytest.mark.parametrize(
    ("missing", "message"),
    [("PORTAL_URL", "set PORTAL_URL"), ("SSO_SECRET_KEYS", "SSO_SECRET_KEYS is not set")],
)
def test_the_wsgi_module_names_a_missing_variable(redis_server, monkeypatch, missing, message):
    monkeypatch.setenv("PORTAL_URL", SYSTEM_URL)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("SSO_SECRET_KEYS", SECRET_KEY)
    monkeypatch.delenv(missing)
    with pytest.raises(Exception, match=message):
        runpy.run_module("examples.django_app.wsgi")


@pytest.mark.parametrize(
    ("value", "secure"), [("off", "False"), ("0", "False"), ("yes", "True"), ("", "True")]
)
def test_the_cookie_switch_reads_as_every_other_setting(value, secure):
    """``PORTAL_SECURE_COOKIES=off`` must not leave cookies ``Secure``
    (then refused as a mismatch), and a value that is no switch is an error
    that names it."""
    env = {name: text for name, text in os.environ.items() if name != "PORTAL_SECURE_COOKIES"}
    if value:
        env["PORTAL_SECURE_COOKIES"] = value
    shown = subprocess.run(
        [sys.executable, "-c", "import examples.django_app.settings as s; print(s.SECURE_COOKIES)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert shown.stdout.strip() == secure, shown.stderr


def test_a_cookie_switch_that_is_no_switch_is_refused():
    refused = subprocess.run(
        [sys.executable, "-c", "import examples.django_app.settings"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PORTAL_SECURE_COOKIES": "maybe"},
        timeout=60,
    )
    assert refused.returncode != 0
    assert "ImproperlyConfigured: PORTAL_SECURE_COOKIES: not true or false: 'maybe'" in refused.stderr
