"""The Flask, Pyramid and Bottle portals of ``examples/``: each lands a
sign-on on its own routes, reads the identity its framework's way, and lets
the signed-in user switch single sign-on off and on, same-origin only."""

from __future__ import annotations

import importlib
import logging
import re

import pytest
import webtest

from sso_middleware import Identity, SSOMiddleware
from sso_middleware.stores import Stores
from tests.support.helpers import COOKIE_NAME, ROOT, SECRET_KEY, SYSTEM_URL, browser
from tests.support.portals import LANDINGS, PROTECTED, SAME_ORIGIN, mint, sign_in, whoami

FRAMEWORKS = ["flask", "pyramid", "bottle"]
DENIED = "Single Sign-On authentication denied per configuration for User ID: 1"


@pytest.fixture(params=FRAMEWORKS)
def portal(request, redis_client, user_store) -> SSOMiddleware:
    module = importlib.import_module(f"examples.{request.param}_app.app")
    return module.create_app(
        system_url=SYSTEM_URL,
        stores=Stores.redis(redis_client),
        secret_keys=[SECRET_KEY],
        user_store=user_store,
    )


@pytest.fixture
def web(portal) -> webtest.TestApp:
    return browser(portal)


def test_create_app_returns_the_middleware(portal):
    assert isinstance(portal, SSOMiddleware)


@pytest.mark.parametrize(("inputs", "path"), LANDINGS)
def test_sign_on_lands_on_the_mapped_route(portal, web, inputs, path):
    landing = web.get(mint(portal, client_id=1, **inputs), status=303)
    assert landing.location == SYSTEM_URL + path
    page = web.get(path, status=200)
    assert "Signed in as user 1 for client 1." in page.text
    assert "Not signed in" not in page.text


def test_account_pages_for_the_signed_in_user(portal, web):
    sign_in(portal, web)
    assert "client 1" in web.get("/account/profile").text
    assert "client 1" in web.get("/account/invoices").text
    services = web.get("/account/services").text
    assert "/account/services/101" in services and "/account/services/201" not in services
    service = web.get("/account/services/101").text
    assert "Service 101" in service and "client 1" in service
    assert "Allow single sign-on: on." in web.get("/account/security").text


@pytest.mark.parametrize(
    "path", ["/account/services/201", "/account/services/301", "/account/services/999", "/account/services/x"]
)
def test_services_of_other_accounts_are_not_found(portal, web, path):
    sign_in(portal, web)
    web.get(path, status=404)


@pytest.mark.parametrize("path", PROTECTED)
def test_anonymous_gets_a_friendly_401(web, path):
    page = web.get(path, status=401)
    assert "You are not signed in" in page.text


def test_anonymous_home_and_whoami(web):
    assert "Not signed in." in web.get("/").text
    assert whoami(web) == (401, {"error": "not signed in"})
    web.post("/account/security", {"allow_sso": "0"}, headers=SAME_ORIGIN, status=401)


def test_whoami_answers_the_identity(portal, web):
    sign_in(portal, web)
    assert whoami(web) == (200, {"user_id": 1, "client_id": 1})
    sign_in(portal, web, user_id=5)
    assert whoami(web) == (200, {"user_id": 5, "client_id": 1})


def test_logout(portal, web):
    page = sign_in(portal, web)
    assert 'action="/logout"' in page.text
    cookie = web.cookies[COOKIE_NAME]
    response = web.post("/logout", status=303)
    assert response.location == SYSTEM_URL + "/"
    assert whoami(web)[0] == 401
    assert "Not signed in." in web.get("/").text
    web.set_cookie(COOKIE_NAME, cookie)  # the old cookie is dead server-side
    assert whoami(web)[0] == 401
    web.get("/account/profile", status=401)


def test_switching_single_sign_on_off_and_on(portal, web, user_store, caplog):
    sign_in(portal, web)
    minted_before = mint(portal, client_id=1, destination="clientarea:invoices")

    response = web.post("/account/security", {"allow_sso": "0"}, headers=SAME_ORIGIN, status=303)
    assert response.location in ("/account/security", SYSTEM_URL + "/account/security")
    assert user_store.get_account(1).sso_allowed is False
    assert "Switch single sign-on on" in web.get("/account/security").text
    assert whoami(web) == (200, {"user_id": 1, "client_id": 1})  # the session goes on

    caplog.clear()
    other = browser(portal)
    other.get(minted_before, status=403)
    denials = [
        r.getMessage() for r in caplog.records if r.name == "sso_middleware" and r.levelno >= logging.WARNING
    ]
    assert denials == [DENIED]
    assert whoami(other)[0] == 401
    assert portal.create_sso_token(client_id=1) == {
        "result": "error",
        "message": "SSO authentication blocked for client 1",
    }

    web.post("/account/security", {"allow_sso": "1"}, headers=SAME_ORIGIN, status=303)
    assert user_store.get_account(1).sso_allowed is True
    other.get(mint(portal, client_id=1), status=303)
    assert whoami(other) == (200, {"user_id": 1, "client_id": 1})


