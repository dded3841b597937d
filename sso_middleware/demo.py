"""
Demo portal
===========

A small client portal wrapped by the middleware, with seeded accounts, for
trying every destination and every denial by hand (``sso-middleware demo``);
the example portals in ``examples/`` seed the same accounts. It is demo
wiring, not an API: real deployments build their own
:class:`~sso_middleware.SSOMiddleware`.

Seeded accounts (client → owner): 1 Active (user 1; user 5 may also act
for it), 2 Inactive (user 2), 3 Closed (user 3), 4 Active with single sign-on
switched off (user 4). User 6 acts for no account. Services 101
(client 1), 201 (client 2), 301 (client 3); domain 111 (client 1).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import secrets
import shlex
import typing as t
from html import escape

from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .credentials import hash_secret
from .destinations import WHMCS_DESTINATIONS, WHMCS_HOME
from .identity import get_identity
from .middleware import SSOMiddleware
from .options import AdminAPIOptions, Confirm, RedemptionOptions, SessionOptions
from .stores import Stores
from .users import Account, AccountStatus, MemoryUserStore, User

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_TOKEN_IN_LINE = re.compile(r"(access_token=)[^&\s\"]*")

#: Where the demo reads its admin API credential from; a part left unset is
#: generated for the run.
IDENTIFIER_VARIABLE = "SSO_DEMO_API_IDENTIFIER"
SECRET_VARIABLE = "SSO_DEMO_API_SECRET"


def demo_user_store() -> MemoryUserStore:
    """The seeded accounts and users listed in this module's docstring."""
    users = MemoryUserStore()
    for client_id, status, sso_allowed in (
        (1, AccountStatus.ACTIVE, True),
        (2, AccountStatus.INACTIVE, True),
        (3, AccountStatus.CLOSED, True),
        (4, AccountStatus.ACTIVE, False),
    ):
        users.add_account(Account(client_id, status, sso_allowed, owner_user_id=client_id))
        users.add_user(User(client_id, client_ids=(client_id,)))
    users.add_user(User(5, client_ids=(1,)))
    users.add_user(User(6))
    for client_id, service_id in ((1, 101), (2, 201), (3, 301)):
        users.add_service(client_id, service_id)
    users.add_domain(1, 111)
    return users


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo portal</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}</style>
</head><body><h1>Demo portal</h1>
<p id="who">{who}</p>
<p>You are at <code id="here">{here}</code>.</p>
{logout}
<h2>Destinations</h2><ul>{links}</ul>
</body></html>
"""


#: The portal's list of every destination's path (for the seeded client 1).
_LINKS = "".join(
    f'<li><a href="{escape(p)}">{escape(p)}</a></li>'
    for p in sorted(
        {
            WHMCS_HOME,
            *(
                p.format(service_id=101, domain_id=111, sso_redirect_path="clientarea.php")
                for p in WHMCS_DESTINATIONS.values()
            ),
        }
    )
)


def portal(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    """The wrapped app: every path is a page saying who is signed in, and
    ``/whoami`` answers JSON (401 when anonymous)."""
    request = Request(environ)
    identity = get_identity(environ)
    if request.path == "/whoami":
        if identity is None:
            response = Response(json.dumps({"error": "not signed in"}), 401, content_type="application/json")
        else:
            response = Response(
                json.dumps({"user_id": identity.user_id, "client_id": identity.client_id}),
                content_type="application/json",
            )
        return response(environ, start_response)
    if identity is None:
        who, logout = "Not signed in.", ""
    else:
        who = f"Signed in as user {identity.user_id} for client {identity.client_id}."
        logout = '<form method="post" action="/logout"><button>Log out</button></form>'
    here = request.full_path.rstrip("?")
    body = _PAGE.format(who=escape(who), here=escape(here), logout=logout, links=_LINKS)
    return Response(body, content_type="text/html; charset=utf-8")(environ, start_response)


#: What the banner says when the ``metrics`` extra is not installed.
METRICS_MISSING = "No /metrics: install the metrics extra (pip install 'sso_middleware[metrics]') to get one"


def build_demo(
    port: int,
    stores: Stores,
    api_identifier: str,
    api_secret: str,
    secret_key: str,
    *,
    api_actions: t.Sequence[str] | None = None,
    api_allowed_ips: str | None = None,
    confirm: Confirm = "never",
) -> SSOMiddleware:
    """The demo portal wrapped by the middleware, for ``http://127.0.0.1:port``;
    ``api_actions`` limits the API credential's role, ``api_allowed_ips``
    where the API may be called from, ``confirm`` when a followed link shows
    the confirmation page. Logout also answers GET, so that a plain link
    signs out while trying things by hand; deployments keep that off. With
    the ``metrics`` extra installed, ``/metrics`` serves Prometheus metrics."""
    metrics = None
    metrics_page: WSGIApplication = NotFound(
        METRICS_MISSING
    )  # not the portal's page: a scraper would parse it
    if metrics_available():
        from .metrics.prometheus import PrometheusMetrics, metrics_app

        metrics = PrometheusMetrics.isolated()
        metrics_page = metrics_app(metrics.registry)
    app = DispatcherMiddleware(portal, {"/metrics": metrics_page})
    return SSOMiddleware(
        app,
        system_url=f"http://127.0.0.1:{port}",
        secret_keys=[secret_key],
        user_store=demo_user_store(),
        stores=stores,
        api=AdminAPIOptions(
            credentials={api_identifier: hash_secret(api_secret)},
            roles={api_identifier: api_actions} if api_actions else None,
            allowed_ips=api_allowed_ips,
        ),
        sessions=SessionOptions(secure=False, logout_on_get=True),
        redemption=RedemptionOptions(confirm=confirm),
        metrics=metrics,
    )


def metrics_available() -> bool:
    """Whether the ``metrics`` extra (prometheus_client) is installed."""
    return importlib.util.find_spec("prometheus_client") is not None


class RedactingRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, with ``access_token`` values blanked out
    of every access-log and error line."""

    def log(self, type: str, message: str, *args: t.Any) -> None:
        line = message % args if args else message
        super().log(type, "%s", _TOKEN_IN_LINE.sub(r"\1[redacted]", line))


