"""What the tests of the example portals share (``tests/test_frameworks.py``
for Flask, Pyramid and Bottle, ``tests/test_django.py`` for Django): their
routes, and minting and following a link through them."""

from __future__ import annotations

import json

import webtest

from sso_middleware import SSOMiddleware
from tests.support.helpers import SYSTEM_URL, sso_path

#: The pages only a signed-in user sees.
PROTECTED = [
    "/account/profile",
    "/account/services",
    "/account/services/101",
    "/account/invoices",
    "/account/security",
]
#: What a browser sends with a form posted from the portal's own pages.
SAME_ORIGIN = {"Origin": SYSTEM_URL}
#: Where a sign-on lands, by the inputs of its token
#: (``examples.portal.EXAMPLE_DESTINATIONS``).
LANDINGS = [
    ({}, "/"),
    ({"destination": "clientarea:profile"}, "/account/profile"),
    ({"destination": "clientarea:services"}, "/account/services"),
    ({"destination": "clientarea:product_details", "service_id": 101}, "/account/services/101"),
    ({"destination": "clientarea:invoices"}, "/account/invoices"),
]


def mint(portal: SSOMiddleware, **inputs) -> str:
    """A fresh link's path and query, for ``inputs``."""
    result = portal.create_sso_token(**inputs)
    assert result["result"] == "success", result
    return sso_path(result["redirect_url"])


def sign_in(portal: SSOMiddleware, web: webtest.TestApp, **inputs) -> webtest.TestResponse:
    """Follow a fresh link for client 1; return the landing page."""
    landing = web.get(mint(portal, client_id=1, **inputs), status=303)
    assert landing.location.startswith(SYSTEM_URL + "/")
    return web.get(landing.location[len(SYSTEM_URL) :], status=200)


def whoami(web: webtest.TestApp) -> tuple[int, dict]:
    """Status and JSON of ``/whoami``."""
    response = web.get("/whoami", expect_errors=True)
    assert response.content_type == "application/json"
    return response.status_int, json.loads(response.body)
