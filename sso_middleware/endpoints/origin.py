"""
Origin
======

Whether a browser says a request comes from this deployment's own pages.

``SameSite=Lax`` keeps the session cookie off POSTs from other *sites*, but a
sibling subdomain is the same site: only the request's origin tells its pages
from ours. Browsers send ``Sec-Fetch-Site`` (and ``Origin`` on every POST);
programs that are not browsers send neither.
"""

from __future__ import annotations

import typing as t
from urllib.parse import urlsplit

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


def origin_of(url: str) -> str:
    """The origin (scheme, host and port) of an absolute URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def from_origin(environ: WSGIEnvironment, origin: str) -> bool | None:
    """``True`` if the browser says the request comes from ``origin``,
    ``False`` if it says it comes from elsewhere (another site, or a
    sibling host of the same site), ``None`` if it says nothing."""
    fetch_site = environ.get("HTTP_SEC_FETCH_SITE")
    if fetch_site is not None:
        return bool(fetch_site == "same-origin")
    sent = environ.get("HTTP_ORIGIN")
    return None if sent is None else bool(sent == origin)