def serve(port: int) -> BaseWSGIServer:
    """A threaded development server on 127.0.0.1 (not started), serving the
    bare portal until its ``app`` is replaced; ``port`` 0 picks a free one."""
    return make_server("127.0.0.1", port, portal, threaded=True, request_handler=RedactingRequestHandler)


@dataclasses.dataclass(frozen=True)
class DemoCredentials:
    """The admin API credential of one demo run, and which of its parts the
    demo generated: only those are ever printed."""

    identifier: str
    secret: str = dataclasses.field(repr=False)
    #: The variables (:data:`IDENTIFIER_VARIABLE`, :data:`SECRET_VARIABLE`)
    #: whose values the demo generated.
    generated: frozenset[str]

    @classmethod
    def from_environ(
        cls, environ: t.Mapping[str, str], *, default_identifier: str | None = None
    ) -> DemoCredentials:
        """The credential ``environ`` names; a part it leaves unset is
        generated (the identifier: ``default_identifier``, if given)."""
        identifier, secret = environ.get(IDENTIFIER_VARIABLE, ""), environ.get(SECRET_VARIABLE, "")
        generated = frozenset(
            name
            for name, value in ((IDENTIFIER_VARIABLE, identifier), (SECRET_VARIABLE, secret))
            if not value
        )
        return cls(
            identifier or default_identifier or "demo-" + secrets.token_hex(4),
            secret or secrets.token_urlsafe(32),
            generated,
        )

    def line(self) -> str:
        """The start-up line naming the credential. Only a secret the demo
        generated is printed (nobody else knows it); one the operator chose
        in ``SSO_DEMO_API_SECRET`` is not, since printing it would copy it
        into terminal scrollback and the logs of whatever runs the demo."""
        shown = self.secret if SECRET_VARIABLE in self.generated else f"(from ${SECRET_VARIABLE})"
        return f"Admin API credentials: identifier={self.identifier} secret={shown}"

    def export_line(self) -> str | None:
        """A shell line that sets the variables of the generated parts, to
        paste where the API is called from (or before restarting the demo,
        to keep the credential); ``None`` when the demo generated nothing."""
        values = {IDENTIFIER_VARIABLE: self.identifier, SECRET_VARIABLE: self.secret}
        exported = [
            f"{name}={shlex.quote(value)}" for name, value in values.items() if name in self.generated
        ]
        return "export " + " ".join(exported) if exported else None


_CONFIRM_NOTES: dict[str, str] = {
    "never": "Links sign in at once; --confirm always (or signed_in) shows a confirmation page first.",
    "always": "Links show a confirmation page first; its Continue button signs in (--confirm always).",
    "signed_in": "Links show a confirmation page first when the browser already has a session"
    " (--confirm signed_in).",
}

#: Why the demo's logout differs from a deployment's.
LOGOUT_NOTE = (
    "Logout also answers GET here (logout_on_get=True): a plain link to /logout signs out.\n"
    "Deployments keep logout_on_get off (the default): with it on, any page could sign"
    " their users out with <img src=/logout>."
)


def banner(base: str, credentials: DemoCredentials, *, in_redis: bool, confirm: Confirm = "never") -> str:
    """What the demo prints when it starts: where it serves, its credential,
    how it differs from a deployment's defaults, and a request to try."""
    lines = [
        f"Demo portal on {base} (tokens and sessions in {'Redis' if in_redis else 'memory'})",
        credentials.line(),
        _CONFIRM_NOTES[confirm],
        LOGOUT_NOTE,
        f"Prometheus metrics on {base}/metrics" if metrics_available() else METRICS_MISSING,
        "Try:",
    ]
    export = credentials.export_line()
    if export is not None:
        lines.append("  " + export)
    curl = (
        f"  curl -s {base}/includes/api.php -d action=CreateSsoToken"
        f" --data-urlencode {shlex.quote('identifier=' + credentials.identifier)}"
        f' --data-urlencode "secret=${SECRET_VARIABLE}" -d responsetype=json'
        " -d client_id=1 -d destination=clientarea:invoices"
    )
    lines += [curl, "then open the redirect_url in a browser."]
    return "\n".join(lines)
