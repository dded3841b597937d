"""
Command line
============

``sso-middleware`` (or ``python -m sso_middleware``):

``demo``
    Serve the demo portal with single sign-on on 127.0.0.1.
``create-token``
    Mint a token against a Redis-backed deployment and print the API response.
``end-sessions``
    End every session of an account or a user in a Redis-backed deployment.
``credentials create|list|reset-secret|delete|import``
    Manage the OAuth credential sets of a Redis-backed deployment; ``import``
    copies those of a release that kept them unsealed.
``hash-secret``
    Print the hash of an admin API secret, for ``api_credentials``.

The commands that act on a deployment print one JSON document on standard
output, the admin API's answer to the same action, so that a script parses
both alike: exit status 0 with ``{"result": "success", ...}``, 1 with
``{"result": "error", "message": ...}``. A command line that cannot be run
(a bad option value, a missing option) exits 2 with argparse's usage line
on standard error and prints nothing on standard output. Notes, warnings and
the audit log go to standard error.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import logging
import os
import re
import secrets
import sys
import typing as t
from urllib.parse import urlsplit

import redis

from .allowlist import AddressAllowList
from .credentials import hash_secret
from .destinations import Destinations
from .endpoints.admin_api import AdminAPI
from .exceptions import APIError, ConfigurationError, SSOError
from .issuer import MintRequest, TokenIssuer
from .options import CONFIRM_MODES, MAX_TIMEOUT, MAX_TTL, SessionOptions
from .paste import load, secret_keys
from .stores import Stores
from .stores.redis import DEFAULT_PREFIX, KEY_KINDS, connect
from .urls import check_path, check_system_url
from .users import UserStore

#: How log lines look when the process has not configured logging itself:
#: timestamped, so the audit log can be read against other logs.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Failed(Exception):
    """A command could not do what it was asked; the message is what its
    error answer says."""


class UsageError(Exception):
    """A command line argparse accepts but the command cannot run (such as
    ``end-sessions`` without an id); reported as argparse reports a bad
    option, with exit status 2 and nothing on standard output."""


def _answer(result: t.Mapping[str, t.Any]) -> int:
    """Print ``result`` as the admin API answers it in JSON: one document,
    on one line. The exit status: 0 for success, 1 for an error answer."""
    print(json.dumps(result, separators=(",", ":")))
    return 0 if result.get("result") == "success" else 1


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoCredentials, banner, build_demo, serve

    stores = Stores.redis(args.redis_url) if args.redis_url else Stores.memory()
    credentials = DemoCredentials.from_environ(os.environ)
    secret_key = os.environ.get("SSO_SECRET_KEY") or secrets.token_urlsafe(32)
    server = serve(args.port)  # a port in use: werkzeug says so and exits
    server.app = build_demo(
        server.server_port,
        stores,
        credentials.identifier,
        credentials.secret,
        secret_key,
        api_actions=args.api_actions,
        api_allowed_ips=args.api_allowed_ips,
        confirm=args.confirm,
    )
    base = f"http://127.0.0.1:{server.server_port}"
    print(banner(base, credentials, in_redis=bool(args.redis_url), confirm=args.confirm), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _user_store(dotted: str) -> UserStore:
    """The deployment's user store, made by the factory ``dotted`` names
    (which :func:`_factory_name` checked)."""
    try:
        store = load("--user-store", dotted)()
    except Exception as e:  # a factory that wants arguments, or cannot reach its database
        raise Failed(f"cannot make the user store with {dotted!r}: {type(e).__name__}: {e}") from None
    if not isinstance(store, UserStore):
        raise Failed(
            f"{dotted!r} made a {type(store).__name__}, not a user store (get_account, get_user, owner_of)"
        )
    return store


def _secret_keys() -> list[str]:
    """The deployment's secret keys, which seal token records: from
    ``$SSO_SECRET_KEYS``, whitespace-separated, oldest first."""
    try:
        return secret_keys({"secret_keys_env": "SSO_SECRET_KEYS"})
    except ConfigurationError as e:
        raise Failed(str(e)) from None


def _create_token(args: argparse.Namespace) -> int:
    from .sealing import RecordSealer
    from .stores.redis import RedisTokenStore

    issuer = TokenIssuer(
        RedisTokenStore(connect(args.redis_url), prefix=args.prefix),
        RecordSealer(_secret_keys()),
        _user_store(args.user_store),
        Destinations(),
        sso_url=args.system_url.rstrip("/") + args.sso_path,
        ttl=args.ttl,
    )
    request = MintRequest(**{f.name: getattr(args, f.name) for f in dataclasses.fields(MintRequest)})
    return _answer(issuer.create_sso_token(request, actor="cli"))


def _deployment_under(client: t.Any, prefix: str) -> bool:
    """Whether keys of a deployment (tokens, sessions, end times, counters,
    credential sets) are stored under ``prefix``: a typo in it would make
    a command write where no deployment reads."""
    pattern = re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*"
    return any(
        key[len(prefix) :].startswith(KEY_KINDS)
        for key in (k.decode("utf-8", "replace") for k in client.scan_iter(match=pattern, count=1000))
    )


def _end_sessions(args: argparse.Namespace) -> int:
    from .sessions import SessionManager
    from .stores.redis import RedisTokenStore

    if args.client_id is None and args.user_id is None:
        raise UsageError("give --client-id, --user-id or both")
    client = connect(args.redis_url)
    try:
        found = _deployment_under(client, args.prefix)
    except redis.exceptions.NoPermissionError:  # an ACL user without SCAN, as docs/deployment.md has it
        print(
            f"warning: cannot check that a deployment lives under {args.prefix!r} (no SCAN permission)",
            file=sys.stderr,
        )
        found = True
    if not found:
        raise Failed(
            f"nothing of a deployment is stored under the prefix {args.prefix!r} in this"
            " database, so there are no sessions to end there; check --prefix and the URL's database"
        )
    sessions = SessionManager(
        RedisTokenStore(client, prefix=args.prefix),
        _secret_keys(),
        SessionOptions(
            absolute_timeout=args.absolute_timeout, idle_timeout=min(30 * 60, args.absolute_timeout)
        ),
    )
    sessions.end_sessions(client_id=args.client_id, user_id=args.user_id, actor="cli")
    ended = {
        name: value
        for name, value in (("client_id", args.client_id), ("user_id", args.user_id))
        if value is not None
    }
    return _answer({"result": "success", **ended})


def _credentials(args: argparse.Namespace) -> int:
    """The credential set commands, answered as ``CreateOAuthCredential``,
    ``ListOAuthCredentials``, ``UpdateOAuthCredential`` (with
    ``resetSecret``) and ``DeleteOAuthCredential`` answer."""
    from .oauth import CredentialManager
    from .sealing import RecordSealer

    manager = CredentialManager(
        Stores.redis(connect(args.redis_url), prefix=args.prefix).credentials,
        _user_store(args.user_store),
        Destinations(),
        RecordSealer(_secret_keys()),
    )
    result: dict[str, t.Any]
    try:
        if args.action == "create":
            credential, secret = manager.create(
                grant_type="single_sign_on",
                scope=" ".join(dict.fromkeys(args.scope)),
                service_id=args.service_id,
                name=args.name,
                description=args.description,
                actor="cli",
            )
            result = {
                "result": "success",
                "credentialId": credential.credential_id,
                "clientIdentifier": credential.identifier,
                "clientSecret": secret,
            }
        elif args.action == "list":
            clients = [c.describe() for c in manager.list()]
            result = {"result": "success", "totalresults": len(clients), "clients": clients}
        elif args.action == "import":
            from .stores.redis import RedisCredentialStore

            old = RedisCredentialStore(connect(args.redis_url), prefix=args.from_prefix)
            sets, unreadable = manager.import_unsealed(
                old.all(), only=args.only, reset_secrets=args.reset_secrets, apply=args.apply, actor="cli"
            )
            result = {
                "result": "success",
                "applied": args.apply,
                "credentials": sets,
                "unreadable": unreadable,
            }
            if not args.apply:
                print(
                    "Nothing written: review these sets (anyone who could write to the old store"
                    " could have added or changed one), then run again with --apply"
                    " [--only IDENTIFIER ...] [--reset-secrets].",
                    file=sys.stderr,
                )
        elif args.action == "reset-secret":
            credential, new_secret = manager.update(args.credential_id, reset_secret=True, actor="cli")
            result = {
                "result": "success",
                "credentialId": credential.credential_id,
                "clientIdentifier": credential.identifier,
                "clientSecret": new_secret,
            }
        else:
            credential = manager.delete(args.credential_id, actor="cli")
            result = {"result": "success", "credentialId": credential.credential_id}
    except APIError as e:
        result = {"result": "error", "message": e.message}
    return _answer(result)


def _hash_secret(args: argparse.Namespace) -> int:
    secret = getpass.getpass("Secret: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    if not secret:
        print("error: empty secret", file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


def _ttl(value: str) -> int:
    return _seconds(value, MAX_TTL)


def _timeout(value: str) -> int:
    return _seconds(value, MAX_TIMEOUT)


def _seconds(value: str, most: int) -> int:
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= most:
        raise argparse.ArgumentTypeError(f"whole seconds from 1 to {most}")
    return int(value)


# argparse shows the value of an argument its type refuses with ValueError,
# but not with ArgumentTypeError: a URL may hold a password.


def _prefix(value: str) -> str:
    """A key prefix: text Redis keys can be made of (a shell may pass bytes
    that are not UTF-8, which Python keeps as unencodable surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("the prefix must be UTF-8 text") from None
    return value


def _redis_url(value: str) -> str:
    """A URL :func:`~sso_middleware.stores.redis.connect` takes (checked
    without connecting)."""
    try:
        scheme = urlsplit(value).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("redis", "rediss", "unix"):
        raise argparse.ArgumentTypeError("not a redis://, rediss:// or unix:// URL (the value is not shown)")
    try:
        connect(value).close()
    except ConfigurationError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _system_url(value: str) -> str:
    """A URL the middleware would take as its ``system_url``. Plain http
    passes, as it does for a deployment with ``SessionOptions(secure=False)``:
    the command line cannot know the deployment's cookie setting."""
    try:
        return check_system_url(value, secure=False)
    except ConfigurationError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _path(value: str) -> str:
    try:
        return check_path("the SSO path", value)
    except ConfigurationError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _id(value: str) -> int:
    if not (value.isascii() and value.isdigit() and 0 < int(value) < 2**63):
        raise argparse.ArgumentTypeError("a positive whole number")
    return int(value)


def _port(value: str) -> int:
    if not (value.isascii() and value.isdigit() and int(value) <= 65535):
        raise argparse.ArgumentTypeError("a port from 0 to 65535 (0 picks a free one)")
    return int(value)


def _factory_name(value: str) -> str:
    """``package.module:factory`` naming something callable: checked when
    the command line is read, called when the command runs."""
    try:
        found = load("--user-store", value)
    except ConfigurationError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--user-store = ")) from None
    if not callable(found):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a factory (a class or function) but {type(found).__name__}"
        )
    return value


