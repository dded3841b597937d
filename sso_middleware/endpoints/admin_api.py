"""
Admin API
=========

:class:`AdminAPI` answers ``POST /includes/api.php``, the reference system's
API, for the actions this middleware implements: ``CreateSsoToken`` and the
OAuth credential set actions ``CreateOAuthCredential``,
``ListOAuthCredentials``, ``UpdateOAuthCredential`` and
``DeleteOAuthCredential``, and ``EndSsoSessions``, which ends every
session of an account or a user.

.. code-block:: console

    $ curl -s https://portal.example.com/includes/api.php \\
        -d action=CreateSsoToken -d username=ID -d password=SECRET \\
        -d responsetype=json -d client_id=1 -d destination=clientarea:invoices
    {"result":"success","access_token":"...","redirect_url":"https://portal.example.com/oauth/singlesignon.php?access_token=..."}

Requests are read as the reference system reads them, so integrations
written for it work unchanged:

- the credentials are ``identifier`` and ``secret``, or the same pair in
  ``username`` and ``password``; they must be in the body, never the query
  string, which ends up in access logs;
- other parameters may also come in the query string (``POST
  /includes/api.php?action=CreateSsoToken``); the body wins a clash;
- action names match in any case, and answers echo them in lower case;
- ``responsetype`` is ``json``, ``xml`` or ``nvp``; see
  :mod:`~sso_middleware.endpoints.api_formats`.

Statuses follow the reference system too. An action that fails (bad input,
a Closed account, an unknown client, ...) answers 200 with ``{"result":
"error", "message": ...}``. A caller that may not call answers 403: a wrong
credential (``Authentication Failed``), an address outside
``api_allowed_ips`` (``Invalid IP <address>``), an action outside the
credential's role (``Invalid Permissions: API action "<action>" is not
allowed``) or an action that does not exist here. A request the API cannot
read answers 400 (no ``action``, a parameter twice, credentials in the query
string, text that is not UTF-8), 405 (not a POST), 413 (too large) or 415
(not form-encoded); 429 (with ``Retry-After``) after too many failed
authentications; 503 when a store is down.
"""

from __future__ import annotations

import logging
import re
import typing as t

from werkzeug.exceptions import HTTPException

from ..allowlist import AddressAllowList, parse_address
from ..audit import audit, unavailable
from ..credentials import APICredentials
from ..exceptions import APIError, ConfigurationError, MalformedRequest
from ..issuer import MintRequest, TokenIssuer, parse_id
from ..metrics import NO_METRICS, Metrics
from ..oauth import CredentialManager
from ..options import parse_bool
from ..ratelimit import AuthFailures, remote_address
from ..responses import Answer
from ..sessions import SessionManager
from .api_formats import RESPONSE_TYPES, default_type, render
from .bodies import BoundedRequest

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from werkzeug.wrappers import Request

#: Parameters that hold a secret, and so are refused in the query string.
SECRET_PARAMETERS = frozenset({"identifier", "secret", "username", "password", "accesskey"})

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

#: What an action name is echoed as: the reference system's lower case, with
#: anything but letters and digits shown as ``_``, so that an echo carries
#: nothing else (and ``Create-SsoToken`` is not echoed as a valid name).
_NOT_ACTION = re.compile(r"[^0-9a-z]")

#: An action: the parameters and the caller's identifier in, the result out.
Action = t.Callable[[t.Mapping[str, str], str], dict[str, t.Any]]


def _error(message: str) -> dict[str, str]:
    return {"result": "error", "message": message}


