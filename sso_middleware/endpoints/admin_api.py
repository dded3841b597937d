"""
Admin API
=========

:class:`AdminAPI` answers ``POST /includes/api.php``, the reference system's
API, for the actions this middleware implements:

.. code-block:: console

    $ curl -s https://portal.example.com/includes/api.php \\
        -d action=CreateSsoToken -d identifier=ID -d secret=SECRET \\
        -d responsetype=json -d client_id=1 -d destination=clientarea:invoices
    {"result":"success","access_token":"...","redirect_url":"https://portal.example.com/oauth/singlesignon.php?access_token=..."}

Every answer is JSON in the API's shape, ``{"result": "error", "message":
...}`` for errors, with an HTTP status that says what kind: 400 bad input,
403 bad credentials, 405 not a POST, 413 too large, 415 not form-encoded,
503 the token store is down.
"""

from __future__ import annotations

import logging
import typing as t

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from ..audit import audit, logger
from ..credentials import APICredentials
from ..exceptions import BadRequest, StoreUnavailable
from ..issuer import TokenIssuer
from ..responses import json_response

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
    """

    #: Largest request body accepted, in bytes.
    max_content_length = 64 * 1024

    def __init__(self, issuer: TokenIssuer, credentials: APICredentials):
        self.issuer = issuer
        self.credentials = credentials
        #: action name → handler; extend in a subclass to add actions.
        self.actions: dict[str, t.Callable[[MultiDict[str, str], str], Response]] = {
            "CreateSsoToken": self.create_sso_token,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.respond(environ)(environ, start_response)

    def respond(self, environ: WSGIEnvironment) -> Response:
        """Answer one request; never raises."""
        if environ.get("REQUEST_METHOD") != "POST":
            return _error("The API accepts POST requests only", 405, Allow="POST")
        request = Request(environ)
        request.max_content_length = self.max_content_length
        if request.mimetype not in _FORM_TYPES:
            return _error("Send the parameters form-encoded (application/x-www-form-urlencoded)", 415)
        try:
            form = request.form
            self._reject_duplicates(form)
            identifier = form.get("identifier", "")
            if not self.credentials.verify(identifier, form.get("secret", "")):
                audit(logging.WARNING, "api_auth_failed",
                      "Admin API authentication failed for identifier %r", identifier[:64],
                      identifier=identifier[:64])
                return _error("Authentication Failed", 403)
            if form.get("responsetype", "json") != "json":
                raise BadRequest("Only responsetype=json is supported")
            handler = self.actions.get(form.get("action", ""))
            if handler is None:
                raise BadRequest("Unknown action; supported: " + ", ".join(self.actions))
            return handler(form, identifier)
        except BadRequest as e:
            return _error(e.message, 400)
        except StoreUnavailable as e:
            audit(logging.ERROR, "store_unavailable", "Admin API unavailable: %s", e, error=str(e))
            return _error("Service temporarily unavailable", 503)
        except HTTPException as e:
            return _error(e.description or e.name, e.code or 400)
        except Exception:
            logger.exception("Admin API failed unexpectedly", extra={"sso_event": "error"})
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
