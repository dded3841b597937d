"""
Identity in the environ
=======================

How the wrapped app learns who is signed in. On every request that reaches
it, the middleware sets, or removes:

``REMOTE_USER``
    The signed-in user's id as a string, for apps and tools that read the
    CGI convention. Removed when no one is signed in, so a value set by
    anything in front of the middleware is never trusted.

``sso_middleware.identity``
    An :class:`Identity` (``user_id``, ``client_id``), read with
    :func:`get_identity`.

.. code-block:: python

    from sso_middleware import get_identity

    def view(environ, start_response):
        identity = get_identity(environ)
        if identity is None:
            ...  # anonymous
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

#: The environ key holding the signed-in :class:`Identity`.
ENVIRON_KEY = "sso_middleware.identity"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is signed in: what the wrapped app gets to see."""

    user_id: int
    client_id: int


def get_identity(environ: t.Mapping[str, t.Any]) -> Identity | None:
    """Return who is signed in for this request, or ``None``."""
    return environ.get(ENVIRON_KEY)
