"""
Security and reliability proof
==============================

Evidence, measured against a real ``redis-server`` on loopback and a real
WSGI server (gunicorn, or waitress), that the middleware holds under attack
and fault. ``python -m proof`` runs every part and prints a figures table;
``python -m proof --quick`` runs CI-sized versions (``tests/test_proof.py``
runs those under pytest).

Parts (each returns :class:`~proof.figures.Figure` rows with a bar and a
verdict):

- :mod:`proof.contention` single use under contention (4 processes x 50
  threads behind a barrier, over HTTP), with a deliberately non-atomic
  GET-then-SET control that shows the harness detects a race;
- :mod:`proof.lifecycle` replay, expiry (1 s TTL at 0.8 s and 1.2 s, and a
  key that lost its TTL), revocation and logout;
- :mod:`proof.redirects` Django's open-redirect corpus and Hypothesis strings
  as ``destination``, ``scope`` and ``sso_redirect_path``;
- :mod:`proof.parsers` Hypothesis properties over every parser, plus the
  atheris harnesses of :mod:`proof.fuzz` (``python -m proof.fuzz`` runs
  them alone);
- :mod:`proof.faults` Redis killed mid-load, a Redis that never answers, an
  exhausted connection pool, a Redis that fails right after the burn;
- :mod:`proof.canary` no raw token, secret or cookie in Redis or any log.

The lab (:mod:`proof.harness`) runs every part against one app server;
what a part adds to it, it registers with :mod:`proof.registry`. Run it
from the checkout: it uses ``tests.support`` for its redis-servers.

Nothing here is imported by the package; it is test tooling.
"""
