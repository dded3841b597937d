"""What the tests share with each other and with ``proof/`` and
``benchmarks/``; none of it is a test, and none of it is a fixture (those are
in ``tests/conftest.py``).

- :mod:`tests.support.helpers`: the test deployment's constants and seed
  data, the echo app, ``browser()``, ``sso_path()``, a fake clock, and the
  admin API form, ini filter settings and token grant the tests send;
- :mod:`tests.support.redis_server`: one real ``redis-server`` on a free
  loopback port;
- :mod:`tests.support.redis_topologies`: Sentinel and Cluster topologies;
- :mod:`tests.support.live`: the middleware served over real HTTP, in this
  process or by gunicorn (``serve_gunicorn()``, ``pipeline_args()``);
- ``gunicorn_cookie_names.py``: gunicorn settings (``-c``) that log the
  cookie names each request brings.
"""
