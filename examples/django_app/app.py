"""
A client portal in Django behind sso_middleware
===============================================

Django's ``RemoteUserMiddleware`` turns the ``REMOTE_USER`` the middleware
sets into ``request.user`` (see :mod:`examples.django_app.settings` for why
not the persistent variant, and :mod:`examples.django_app.backends` for which
Django user a sign-on is); ``@login_required`` protects the account pages.
The middleware answers the SSO endpoint, the admin API and ``POST /logout``
itself; every other request reaches Django with ``REMOTE_USER`` set (or not).

Run it with ``scripts/example django`` (``--port``, ``--redis-url``), or
serve :mod:`examples.django_app.wsgi` with a WSGI server.
"""

from __future__ import annotations

import functools
import os
import typing as t

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application

from examples.portal import EXAMPLE_DESTINATIONS, serve_example
from sso_middleware import AdminAPIOptions, SessionOptions, SSOMiddleware, Stores, UserStore
from sso_middleware.demo import demo_user_store
from sso_middleware.exceptions import ConfigurationError

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The Django settings module of the portal.
SETTINGS_MODULE = "examples.django_app.settings"

#: The environ key through which the views reach their :class:`Portal`.
PORTAL_KEY = "examples.django_portal"


class PortalUserStore(UserStore, t.Protocol):
    """The middleware's user store, plus the setting the Security page switches."""

    def set_sso_allowed(self, client_id: int, allowed: bool) -> None: ...


@functools.cache
def setup_django() -> None:
    """Load the portal's settings (unless ``DJANGO_SETTINGS_MODULE`` names
    others) and create its tables, once per process: Django's settings, apps
    and database are process-wide."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


class Portal:
    """Django's WSGI handler, with this portal's user store in each request's
    environ: Django's settings are shared by every portal of the process."""

    def __init__(self, user_store: PortalUserStore):
        setup_django()
        self.user_store = user_store
        self.handler: WSGIHandler = get_wsgi_application()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        environ[PORTAL_KEY] = self
        return self.handler(environ, start_response)


def create_app(
    *,
    system_url: str,
    stores: Stores,
    secret_keys: t.Sequence[str | bytes],
    user_store: PortalUserStore | None = None,
    sessions: SessionOptions = SessionOptions(),
    api: AdminAPIOptions | None = None,
) -> SSOMiddleware:
    """The portal, wrapped by the middleware (which is the WSGI app)."""
    store = demo_user_store() if user_store is None else user_store
    portal = Portal(store)
    if sessions.secure != settings.SESSION_COOKIE_SECURE:
        raise ConfigurationError(
            "Django's cookies must be Secure exactly when the middleware's are:"
            " set PORTAL_SECURE_COOKIES=false for plain HTTP, and only then"
        )
    return SSOMiddleware(
        portal,
        system_url=system_url,
        secret_keys=secret_keys,
        user_store=store,
        stores=stores,
        api=api,
        sessions=sessions,
        destinations=EXAMPLE_DESTINATIONS,
    )


def main() -> None:
    # serve_example serves plain HTTP, with the middleware's cookies not Secure
    os.environ.setdefault("PORTAL_SECURE_COOKIES", "false")
    serve_example(create_app, "The Django client portal behind sso_middleware.", 8004)


if __name__ == "__main__":
    main()
