"""
What the example portals share
==============================

The destination table mapped to the portals' own routes, and the development
server each portal runs when started as a module
(``python -m examples.flask_app.app``, or ``scripts/example flask``), which
logs timestamped lines to stderr, the middleware's audit events among them.
The seed accounts are the demo's (:func:`sso_middleware.demo.demo_user_store`).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import typing as t

from sso_middleware import (
    AdminAPIOptions,
    ConfigurationError,
    Destinations,
    SessionOptions,
    SSOMiddleware,
    Stores,
)
from sso_middleware.credentials import hash_secret
from sso_middleware.demo import DemoCredentials, serve

#: The example portals' own routes for the destinations they serve.
EXAMPLE_DESTINATIONS = Destinations(
    {
        "clientarea:profile": "/account/profile",
        "clientarea:services": "/account/services",
        "clientarea:product_details": "/account/services/{service_id}",
        "clientarea:invoices": "/account/invoices",
    },
    home="/",
)


#: The format of the examples' log lines: when, how bad, which process, who.
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging() -> None:
    """Log INFO and above to stderr with timestamps, so that the audit
    events (logger ``sso_middleware``: sign-ons, denials and their reasons)
    show when they happened. Leaves logging alone if the process has
    configured it already."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def serve_example(create_app: t.Callable[..., SSOMiddleware], description: str, port: int) -> None:
    """Run an example portal on 127.0.0.1 for development: ``--port``,
    ``--redis-url`` (else in-memory stores), a random signing key, and the
    demo's admin API credential: ``$SSO_DEMO_API_IDENTIFIER`` (else
    ``demo``) and ``$SSO_DEMO_API_SECRET`` (else random), the parts not
    given printed with a line to export them (see
    :class:`sso_middleware.demo.DemoCredentials`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=port, help="0 picks a free one")
    parser.add_argument("--redis-url", help="keep tokens and sessions in Redis (default: in memory)")
    args = parser.parse_args()
    if not 0 <= args.port <= 65535:
        parser.error(f"argument --port: {args.port} is not a TCP port (0 to 65535)")
    configure_logging()
    credentials = DemoCredentials.from_environ(os.environ, default_identifier="demo")
    server = serve(args.port)  # bound now, so --port 0 names its port; one in use: werkzeug says so
    try:
        server.app = create_app(
            system_url=f"http://127.0.0.1:{server.server_port}",
            stores=Stores.redis(args.redis_url) if args.redis_url else Stores.memory(),
            secret_keys=[secrets.token_urlsafe(32)],
            sessions=SessionOptions(secure=False),
            api=AdminAPIOptions(credentials={credentials.identifier: hash_secret(credentials.secret)}),
        )
    except ConfigurationError as e:  # a --redis-url redis-py refuses (never shown: it may hold a password)
        server.server_close()
        parser.error(str(e))
    print(credentials.line(), flush=True)
    export = credentials.export_line()
    if export is not None:
        print(export, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
