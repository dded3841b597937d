"""Shared set-up of the atheris harnesses: the package instrumented for
coverage, one deployment over the Redis that ``python -m proof.fuzz`` started
(``SSO_FUZZ_REDIS_URL``), and the checks of :mod:`proof.targets`.

A harness raises :class:`proof.targets.Crash` for any answer outside the
defined set (a 5xx, an exception out of the middleware, an unexpected error
logged, a missing hardening header, a forged cookie that signs someone in);
atheris then stops and writes the input to ``proof/fuzz/artifacts/``.
"""

from __future__ import annotations

import os
import secrets
import sys

import atheris

with atheris.instrument_imports(include=["sso_middleware"]):
    import sso_middleware  # noqa: F401
    from sso_middleware.destinations import Destinations, is_safe_path  # noqa: F401

import redis  # noqa: E402

from proof.redirects import escape  # noqa: E402,F401
from proof.targets import Crash, Targets  # noqa: E402,F401

SECRET_KEY = secrets.token_urlsafe(32)
API_SECRET = secrets.token_urlsafe(32)


def targets() -> Targets:
    url = os.environ.get("SSO_FUZZ_REDIS_URL")
    if not url:
        raise SystemExit("run the harnesses with python -m proof.fuzz (it starts redis-server)")
    client = redis.Redis.from_url(url, socket_timeout=2)
    return Targets(client, SECRET_KEY, API_SECRET, quiet=True)


def text(fdp: atheris.FuzzedDataProvider, limit: int) -> str:
    """A latin-1 string, as WSGI servers put request data in the environ."""
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, limit)).decode("latin-1")


def run(test_one_input: object) -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
