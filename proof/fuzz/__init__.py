"""The atheris harnesses, one per parser, and their runner (``python -m
proof.fuzz``; ``python -m proof`` runs it as its ``fuzz`` part).

They live under ``proof/`` because they are proof tooling: they check the
answers with :mod:`proof.targets` and :func:`proof.redirects.escape`, and the
proof's figure 9 is their result; nothing in ``tests/`` uses them.

Nothing here may import :mod:`sso_middleware` before
:mod:`proof.fuzz._common` instruments it for coverage.
"""
