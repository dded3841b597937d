"""The example portals (Flask, Pyramid, Bottle, Django), the ini pipeline and the
SQLite user store. A package so that each portal can share
:mod:`examples.portal`; run a portal from the checkout with
``python -m examples.flask_app.app`` (``scripts/example flask`` does)."""
