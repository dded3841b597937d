"""
Client for trusted systems
==========================

What a trusted system (a billing system, a control panel) imports to sign
its users in: it asks the deployment for a token and gets back the URL to
redirect the user's browser to. Standard library only.

.. code-block:: python

    from sso_middleware.client import AdminClient, OAuthClient, SSOClientError

    admin = AdminClient("https://portal.example.com", "billing", os.environ["SSO_API_SECRET"])
    url = admin.sso_url(client_id=42, destination="clientarea:invoices")

    oauth = OAuthClient("https://portal.example.com", client_id, client_secret)
    url = oauth.sso_url("clientarea:product_details", service_id=101)

    try:
        ...
    except SSOClientError as e:
        log.warning("no single sign-on: %s (HTTP %s)", e.message, e.status)
"""

from __future__ import annotations

import base64
import json
import typing as t
import urllib.error
import urllib.request
from urllib.parse import quote_plus, urlencode

from .urls import check_path, check_system_url


class SSOClientError(Exception):
    """The deployment refused or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        #: The deployment's message (the reference system's text for the API).
        self.message = message
        #: The HTTP status, ``None`` when the deployment was not reached.
        self.status = status
        #: The OAuth error code (``invalid_client``, ...), for the token endpoint.
        self.error = error
        #: Seconds to wait before retrying, after a 429 or 503.
        self.retry_after = retry_after


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: urllib would send the credentials (the
    ``Authorization`` header) on to whatever host it names. The endpoints
    answer JSON, never a redirect, so one means ``system_url`` is wrong."""

    def redirect_request(self, *args: t.Any, **kwargs: t.Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def _post(
    url: str, data: t.Mapping[str, t.Any], headers: t.Mapping[str, str], timeout: float
) -> dict[str, t.Any]:
    """POST a form and return the JSON object answered. Every failure is an
    :class:`SSOClientError`, as callers are promised: whatever a network or
    a server does (unreachable, cut short, not JSON, nested past Python's
    limits), nothing else escapes."""
    body = urlencode({k: v for k, v in data.items() if v is not None}).encode()
    request = urllib.request.Request(
        url, body, headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            answer = json.load(response)
            status = response.status
    except urllib.error.HTTPError as e:
        with e:
            raise _refusal(url, e) from None
    except Exception as e:  # the URL holds no credentials (check_system_url), so the cause may show
        cause = getattr(e, "reason", None) or e
        raise SSOClientError(f"no usable answer from {url}: {type(e).__name__}: {cause}") from None
    if not isinstance(answer, dict):
        raise SSOClientError(
            f"{url} answered with something other than a JSON object: check the system_url", status=status
        )
    return answer


def _refusal(url: str, error: urllib.error.HTTPError) -> SSOClientError:
    """The :class:`SSOClientError` for an HTTP error answer."""
    if 300 <= error.code < 400:
        return SSOClientError(
            f"{url} answered with a redirect (HTTP {error.code}), which is not followed:"
            " check the system_url",
            status=error.code,
        )
    try:
        payload = json.load(error)
    except Exception:  # no body, a body cut short, not JSON: the status still says what happened
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    retry = error.headers.get("Retry-After", "")
    return SSOClientError(
        str(payload.get("message") or payload.get("error_description") or error.reason),
        status=error.code,
        error=payload.get("error"),
        retry_after=int(retry) if retry.isascii() and retry.isdigit() and len(retry) <= 9 else None,
    )


def _redirect_url(answer: t.Mapping[str, t.Any]) -> str:
    """The answer's ``redirect_url``, or :class:`SSOClientError`: a success
    without one did not come from the deployment's endpoint."""
    url = answer.get("redirect_url")
    if isinstance(url, str):
        return url
    if answer.get("result") == "error":  # as WHMCS answers errors, with HTTP 200
        raise SSOClientError(str(answer.get("message") or "error"), status=200)
    raise SSOClientError("the answer has no redirect_url: check the system_url")


class AdminClient:
    """Calls ``CreateSsoToken`` with admin API credentials.

    :param system_url: the deployment's public base URL; one the middleware
        would refuse (credentials, a query, a fragment) raises
        :class:`~sso_middleware.exceptions.ConfigurationError`.
    :param identifier: the API identifier.
    :param secret: the API secret.
    :param api_path: the API path of the deployment.
    :param timeout: seconds to wait for the connection and for each read
        (urllib's timeout; a server that keeps sending slowly can take
        longer in all).
    """

    def __init__(
        self,
        system_url: str,
        identifier: str,
        secret: str,
        *,
        api_path: str = "/includes/api.php",
        timeout: float = 10.0,
    ):
        self.url = check_system_url(system_url, secure=False) + check_path("api_path", api_path)
        self.identifier = identifier
        self._secret = secret
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AdminClient({self.url!r}, {self.identifier!r})"

    def create_sso_token(self, **inputs: t.Any) -> dict[str, t.Any]:
        """The full ``CreateSsoToken`` response; inputs as the API names them
        (``client_id``, ``user_id``, ``destination``, ``service_id``, ...)."""
        return _post(
            self.url,
            {
                "action": "CreateSsoToken",
                "identifier": self.identifier,
                "secret": self._secret,
                "responsetype": "json",
                **inputs,
            },
            {},
            self.timeout,
        )

    def sso_url(self, **inputs: t.Any) -> str:
        """The URL to send the user's browser to."""
        return _redirect_url(self.create_sso_token(**inputs))


class OAuthClient:
    """Uses an OAuth credential set (``single_sign_on`` grant) to sign in its
    account's owner.

    :param system_url: the deployment's public base URL; one the middleware
        would refuse (credentials, a query, a fragment) raises
        :class:`~sso_middleware.exceptions.ConfigurationError`.
    :param client_id: the credential set's client identifier.
    :param client_secret: its secret; sent with HTTP Basic.
    :param token_path: the token endpoint path of the deployment.
    :param timeout: seconds to wait for the connection and for each read
        (urllib's timeout; a server that keeps sending slowly can take
        longer in all).
    """

    def __init__(
        self,
        system_url: str,
        client_id: str,
        client_secret: str,
        *,
        token_path: str = "/oauth/token.php",
        timeout: float = 10.0,
    ):
        self.url = check_system_url(system_url, secure=False) + check_path("token_path", token_path)
        self.client_id = client_id
        credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"OAuthClient({self.url!r}, {self.client_id!r})"

    def token(self, destination: str | None = None, **inputs: t.Any) -> dict[str, t.Any]:
        """The token response (``access_token``, ``expires_in``,
        ``redirect_url``, ...) for one destination scope."""
        scope = "clientarea:sso" + (f" {destination}" if destination else "")
        return _post(
            self.url,
            {"grant_type": "single_sign_on", "scope": scope, **inputs},
            {"Authorization": self._authorization},
            self.timeout,
        )

    def sso_url(self, destination: str | None = None, **inputs: t.Any) -> str:
        """The URL to send the user's browser to."""
        return _redirect_url(self.token(destination, **inputs))
