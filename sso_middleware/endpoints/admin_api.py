"""
Admin API
=========

:class:`AdminAPI` answers ``POST /includes/api.php``, the reference system's
API, for the actions this middleware implements: ``CreateSsoToken`` and the
OAuth credential set actions ``CreateOAuthCredential``,
``ListOAuthCredentials``, ``UpdateOAuthCredential`` and
``DeleteOAuthCredential``, and ``RevokeSsoSessions``, which ends every
session of an account or a user.

.. code-block:: console

    $ curl -s https://portal.example.com/includes/api.php \\
        -d action=CreateSsoToken -d identifier=ID -d secret=SECRET \\
        -d responsetype=json -d client_id=1 -d destination=clientarea:invoices
    {"result":"success","access_token":"...","redirect_url":"https://portal.example.com/oauth/singlesignon.php?access_token=..."}

Every answer is JSON in the API's shape, ``{"result": "error", "message":
...}`` for errors, with an HTTP status that says what kind: 400 bad input,
403 bad credentials, 405 not a POST, 413 too large, 415 not form-encoded,
429 too many failed authentications (with ``Retry-After``), 503 a store is
down.
"""

from __future__ import annotations

import logging
import typing as t

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ..audit import audit, unavailable
from ..credentials import APICredentials
from ..exceptions import APIError, BadRequest
from ..issuer import TokenIssuer, parse_id
from ..oauth import CredentialManager
from ..ratelimit import RateLimiter, remote_address
from ..sessions import SessionManager
from ..responses import json_response
from .bodies import BoundedRequest

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from werkzeug.datastructures import MultiDict

#: Inputs of ``CreateSsoToken``, passed on to :meth:`TokenIssuer.create_sso_token`.
CREATE_SSO_TOKEN_INPUTS = (
    "client_id", "user_id", "destination", "service_id", "domain_id", "sso_redirect_path",
)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _error(message: str, status: int, **headers: str) -> Response:
    return json_response({"result": "error", "message": message}, status, headers=headers)


