"""The test suite. A package, so that ``tests.support`` has one import name
in pytest (``pythonpath = .`` in setup.cfg), in ``python -m proof``, in the
fuzz harnesses and in the benchmarks."""