def _networks(value: str) -> str:
    try:
        AddressAllowList(value)
    except ConfigurationError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("api_allowed_ips").lstrip(": ")) from None
    return value


def _actions(value: str) -> list[str]:
    names = value.replace(",", " ").split()
    known = {name.lower() for name in AdminAPI.ACTIONS}
    for name in names:
        if name.lower() not in known:
            raise argparse.ArgumentTypeError(
                f"no action {name!r}; the actions are {', '.join(AdminAPI.ACTIONS)}"
            )
    if not names:
        raise argparse.ArgumentTypeError("name at least one action")
    return names


def _deployment_arguments(command: argparse.ArgumentParser, *, user_store: bool) -> None:
    """The options that name a deployment's Redis, its key prefix and, for
    commands that check accounts, its user store (never a demo's); the
    command answers in JSON."""
    command.add_argument(
        "--redis-url",
        default=os.environ.get("SSO_REDIS_URL"),
        type=_redis_url,
        required="SSO_REDIS_URL" not in os.environ,
        help="the deployment's Redis (default: $SSO_REDIS_URL)",
    )
    command.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        type=_prefix,
        help=f"the deployment's redis_prefix (default {DEFAULT_PREFIX})",
    )
    if user_store:
        command.add_argument(
            "--user-store",
            default=os.environ.get("SSO_USER_STORE"),
            type=_factory_name,
            required=not os.environ.get("SSO_USER_STORE"),
            help="package.module:factory returning the deployment's user store (default: $SSO_USER_STORE)",
        )
    command.set_defaults(command_parser=command, answers_json=True)