def test_a_same_origin_referer_is_enough(portal, web, user_store):
    sign_in(portal, web)
    web.post(
        "/account/security",
        {"allow_sso": "0"},
        headers={"Referer": SYSTEM_URL + "/account/security"},
        status=303,
    )
    assert user_store.get_account(1).sso_allowed is False


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://portal.example.com"},
        {"Referer": "https://evil.example/account/security"},
        {"Origin": "https://evil.example", "Referer": SYSTEM_URL + "/account/security"},
        {},
    ],
)
def test_cross_site_posts_are_refused(portal, web, user_store, headers):
    sign_in(portal, web)
    web.post("/account/security", {"allow_sso": "0"}, headers=headers, status=403)
    assert user_store.get_account(1).sso_allowed is True


def test_a_get_changes_nothing(portal, web, user_store):
    sign_in(portal, web)
    web.get("/account/security", {"allow_sso": "0"}, headers=SAME_ORIGIN, status=200)
    assert user_store.get_account(1).sso_allowed is True


def test_a_malformed_setting_is_refused(portal, web, user_store):
    sign_in(portal, web)
    web.post("/account/security", {"allow_sso": "off"}, headers=SAME_ORIGIN, status=400)
    assert user_store.get_account(1).sso_allowed is True


def test_remote_user_from_the_client_is_not_trusted(portal):
    forged = webtest.TestApp(
        portal,
        extra_environ={
            "wsgi.url_scheme": "https",
            "HTTP_HOST": "portal.example.com",
            "REMOTE_USER": "1",
            "HTTP_REMOTE_USER": "1",
            "HTTP_X_REMOTE_USER": "1",
            "sso_middleware.identity": Identity(1, 1),
        },
    )
    assert "Not signed in." in forged.get("/").text
    assert whoami(forged)[0] == 401
    for path in PROTECTED:
        forged.get(path, status=401)
    forged.post("/account/security", {"allow_sso": "0"}, headers=SAME_ORIGIN, status=401)


#: README section → the example apps its Python snippets are copied from.
README_SECTIONS = {
    "Examples": FRAMEWORKS,
    "Use with Flask": ["flask"],
    "Use with Pyramid": ["pyramid"],
    "Use with Bottle": ["bottle"],
    "Use with Django": ["django"],
    "Same-origin form posts": ["flask"],
}
#: The file of an example whose snippets are not in its ``app.py``.
SNIPPET_SOURCES = {"django": "django_app/settings.py"}


@pytest.mark.parametrize("readme", ["examples/README.md", "README.md"])
def test_readme_snippets_are_the_example_code(readme):
    examples = ROOT / "examples"
    text = (examples.parent / readme).read_text()
    if readme == "README.md":  # only its framework sections
        text = "# " + "".join(
            f"## {s}"
            for s in re.split(r"^## ", text, flags=re.M)
            if s.startswith(("Use with Flask", "Use with Pyramid", "Use with Bottle", "Use with Django"))
        )
    readme_sections = (
        README_SECTIONS
        if readme != "README.md"
        else {k: v for k, v in README_SECTIONS.items() if k.startswith("Use with")}
    )
    checked = set()
    for section in re.split(r"^## ", text.removeprefix("# "), flags=re.M):
        heading = section.partition("\n")[0].strip()
        for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
            for framework in readme_sections[heading]:
                path = SNIPPET_SOURCES.get(framework, f"{framework}_app/app.py")
                source = (examples / path).read_text().splitlines()
                for line in block.splitlines():
                    if line.strip() and not line.lstrip().startswith("#"):
                        assert line in source, f"{heading}: {line!r} is not in {path}"
            checked.add(heading)
        if heading.startswith("Use with"):
            assert f"scripts/example {heading.split()[-1].lower()}" in section
    assert checked == set(readme_sections)
