"""
Token endpoint
==============

:class:`TokenEndpoint` answers ``POST /oauth/token.php`` with the
``single_sign_on`` grant (RFC 6749 section 5): a client authenticates with a
credential set and receives a token for the set's account, within the set's
scopes.

.. code-block:: console

    $ curl -s -u "$CLIENT_ID:$CLIENT_SECRET" https://portal.example.com/oauth/token.php \\
        -d grant_type=single_sign_on -d scope="clientarea:sso clientarea:invoices"
    {"access_token":"…","token_type":"Bearer","expires_in":60,"scope":"clientarea:sso clientarea:invoices",
     "redirect_url":"https://portal.example.com/oauth/singlesignon.php?access_token=…"}

Client authentication is HTTP Basic (identifier and secret form-urlencoded
inside Base64, RFC 6749 section 2.3.1) or ``client_id``/``client_secret`` in
the body; never the query string. A client using Basic may also send its own ``client_id``
in the body (RFC 6749 section 2.3.1, as requests-oauthlib does); a different
one, or a ``client_secret`` there too, is refused. Control panels of the Application Links
kind post ``subscriber_unique_id`` and ``token`` instead, with ``scope``,
``module_type`` and ``module`` in the link's query string; those are mapped
to the same grant, and ``module_type``/``module`` are carried over to
``redirect_url``. A request uses one of the three methods, never two (RFC
6749 section 2.3): with two, one would be checked and the other, perhaps
wrong, ignored.

Every input is checked before a token is minted, so a refused request stores
and audits nothing.

Errors are RFC 6749 section 5.2 JSON (``{"error": …, "error_description": …}``):
``invalid_request`` (400), ``invalid_client`` (401, with ``WWW-Authenticate:
Basic`` when Basic was used), ``unauthorized_client``, ``invalid_grant``
(the account is Closed or has single sign-on switched off),
``invalid_scope``, ``unsupported_grant_type`` (400); 405 for anything but
POST, 413 (``invalid_request``) for a body over 16 KiB, 429 with
``Retry-After`` after too many failed authentications, 503 when a store is
down.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
import typing as t
from urllib.parse import unquote_plus, urlencode

from werkzeug.exceptions import HTTPException

from ..audit import audit, unavailable
from ..destinations import CUSTOM_REDIRECT, SSO_SCOPE
from ..exceptions import APIError
from ..issuer import MintRequest, TokenIssuer
from ..metrics import NO_METRICS, Metrics
from ..oauth import IDENTIFIER_PATTERN, SINGLE_SIGN_ON, CredentialChanged, CredentialManager, OAuthCredential
from ..ratelimit import AuthFailures, remote_address
from ..responses import Answer, json_response
from .bodies import FORM_ENCODED, FormPost

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from werkzeug.datastructures import MultiDict

#: Query-string parameters a link URL may carry (Application Links).
LINK_PARAMETERS = frozenset({"scope", "module_type", "module"})

#: The shape of ``module_type`` and ``module``, which are carried over to
#: ``redirect_url``.
LINK_VALUE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class OAuthError(Exception):
    """An RFC 6749 error response."""

    def __init__(
        self, error: str, description: str, status: int = 400, *, headers: t.Mapping[str, str] | None = None
    ):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})

    def response(self) -> Answer:
        return json_response(
            {"error": self.error, "error_description": self.description}, self.status, headers=self.headers
        )


class TokenEndpoint:
    """The WSGI application behind the token path.

    :param issuer: mints the tokens.
    :param oauth_credentials: authenticates clients (their credential sets).
    :param auth_failures: limits failed client authentications.
    :param trusted_proxies: proxies in front that append to
        ``X-Forwarded-For``; see :func:`~sso_middleware.ratelimit.remote_address`.
    :param metrics: told of every token minted (channel ``oauth`` or
        ``application_link``) and every failed client authentication.
    """

    #: Largest request body accepted, in bytes.
    max_content_length = 16 * 1024

    def __init__(
        self,
        issuer: TokenIssuer,
        oauth_credentials: CredentialManager,
        *,
        auth_failures: AuthFailures,
        trusted_proxies: int = 0,
        metrics: Metrics = NO_METRICS,
    ):
        self.issuer = issuer
        self.oauth_credentials = oauth_credentials
        self.auth_failures = auth_failures
        self.trusted_proxies = trusted_proxies
        self.metrics = metrics

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.respond(environ)(environ, start_response)

    def respond(self, environ: WSGIEnvironment) -> Answer:
        """Answer one request; never raises."""
        if environ.get("REQUEST_METHOD") != "POST":
            return OAuthError(
                "invalid_request",
                "The token endpoint accepts POST requests only",
                405,
                headers={"Allow": "POST"},
            ).response()
        try:
            return self.grant(FormPost(environ, self.max_content_length))
        except OAuthError as e:
            return e.response()
        except HTTPException as e:
            return OAuthError("invalid_request", e.description or e.name, e.code or 400).response()
        except UnicodeError:
            return OAuthError("invalid_request", "Parameters must be UTF-8").response()
        except Exception as e:
            unavailable("Token endpoint", e)
            return OAuthError("temporarily_unavailable", "Service temporarily unavailable", 503).response()

    def grant(self, request: FormPost) -> Answer:
        """Check the request, authenticate the client and mint a token; raise
        :class:`OAuthError`. Minting comes last: a refused request leaves no
        token and no ``issued`` record."""
        if request.mimetype != FORM_ENCODED:
            raise OAuthError(
                "invalid_request", "Send the parameters form-encoded (application/x-www-form-urlencoded)"
            )
        query, form = request.args, request.form
        unexpected = set(query) - LINK_PARAMETERS
        if unexpected:
            raise OAuthError(
                "invalid_request",
                f"Parameter {sorted(unexpected)[0][:64]} is not accepted in the query string",
            )
        for params in (query, form):
            for name, values in params.lists():
                if len(values) > 1 or (name in query and name in form):
                    raise OAuthError("invalid_request", f"Parameter {name[:64]} given more than once")
        extra = {k: query[k] for k in ("module_type", "module") if k in query}
        if not all(LINK_VALUE.fullmatch(v) for v in extra.values()):
            raise OAuthError("invalid_request", "module_type and module must be short names")
        link = "subscriber_unique_id" in form or "token" in form
        grant_type = form.get("grant_type", SINGLE_SIGN_ON if link else None)
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type != SINGLE_SIGN_ON:
            raise OAuthError("unsupported_grant_type", f"Only {SINGLE_SIGN_ON} is supported")
        try:
            return self.mint(request, link, extra, cached=True)
        except CredentialChanged:
            # the set changed since this process last read it: once more, from the store
            return self.mint(request, link, extra, cached=False)

    def mint(self, request: FormPost, link: bool, extra: dict[str, str], *, cached: bool) -> Answer:
        """Authenticate the client, check the set's account and scope, and
        mint. With ``cached``, the set may come from this process's copy,
        which storing the token confirms in the same step (one round trip);
        raises :class:`CredentialChanged` if the copy is out of date."""
        query, form = request.args, request.form
        credential, copy = self.authenticate(request, form, link, cached=cached)
        if (
            self.oauth_credentials.user_store.owner_of("service", t.cast(int, credential.service_id))
            != credential.client_id
        ):
            # the set follows its service: moved to another account, or gone
            raise OAuthError("invalid_grant", "Service ID not associated with valid Client.")
        scope = form.get("scope", query.get("scope", ""))
        destination = self.destination(scope, credential)
        service_id: str | int | None = form.get("service_id") or None
        if (
            service_id is None
            and destination in self.issuer.destinations
            and "service_id" in self.issuer.destinations.inputs(destination)
        ):
            service_id = credential.service_id
        try:
            minting = MintRequest(
                client_id=credential.client_id,
                destination=destination,
                service_id=service_id,
                domain_id=form.get("domain_id") or None,
            )
            add = None
            if copy is not None:
                add = functools.partial(
                    self.oauth_credentials.add_token_if_current,
                    credential.identifier,
                    copy,
                    self.issuer.token_store,
                )
            token = self.issuer.issue(minting, actor=f"oauth:{credential.identifier}", add=add)
        except APIError as e:
            error = (
                "invalid_grant" if e.message.startswith("SSO authentication blocked") else "invalid_request"
            )
            raise OAuthError(error, e.message) from None
        self.metrics.minted("application_link" if link else "oauth")
        redirect_url = self.issuer.redirect_url(token)
        if extra:
            redirect_url += "&" + urlencode(extra)
        return json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.issuer.ttl,
                "scope": " ".join([SSO_SCOPE, destination] if destination else [SSO_SCOPE]),
                "redirect_url": redirect_url,
            }
        )

    def authenticate(
        self, request: FormPost, form: MultiDict[str, str], link: bool, *, cached: bool = False
    ) -> tuple[OAuthCredential, bytes | None]:
        """Return the authenticated credential set, counting failures, and
        the unconfirmed copy of its record it was checked against, if
        ``cached`` and this process had one."""
        basic = request.authorization
        challenge = {"WWW-Authenticate": 'Basic realm="sso"'} if basic else {}
        in_body = "client_id" in form or "client_secret" in form
        if basic:
            identifier, secret = _parse_basic(basic, challenge)
            if in_body and "client_secret" not in form:
                # RFC 6749 section 2.3.1: a client using Basic may also send
                # its own client_id (requests-oauthlib does); it must be the same.
                if form["client_id"] != identifier:
                    raise OAuthError(
                        "invalid_request", "client_id in the body names another client than HTTP Basic"
                    )
                in_body = False
        methods = [
            name
            for name, used in (
                ("HTTP Basic", bool(basic)),
                ("client_id/client_secret", in_body),
                ("subscriber_unique_id/token", link),
            )
            if used
        ]
        if len(methods) > 1:
            raise OAuthError(
                "invalid_request", "Use one client authentication method, not " + " and ".join(methods)
            )
        if link:
            identifier, secret = form.get("subscriber_unique_id", ""), form.get("token", "")
        elif not basic:
            identifier, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not identifier:
            raise OAuthError("invalid_client", "Client authentication required", 401, headers=challenge)
        if cached:
            found = self.oauth_credentials.authenticate_cached(identifier, secret)
        else:
            fresh = self.oauth_credentials.authenticate(identifier, secret)
            found = None if fresh is None else (fresh, None)
        if found is None:
            address = remote_address(request.environ, self.trusted_proxies)
            # Identifiers are 32 hex digits; anything else may be a pasted secret.
            shown = identifier if IDENTIFIER_PATTERN.fullmatch(identifier) else "(malformed)"
            audit(
                logging.WARNING,
                "client_auth_failed",
                "OAuth client authentication failed for %s",
                shown,
                identifier=shown,
                address=address,
            )
            self.metrics.auth_failed("token")
            wait = self.auth_failures.failed(identifier, address)
            if wait:
                raise self._limited(wait, identifier)
            raise OAuthError("invalid_client", "Client authentication failed", 401, headers=challenge)
        credential, copy = found
        if credential.grant_type != SINGLE_SIGN_ON:
            raise OAuthError("unauthorized_client", f"This client may not use {SINGLE_SIGN_ON}")
        return credential, copy

    def destination(self, scope: str, credential: OAuthCredential) -> str:
        """The one destination named in ``scope`` (``""`` for home), which
        must carry the marker scope and stay within the credential's."""
        names = scope.split()
        if SSO_SCOPE not in names:
            raise OAuthError("invalid_scope", f"scope must include {SSO_SCOPE}")
        destinations = [n for n in dict.fromkeys(names) if n != SSO_SCOPE]
        if len(destinations) > 1:
            raise OAuthError("invalid_scope", "scope names more than one destination")
        for name in destinations:
            if name == CUSTOM_REDIRECT or name not in credential.scopes:
                raise OAuthError("invalid_scope", f'The requested scope "{name[:100]}" is invalid.')
        return destinations[0] if destinations else ""

    @staticmethod
    def _limited(wait: int, identifier: str) -> OAuthError:
        shown = identifier if IDENTIFIER_PATTERN.fullmatch(identifier) else "(malformed)"
        audit(
            logging.WARNING,
            "rate_limited",
            "OAuth client %s rate-limited for %d s",
            shown,
            wait,
            identifier=shown,
        )
        return OAuthError(
            "too_many_requests",
            "Too many failed attempts; retry later",
            429,
            headers={"Retry-After": str(wait)},
        )


def _parse_basic(header: str, challenge: dict[str, str]) -> tuple[str, str]:
    """Decode ``Basic base64(urlencode(id):urlencode(secret))``."""
    scheme, _, encoded = header.partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        identifier, sep, secret = decoded.partition(":")
        if not sep:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            "invalid_client",
            "Malformed Basic credentials",
            401,
            headers=challenge or {"WWW-Authenticate": 'Basic realm="sso"'},
        ) from None
    return unquote_plus(identifier), unquote_plus(secret)
