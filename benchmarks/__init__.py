"""The benchmarks, a package: run each script as a module from the checkout
(``python -m benchmarks.run --quick``, ``python -m benchmarks.costs`` …);
they start their redis-servers with ``tests.support``."""
