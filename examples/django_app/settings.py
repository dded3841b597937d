"""
Settings of the Django client portal
====================================

Django's own ``RemoteUserMiddleware`` and a ``RemoteUserBackend``
(:mod:`examples.django_app.backends`) turn the ``REMOTE_USER`` the middleware
sets into ``request.user``, so views, ``@login_required`` and anything else
that reads ``request.user`` see who is signed in.

``RemoteUserMiddleware``, not ``PersistentRemoteUserMiddleware``: the
middleware's session is the one that counts. It sets ``REMOTE_USER`` on every
request of a live session and removes it from every other, so a request
without it means "no one is signed in" (a logout, an idle or absolute
timeout, ``end_sessions``, a replayed link): ``RemoteUserMiddleware`` then
logs Django's user out. The persistent variant would keep that user signed in
to Django through its own session cookie after the middleware's session
ended. Django's session (a signed cookie, no table) only remembers which
user ``REMOTE_USER`` named, so that the row is not looked up and logged in
again on every request; it grants nothing on its own.

Environment:

``PORTAL_SECURE_COOKIES``
    ``false`` for plain HTTP in development (``scripts/example django`` sets
    it); Django's cookies are ``Secure`` otherwise, as the middleware's are.
    :func:`examples.django_app.app.create_app` refuses to wrap the portal
    when the two disagree.
``DJANGO_SECRET_KEY``
    Signs Django's session cookie and CSRF token; a key made per process
    otherwise, which is enough here: a Django session that no longer verifies
    is logged in again from ``REMOTE_USER``.

The database (``auth_user`` and the tables it needs) is a SQLite file in a
temporary folder of its own, created at start-up
(:func:`examples.django_app.app.setup_django`) and removed at exit: nothing
is written to the checkout. A file, not ``:memory:``, since each thread of
the development server opens its own connection, and an in-memory database
is one per connection.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from sso_middleware.options import parse_bool

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
# No view builds a URL from the Host header, and the middleware builds every
# redirect from system_url; in production, list the system_url's host here.
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.RemoteUserMiddleware",
]

AUTHENTICATION_BACKENDS = ["examples.django_app.backends.SSOUserBackend"]

ROOT_URLCONF = "examples.django_app.urls"

#: Where ``@login_required`` sends anonymous requests: a page that says how
#: to sign in (from the control panel; there is no password form).
LOGIN_URL = "/sign-in"

try:
    SECURE_COOKIES = parse_bool(os.environ.get("PORTAL_SECURE_COOKIES", "true"))
except ValueError as e:
    raise ImproperlyConfigured(f"PORTAL_SECURE_COOKIES: {e}") from None
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_EXPIRE_AT_BROWSER_CLOSE = True  # as the middleware's cookie
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_USE_SESSIONS = True  # the CSRF token lives in the session: one Django cookie
CSRF_COOKIE_SECURE = SECURE_COOKIES

_DATABASE_DIR = tempfile.mkdtemp(prefix="sso-django-portal-")
_CREATOR = os.getpid()


@atexit.register
def _remove_database() -> None:
    if os.getpid() == _CREATOR:  # not in a forked worker, which shares the folder
        shutil.rmtree(_DATABASE_DIR, ignore_errors=True)


DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_DATABASE_DIR, "portal.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "examples.django_app.views.signed_in_client",
            ],
        },
    }
]

USE_TZ = True
# Django sets the process's time zone from this (America/Chicago by default),
# which the audit log's timestamps would then show without an offset.
TIME_ZONE = "UTC"

# Errors to stderr (by default Django only mails them to ADMINS when DEBUG is
# off); other loggers, the middleware's included, are left as they are.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "ERROR"}},
}