class AdminAPI:
    """The WSGI application behind the API path.

    :param issuer: mints the tokens.
    :param api_keys: who may call the API, and which actions.
    :param oauth_credentials: manages OAuth credential sets.
    :param sessions: for ``EndSsoSessions``.
    :param auth_failures: limits failed authentications.
    :param trusted_proxies: see :func:`~sso_middleware.ratelimit.remote_address`.
    :param allowed_addresses: the only networks the API answers; ``None``
        for any.
    :param metrics: told of every token minted (channel ``admin_api``) and
        every failed authentication.
    """

    #: Largest request body accepted, in bytes.
    max_content_length = 64 * 1024

    #: Action name → the method that answers it. To add an action, extend
    #: it in a subclass (``ACTIONS = {**AdminAPI.ACTIONS, "Name": "method"}``)
    #: and set the subclass as :attr:`SSOMiddleware.admin_api_class`.
    ACTIONS: t.ClassVar[dict[str, str]] = {
        "CreateSsoToken": "create_sso_token",
        "CreateOAuthCredential": "create_oauth_credential",
        "ListOAuthCredentials": "list_oauth_credentials",
        "UpdateOAuthCredential": "update_oauth_credential",
        "DeleteOAuthCredential": "delete_oauth_credential",
        "EndSsoSessions": "end_sso_sessions",
    }

    #: Actions (in lower case) whose answers hold lists: XML by default,
    #: never NVP.
    LIST_ACTIONS: t.ClassVar[frozenset[str]] = frozenset({"listoauthcredentials"})

    def __init__(
        self,
        issuer: TokenIssuer,
        api_keys: APICredentials,
        oauth_credentials: CredentialManager,
        sessions: SessionManager,
        *,
        auth_failures: AuthFailures,
        trusted_proxies: int = 0,
        allowed_addresses: AddressAllowList | None = None,
        metrics: Metrics = NO_METRICS,
    ):
        self.issuer = issuer
        self.api_keys = api_keys
        self.oauth_credentials = oauth_credentials
        self.sessions = sessions
        self.auth_failures = auth_failures
        self.trusted_proxies = trusted_proxies
        self.allowed_addresses = allowed_addresses
        self.metrics = metrics
        #: action name → handler.
        self.actions: dict[str, Action] = {
            name: getattr(self, method) for name, method in self.ACTIONS.items()
        }
        #: the same by lower-case name, as requests name them in any case
        self._by_lower_name = {name.lower(): handler for name, handler in self.actions.items()}
        for identifier, allowed in api_keys.roles.items():
            unknown = sorted(allowed - self._by_lower_name.keys())
            if unknown:
                raise ConfigurationError(
                    f"api_roles[{identifier!r}]: no action {unknown[0]!r}; the actions are "
                    + ", ".join(self.actions)
                )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.respond(environ)(environ, start_response)

    def respond(self, environ: WSGIEnvironment) -> Answer:
        """Answer one request; never raises."""
        if environ.get("REQUEST_METHOD") != "POST":
            return render(
                _error("The API accepts POST requests only"), "json", "", 405, headers={"Allow": "POST"}
            )
        try:
            request = BoundedRequest(environ, self.max_content_length)
            if request.mimetype not in _FORM_TYPES:
                return render(
                    _error("Send the parameters form-encoded (application/x-www-form-urlencoded)"),
                    "json",
                    "",
                    415,
                )
            params = read_parameters(request)
            identifier, secret = _credentials(params)
        except MalformedRequest as e:
            return render(_error(e.message), "json", "", 400)
        except HTTPException as e:
            return render(_error(e.description or e.name), "json", "", e.code or 400)
        except UnicodeError:
            return render(_error("Parameters must be UTF-8"), "json", "", 400)
        action = params.get("action", "").strip()
        echoed = _NOT_ACTION.sub("_", action.lower())[:64]
        requested = params.get("responsetype", "").strip().lower()
        response_type = requested or default_type(echoed in self.LIST_ACTIONS)
        try:
            status, result, headers = self.call(
                environ, action, echoed, identifier, secret, params, response_type
            )
        except Exception as e:
            unavailable("Admin API", e)
            status, result, headers = 503, _error("Service temporarily unavailable"), {}
        if not self._renders(response_type, echoed):
            response_type = "json"
        return render(result, response_type, echoed, status, headers=headers)

    def call(
        self,
        environ: WSGIEnvironment,
        action: str,
        echoed: str,
        identifier: str,
        secret: str,
        params: t.Mapping[str, str],
        response_type: str,
    ) -> tuple[int, dict[str, t.Any], dict[str, str]]:
        """Check the caller (address, credentials, role) and the response
        type, then run the action (``echoed`` is its name as answers show
        it): the status, the result and any extra headers."""
        address = remote_address(environ, self.trusted_proxies)
        if self.allowed_addresses is not None and address not in self.allowed_addresses:
            shown = str(parse_address(address) or "(malformed)")
            audit(
                logging.WARNING,
                "api_address_refused",
                "Admin API call from %s refused: not in api_allowed_ips",
                shown,
                address=shown,
            )
            return 403, _error(f"Invalid IP {shown}"), {}
        if not self.api_keys.verify(identifier, secret):
            # An unknown identifier may be a secret pasted in the wrong field.
            shown = identifier if self.api_keys.knows(identifier) else "(unknown)"
            audit(
                logging.WARNING,
                "api_auth_failed",
                "Admin API authentication failed for identifier %s",
                shown,
                identifier=shown,
                address=address,
            )
            self.metrics.auth_failed("api")
            wait = self.auth_failures.failed(identifier, address)
            if wait:
                return 429, _error("Too many failed attempts; retry later"), {"Retry-After": str(wait)}
            return 403, _error("Authentication Failed"), {}
        if not action:
            return 400, _error("Empty action request"), {}
        handler = self._by_lower_name.get(action.lower())
        if handler is None:
            return 403, _error(f'Invalid API Action: "{echoed}" is not a valid API action'), {}
        if not self.api_keys.may_call(identifier, action):
            audit(
                logging.WARNING,
                "api_action_refused",
                "Admin API identifier %s may not call %s",
                identifier,
                echoed,
                identifier=identifier,
                action=echoed,
            )
            return 403, _error(f'Invalid Permissions: API action "{echoed}" is not allowed'), {}
        if response_type not in RESPONSE_TYPES:
            return (
                200,
                _error(
                    f'Unsupported API response type format "{response_type[:16]}".'
                    " Supported formats include: json, xml, nvp"
                ),
                {},
            )
        if not self._renders(response_type, echoed):
            return 200, _error("This API action only supports the XML or JSON response type formats"), {}
        try:
            return 200, handler(params, identifier), {}
        except (APIError, MalformedRequest) as e:
            return 200, _error(e.message), {}

    def _renders(self, response_type: str, action: str) -> bool:
        """Whether ``action``'s answers can be given in ``response_type``:
        a known type, and never NVP for an answer that holds lists."""
        return response_type in RESPONSE_TYPES and not (
            response_type == "nvp" and action in self.LIST_ACTIONS
        )

    def create_sso_token(self, params: t.Mapping[str, str], identifier: str) -> dict[str, t.Any]:
        """``CreateSsoToken``: the token, or the reason there is none."""
        request = MintRequest.from_params(params)
        result = self.issuer.create_sso_token(request, actor=f"api:{identifier}")
        if result["result"] == "success":
            self.metrics.minted("admin_api")
        return dict(result)

    def create_oauth_credential(self, params: t.Mapping[str, str], identifier: str) -> dict[str, t.Any]:
        """``CreateOAuthCredential``: the only time the secret is shown."""
        credential, secret = self.oauth_credentials.create(
            grant_type=params.get("grantType"),
            scope=params.get("scope", ""),
            service_id=params.get("serviceId"),
            name=params.get("name", ""),
            description=params.get("description", ""),
            actor=f"api:{identifier}",
        )
        return {
            "result": "success",
            "credentialId": credential.credential_id,
            "clientIdentifier": credential.identifier,
            "clientSecret": secret,
        }

    def list_oauth_credentials(self, params: t.Mapping[str, str], identifier: str) -> dict[str, t.Any]:
        """``ListOAuthCredentials``: every set, never a secret or its hash."""
        clients = [c.describe() for c in self.oauth_credentials.list()]
        return {"result": "success", "totalresults": len(clients), "clients": clients}

    def update_oauth_credential(self, params: t.Mapping[str, str], identifier: str) -> dict[str, t.Any]:
        """``UpdateOAuthCredential``; with ``resetSecret`` the new secret is
        returned and the old one stops working at once."""
        credential, secret = self.oauth_credentials.update(
            params.get("credentialId"),
            name=params.get("name"),
            description=params.get("description"),
            scope=params.get("scope"),
            reset_secret=_flag(params.get("resetSecret", ""), "resetSecret"),
            actor=f"api:{identifier}",
        )
        result: dict[str, t.Any] = {
            "result": "success",
            "credentialId": credential.credential_id,
            "clientIdentifier": credential.identifier,
        }
        if secret is not None:
            result["clientSecret"] = secret
        return result

    def delete_oauth_credential(self, params: t.Mapping[str, str], identifier: str) -> dict[str, t.Any]:
        """``DeleteOAuthCredential``."""
        credential = self.oauth_credentials.delete(params.get("credentialId"), actor=f"api:{identifier}")
        return {"result": "success", "credentialId": credential.credential_id}

    def end_sso_sessions(self, params: t.Mapping[str, str], identifier: str) -> dict[str, t.Any]:
        """``EndSsoSessions`` (this product's own action): end every
        session of ``client_id`` (e.g. after closing the account), of
        ``user_id`` (e.g. after removing the user or a password change), or
        of both, at once, and the links minted for them so far."""
        client_id = parse_id(params.get("client_id"), "client_id")
        user_id = parse_id(params.get("user_id"), "user_id")
        if client_id is None and user_id is None:
            raise APIError("A valid client_id or user_id is required")
        self.sessions.end_sessions(client_id=client_id, user_id=user_id, actor=f"api:{identifier}")
        ended = {
            name: value
            for name, value in (("client_id", client_id), ("user_id", user_id))
            if value is not None
        }
        return {"result": "success", **ended}


