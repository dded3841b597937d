"""
URLs
====

The checks of the deployment's own URL and paths, shared by the middleware
and the command line: every redirect and link is built from them, so one
that could never be routed, or that carries a query or credentials, is
refused when it is configured, not discovered on the first request.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .exceptions import ConfigurationError

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

#: Printable ASCII without spaces or backslashes (which browsers read as
#: "/", so that ``https://evil.example\\.portal.example.com`` is evil.example's):
#: what a URL or a path may hold here.
_PRINTABLE = re.compile(r"[!-\[\]-~]+")


def check_system_url(url: str, secure: bool = True) -> str:
    """``url`` without a trailing slash, if it can be the public base URL
    of a deployment; else :class:`ConfigurationError`, which does not
    repeat the URL (it may hold credentials)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        parts, port = urlsplit(""), None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or port == 0
        or parts.fragment
        or "@" in parts.netloc
        or not _PRINTABLE.fullmatch(url)
    ):
        raise ConfigurationError(
            "system_url must be the public base URL of the app,"
            " like https://portal.example.com (no query, fragment or credentials)"
        )
    if secure and parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        raise ConfigurationError(
            "system_url is plain HTTP but cookies are Secure, so browsers would"
            " never send the session back; use https, or for development"
            " SessionOptions(secure=False) (secure_cookies = false in an ini)"
        )
    return url.rstrip("/")


def check_path(name: str, path: str, *, endpoint: bool = True) -> str:
    """A path of this deployment; an endpoint's is matched against the
    decoded ``PATH_INFO``, so it can hold no query, fragment or escape."""
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or path.startswith("//")
        or not _PRINTABLE.fullmatch(path)
        or (endpoint and any(c in path for c in "?#%"))
    ):
        raise ConfigurationError(
            f"{name} {path!r} must be a path of printable ASCII (no spaces or control"
            f" characters{', ?, # or %' if endpoint else ''}) starting with one '/'"
        )
    return path