class AdminAPI:
    """The WSGI application behind the API path.

    :param issuer: mints the tokens.
    :param credentials: who may call the API.
    :param oauth: manages OAuth credential sets.
    :param sessions: for ``RevokeSsoSessions``.
    :param client_limiter: failed authentications per API identifier.
    :param address_limiter: failed authentications per remote address.
    :param trusted_proxies: see :func:`~sso_middleware.ratelimit.remote_address`.
    """

    #: Largest request body accepted, in bytes.
    max_content_length = 64 * 1024

    def __init__(self, issuer: TokenIssuer, credentials: APICredentials, oauth: CredentialManager,
                 sessions: SessionManager, *, client_limiter: RateLimiter,
                 address_limiter: RateLimiter, trusted_proxies: int = 0):
        self.issuer = issuer
        self.credentials = credentials
        self.oauth = oauth
        self.sessions = sessions
        self.client_limiter = client_limiter
        self.address_limiter = address_limiter
        self.trusted_proxies = trusted_proxies
        #: action name → handler; extend in a subclass to add actions.
        self.actions: dict[str, t.Callable[[MultiDict[str, str], str], Response]] = {
            "CreateSsoToken": self.create_sso_token,
            "CreateOAuthCredential": self.create_oauth_credential,
            "ListOAuthCredentials": self.list_oauth_credentials,
            "UpdateOAuthCredential": self.update_oauth_credential,
            "DeleteOAuthCredential": self.delete_oauth_credential,
            "RevokeSsoSessions": self.revoke_sso_sessions,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.respond(environ)(environ, start_response)

    def respond(self, environ: WSGIEnvironment) -> Response:
        """Answer one request; never raises."""
        if environ.get("REQUEST_METHOD") != "POST":
            return _error("The API accepts POST requests only", 405, Allow="POST")
        request = BoundedRequest(environ, self.max_content_length)
        if request.mimetype not in _FORM_TYPES:
            return _error("Send the parameters form-encoded (application/x-www-form-urlencoded)", 415)
        try:
            form = request.form
            self._reject_duplicates(form)
            identifier = form.get("identifier", "")
            if not self.credentials.verify(identifier, form.get("secret", "")):
                # A right secret always passes (no one can lock a client out
                # by failing in its name); failures are counted and limited.
                address = remote_address(environ, self.trusted_proxies)
                # An unknown identifier may be a secret pasted in the wrong field.
                shown = identifier if self.credentials.knows(identifier) else "(unknown)"
                audit(logging.WARNING, "api_auth_failed",
                      "Admin API authentication failed for identifier %s", shown,
                      identifier=shown, address=address)
                wait = (self.client_limiter.retry_after(identifier)
                        or self.address_limiter.retry_after(address)
                        or max(self.client_limiter.failed(identifier) or 0,
                               self.address_limiter.failed(address) or 0))
                if wait:
                    return _error("Too many failed attempts; retry later", 429,
                                  **{"Retry-After": str(wait)})
                return _error("Authentication Failed", 403)
            if form.get("responsetype", "json") != "json":
                raise BadRequest("Only responsetype=json is supported")
            handler = self.actions.get(form.get("action", ""))
            if handler is None:
                raise BadRequest("Unknown action; supported: " + ", ".join(self.actions))
            return handler(form, identifier)
        except (BadRequest, APIError) as e:
            return _error(e.message, 400)
        except HTTPException as e:
            return _error(e.description or e.name, e.code or 400)
        except UnicodeError:
            return _error("Parameters must be UTF-8", 400)
        except Exception as e:
            unavailable("Admin API", e)
            return _error("Service temporarily unavailable", 503)

    @staticmethod
    def _reject_duplicates(form: MultiDict[str, str]) -> None:
        for name, values in form.lists():
            if len(values) > 1:
                raise BadRequest(f"Parameter {name[:64]} given more than once")

    def create_sso_token(self, form: MultiDict[str, str], identifier: str) -> Response:
        """``CreateSsoToken``: 200 with the token, or 400 with the reason."""
        inputs = {name: form[name] for name in CREATE_SSO_TOKEN_INPUTS if name in form}
        result = self.issuer.create_sso_token(**inputs, actor=f"api:{identifier}")
        return json_response(result, 200 if result["result"] == "success" else 400)

    def create_oauth_credential(self, form: MultiDict[str, str], identifier: str) -> Response:
        """``CreateOAuthCredential``: the only time the secret is shown."""
        credential, secret = self.oauth.create(
            grant_type=form.get("grantType"), scope=form.get("scope", ""),
            service_id=form.get("serviceId"), name=form.get("name", ""),
            description=form.get("description", ""), actor=f"api:{identifier}",
        )
        return json_response({"result": "success", "credentialId": credential.credential_id,
                              "clientIdentifier": credential.identifier, "clientSecret": secret})

    def list_oauth_credentials(self, form: MultiDict[str, str], identifier: str) -> Response:
        """``ListOAuthCredentials``: every set, never a secret or its hash."""
        clients = [c.describe() for c in self.oauth.list()]
        return json_response({"result": "success", "totalresults": len(clients), "clients": clients})

    def update_oauth_credential(self, form: MultiDict[str, str], identifier: str) -> Response:
        """``UpdateOAuthCredential``; with ``resetSecret`` the new secret is
        returned and the old one stops working at once."""
        credential, secret = self.oauth.update(
            form.get("credentialId"), name=form.get("name"), description=form.get("description"),
            scope=form.get("scope"), reset_secret=_flag(form.get("resetSecret", ""), "resetSecret"),
            actor=f"api:{identifier}",
        )
        result: dict[str, t.Any] = {"result": "success", "credentialId": credential.credential_id,
                                    "clientIdentifier": credential.identifier}
        if secret is not None:
            result["clientSecret"] = secret
        return json_response(result)

    def delete_oauth_credential(self, form: MultiDict[str, str], identifier: str) -> Response:
        """``DeleteOAuthCredential``."""
        credential = self.oauth.delete(form.get("credentialId"), actor=f"api:{identifier}")
        return json_response({"result": "success", "credentialId": credential.credential_id})


    def revoke_sso_sessions(self, form: MultiDict[str, str], identifier: str) -> Response:
        """``RevokeSsoSessions`` (this product's own action): end every
        session of ``client_id`` (e.g. after closing the account), of
        ``user_id`` (e.g. after removing the user or a password change), or
        of both, at once, and the links minted for them so far."""
        client_id = parse_id(form.get("client_id"), "client_id")
        user_id = parse_id(form.get("user_id"), "user_id")
        if client_id is None and user_id is None:
            raise APIError("A valid client_id or user_id is required")
        self.sessions.end_sessions(client_id=client_id, user_id=user_id, actor=f"api:{identifier}")
        ended = {name: value for name, value in (("client_id", client_id), ("user_id", user_id))
                 if value is not None}
        return json_response({"result": "success", **ended})


def _flag(value: str, name: str) -> bool:
    """A strict boolean: a typo is an error, not a silent "false"."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise BadRequest(f"{name} must be true or false")