def read_parameters(request: Request) -> dict[str, str]:
    """The request's parameters, as PHP's request variables: the query
    string's and the body's, the body winning a clash. A secret in the query
    string, or a parameter twice in one place, is a :class:`MalformedRequest`."""
    query, body = request.args, request.form
    secrets_in_query = sorted(SECRET_PARAMETERS & set(query))
    if secrets_in_query:
        raise MalformedRequest(
            f"Send {secrets_in_query[0]} in the request body, not the query string:"
            " query strings end up in access logs"
        )
    for source in (query, body):
        for name, values in source.lists():
            if len(values) > 1:
                raise MalformedRequest(f"Parameter {name[:64]} given more than once")
    return {**query.to_dict(), **body.to_dict()}


def _credentials(params: t.Mapping[str, str]) -> tuple[str, str]:
    """``identifier`` and ``secret``, or the same pair in ``username`` and
    ``password``; both pairs at once would leave one unchecked."""
    legacy = "username" in params or "password" in params
    if legacy and ("identifier" in params or "secret" in params):
        raise MalformedRequest("Send identifier and secret, or username and password, not both")
    if legacy:
        return params.get("username", ""), params.get("password", "")
    return params.get("identifier", ""), params.get("secret", "")


def _flag(value: str, name: str) -> bool:
    """A strict boolean (absent is false): a typo is an error, not a silent
    "false"."""
    try:
        return bool(value.strip()) and parse_bool(value)
    except ValueError:
        raise MalformedRequest(f"{name} must be true or false") from None