_DEMO_DESCRIPTION = """\
Serve the demo portal on 127.0.0.1, with seeded accounts and an admin API
credential: $SSO_DEMO_API_IDENTIFIER and $SSO_DEMO_API_SECRET, each generated
when unset (what it generates is printed, with an export line to paste). Unlike
a deployment's default, logout also answers GET (logout_on_get=True), so a
plain link to /logout signs out; deployments keep it off, since any page could
then sign their users out with <img src=/logout>. Log lines, the audit log's
among them, are timestamped on standard error unless the process configured
logging itself.
"""


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    main = argparse.ArgumentParser(
        prog="sso-middleware",
        description="Single sign-on for WSGI apps: demo and operator tools.",
        epilog="create-token, end-sessions and credentials print the admin API's JSON answer to the"
        ' same action on standard output; an error answer ({"result": "error", "message": ...})'
        " exits 1, a command line that cannot run exits 2. Notes and the audit log go to"
        " standard error.",
    )
    commands = main.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="serve the demo portal on 127.0.0.1", description=_DEMO_DESCRIPTION
    )
    demo.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    demo.add_argument(
        "--redis-url",
        type=_redis_url,
        default=os.environ.get("SSO_REDIS_URL") or None,
        help="keep tokens and sessions in Redis (default: $SSO_REDIS_URL, else in memory)",
    )
    demo.add_argument(
        "--api-allowed-ips",
        type=_networks,
        metavar="NETWORKS",
        help="answer the admin API only from these networks, e.g. 127.0.0.1/32,::1 (default: any address)",
    )
    demo.add_argument(
        "--api-actions",
        type=_actions,
        metavar="ACTIONS",
        help="let the admin API credential call only these actions, e.g. CreateSsoToken"
        " (default: every action)",
    )
    demo.add_argument(
        "--confirm",
        choices=CONFIRM_MODES,
        default="never",
        help="when a followed link shows a confirmation page whose Continue button signs in:"
        " always, only when the browser already has a session (signed_in), or never"
        " (default: never, links sign in at once)",
    )
    demo.set_defaults(run=_demo, command_parser=demo, answers_json=False)

    create = commands.add_parser("create-token", help="mint a token (CreateSsoToken) in Redis")
    _deployment_arguments(create, user_store=True)
    create.add_argument(
        "--system-url",
        required=True,
        type=_system_url,
        help="the deployment's public base URL, checked as the middleware checks system_url"
        " (http:// passes, as for a deployment with secure cookies off)",
    )
    create.add_argument("--sso-path", default="/oauth/singlesignon.php", type=_path)
    create.add_argument("--ttl", type=_ttl, default=60, help="token lifetime in seconds (default 60)")
    for field in dataclasses.fields(MintRequest):
        create.add_argument("--" + field.name.replace("_", "-"))
    create.set_defaults(run=_create_token)

    end = commands.add_parser(
        "end-sessions", help="end every session of an account or a user, and their unused links"
    )
    _deployment_arguments(end, user_store=False)
    end.add_argument("--client-id", type=_id, help="end the sessions of this account")
    end.add_argument("--user-id", type=_id, help="end the sessions of this user")
    end.add_argument(
        "--absolute-timeout",
        type=_timeout,
        default=MAX_TIMEOUT,
        help="how long the end is remembered, at least the deployment's absolute_timeout"
        f" (default {MAX_TIMEOUT} s, the longest allowed)",
    )
    end.set_defaults(run=_end_sessions)

    credentials = commands.add_parser("credentials", help="manage OAuth credential sets in Redis")
    actions = credentials.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("create", "create a set; prints its secret, once"),
        ("list", "list the sets (never their secrets)"),
        ("reset-secret", "replace a set's secret; the old one stops working"),
        ("delete", "delete a set"),
        ("import", "copy the sets of a release that kept them unsealed, sealed"),
    ):
        sub = actions.add_parser(action, help=help_text)
        _deployment_arguments(sub, user_store=True)
        if action == "create":
            sub.add_argument("--service-id", required=True, help="the service the set is bound to")
            sub.add_argument(
                "--scope",
                action="extend",
                type=str.split,
                default=[],
                help="a destination the set may sign in to, e.g. clientarea:invoices; repeat the option"
                ' or separate several with spaces (--scope "clientarea:invoices clientarea:services");'
                " a destination given twice counts once",
            )
            sub.add_argument("--name", default="")
            sub.add_argument("--description", default="")
        elif action == "import":
            sub.add_argument("--from-prefix", required=True, help="the old release's prefix, e.g. sso:v1:")
            sub.add_argument("--apply", action="store_true", help="write them (without it: only list them)")
            sub.add_argument(
                "--only",
                action="append",
                default=[],
                metavar="IDENTIFIER",
                help="import this set only (repeatable)",
            )
            sub.add_argument(
                "--reset-secrets",
                action="store_true",
                help="give each imported set a new secret (printed once) instead of trusting the old store's",
            )
        elif action != "list":
            sub.add_argument("--credential-id", required=True)
    credentials.set_defaults(run=_credentials)

    hash_cmd = commands.add_parser("hash-secret", help="hash an admin API secret read from stdin")
    hash_cmd.set_defaults(run=_hash_secret, command_parser=hash_cmd, answers_json=False)
    return main


def configure_logging() -> None:
    """Timestamped INFO lines on standard error, so that the audit log (the
    ``sso_middleware`` logger) shows; nothing when the process configured
    logging already (a handler on the root logger or on the package's)."""
    if logging.getLogger().handlers or logging.getLogger("sso_middleware").handlers:
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parser().parse_args(argv)
    configure_logging()
    command: argparse.ArgumentParser = args.command_parser
    try:
        return int(args.run(args))
    except UsageError as e:
        command.error(str(e))
    except (Failed, SSOError, redis.RedisError) as e:
        # a RedisError: a command's own reads, outside the stores' fail-closed wrapper
        message = f"Redis error: {type(e).__name__}: {e}" if isinstance(e, redis.RedisError) else str(e)
        if args.answers_json:
            return _answer({"result": "error", "message": message})
        print(f"error: {message}", file=sys.stderr)
        return 1
