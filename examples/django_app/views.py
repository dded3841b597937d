"""
The portal's views
==================

Views read who is signed in from ``request.user`` (Django's user, which
``RemoteUserMiddleware`` set from ``REMOTE_USER``) and the account it acts
for from the middleware's identity: ``get_identity(request.META)``, since
``request.META`` is the WSGI environ.
"""

from __future__ import annotations

import typing as t

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from examples.django_app.app import PORTAL_KEY, Portal
from sso_middleware import Identity, get_identity

#: The portal's own product catalogue; the user store says who owns what.
SERVICES = {101: "Shared hosting", 201: "Virtual server", 301: "Dedicated server"}

NOT_SIGNED_IN = "You are not signed in. Open the portal from your control panel to sign in."


def portal(request: HttpRequest) -> Portal:
    return t.cast(Portal, request.META[PORTAL_KEY])


def signed_in(request: HttpRequest) -> Identity | None:
    """The middleware's identity, when Django signed its user in too."""
    identity = get_identity(request.META)
    return identity if identity is not None and request.user.is_authenticated else None


def client_id(request: HttpRequest) -> int:
    """The account the signed-in user acts for (in ``@login_required`` views).
    A Django login that no sign-on made has none: refused."""
    identity = signed_in(request)
    if identity is None:
        raise PermissionDenied
    return identity.client_id


def signed_in_client(request: HttpRequest) -> dict[str, t.Any]:
    """Context processor: the account for the page's "Signed in as" line."""
    identity = signed_in(request)
    return {"client_id": None if identity is None else identity.client_id}


def page(request: HttpRequest, title: str, text: str) -> HttpResponse:
    return render(request, "portal/page.html", {"title": title, "text": text})


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return page(request, "Client portal", "Welcome to the client portal.")


@require_GET
def sign_in(request: HttpRequest) -> HttpResponse:
    """``LOGIN_URL``: there is no password form; a sign-on starts in the control panel."""
    return page(request, "Not signed in", NOT_SIGNED_IN)


@require_GET
def whoami(request: HttpRequest) -> JsonResponse:
    identity = signed_in(request)
    if identity is None:
        return JsonResponse({"error": "not signed in"}, status=401)
    return JsonResponse({"user_id": identity.user_id, "client_id": identity.client_id})


@require_GET
@login_required
def profile(request: HttpRequest) -> HttpResponse:
    return page(request, "Profile", f"Account details of client {client_id(request)}.")


@require_GET
@login_required
def services(request: HttpRequest) -> HttpResponse:
    users, owner = portal(request).user_store, client_id(request)
    owned = [(id, name) for id, name in SERVICES.items() if users.owner_of("service", id) == owner]
    return render(request, "portal/services.html", {"title": "Services", "services": owned})


@require_GET
@login_required
def service(request: HttpRequest, service_id: int) -> HttpResponse:
    owner = client_id(request)
    if portal(request).user_store.owner_of("service", service_id) != owner:
        raise Http404
    name = SERVICES.get(service_id, "Service")
    return page(request, f"Service {service_id}", f"{name} of client {owner}.")


@require_GET
@login_required
def invoices(request: HttpRequest) -> HttpResponse:
    return page(request, "Invoices", f"Client {client_id(request)} has no unpaid invoices.")


@require_http_methods(["GET", "POST"])
@login_required
def security(request: HttpRequest) -> HttpResponse:
    """A POST gets here only past Django's CSRF middleware: with the form's
    token, and from the portal's own origin (the ``Origin`` header; over
    HTTPS, without one, the ``Referer``), a missing header refused."""
    users, owner = portal(request).user_store, client_id(request)
    if request.method == "POST":
        if request.POST.get("allow_sso") not in ("0", "1"):
            return HttpResponseBadRequest()
        users.set_sso_allowed(owner, request.POST["allow_sso"] == "1")
        return HttpResponseRedirect(reverse("security"), status=303)
    account = users.get_account(owner)
    allowed = account is not None and account.sso_allowed
    return render(request, "portal/security.html", {"title": "Security settings", "allowed": allowed})
