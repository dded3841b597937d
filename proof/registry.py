"""What the parts add to the lab's app server.

The server (:attr:`proof.harness.Lab.server`) starts once per run and serves
every configuration of the middleware side by side, so everything a part
needs of it must be known before the first part asks for it. A part that
needs its own configurations (*variants*) or things they point at
(*fixtures*: proxies, Redis users) registers them here when it is imported;
the lab calls them when it starts the server. This module imports nothing of
``proof``'s, so imports flow one way: parts → harness → registry, and
parts → registry.

Import every part before the lab's server starts (``python -m proof`` and
``tests/test_proof.py`` do); registering later is an error, not a variant
that silently never gets served.
"""

from __future__ import annotations

import typing as t

#: ``variants(lab)``: more variants, name → options (see :meth:`Lab.variant`).
Variants = t.Callable[[t.Any], dict[str, dict[str, t.Any]]]
#: ``fixture(lab)``: prepares what the variants point at (in ``lab.extra``).
Fixture = t.Callable[[t.Any], None]

_variants: list[Variants] = []
_fixtures: list[Fixture] = []
_sealed = False


def _check_open(what: object) -> None:
    if _sealed:
        raise RuntimeError(
            f"{getattr(what, '__qualname__', what)} was registered after the lab's server "
            "started: import its part before the server starts"
        )


def variants(provider: Variants) -> Variants:
    """Decorator: ``provider(lab)`` returns variants to serve."""
    _check_open(provider)
    _variants.append(provider)
    return provider


def fixture(prepare: Fixture) -> Fixture:
    """Decorator: ``prepare(lab)`` runs before the server starts, before
    any variants provider is called."""
    _check_open(prepare)
    _fixtures.append(prepare)
    return prepare


def run_fixtures(lab: t.Any) -> None:
    """Run every fixture. Called by the lab as it starts the server; no
    registration is accepted afterwards."""
    global _sealed
    _sealed = True
    for prepare in _fixtures:
        prepare(lab)


def registered_variants(lab: t.Any) -> dict[str, dict[str, t.Any]]:
    """The variants every provider adds (after :func:`run_fixtures`)."""
    added: dict[str, dict[str, t.Any]] = {}
    for provider in _variants:
        added.update(provider(lab))
    return added
