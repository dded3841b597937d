"""
Which Django user a sign-on is
==============================

``REMOTE_USER`` is the middleware's user id (the user store's ``User.user_id``)
as a string, so with Django's ``RemoteUserBackend`` the Django user of SSO
user 1 is the ``auth_user`` row whose username is ``"1"``. With
``create_unknown_user = True`` (the default) the backend creates that row on
the user's first sign-on; any row already named ``"1"`` *is* SSO user 1, so
do not let other accounts have numeric usernames (or map the id to a name of
its own in ``clean_username``, e.g. ``f"sso-{username}"``).

To map sign-ons to rows you already have, override ``clean_username`` (the
SSO user id in, the username of your row out) or ``authenticate``; when rows
are provisioned elsewhere, set ``create_unknown_user = False``
(:class:`ProvisionedUserBackend`): a user without a row is then signed in to
the middleware but anonymous to Django. Either way the backend is a
``ModelBackend``: a row with ``is_active`` off stays anonymous too.
"""

from __future__ import annotations

import typing as t

from django.contrib.auth.backends import RemoteUserBackend

if t.TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.http import HttpRequest


class SSOUserBackend(RemoteUserBackend):
    """The row named after the SSO user id, created on first sign-on without
    a usable password: only a sign-on gets anyone in as that user."""

    def configure_user(
        self, request: HttpRequest | None, user: AbstractBaseUser | None, created: bool = True
    ) -> AbstractBaseUser | None:
        if created and user is not None:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user


class ProvisionedUserBackend(SSOUserBackend):
    """Rows are made elsewhere (an import, an admin): a sign-on of a user
    without one leaves Django's ``request.user`` anonymous."""

    create_unknown_user = False
