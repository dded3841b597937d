"""
Application Links from a cPanel-style panel
===========================================

How a hosting control panel signs its user in to the client area with one
click, the way WHMCS's *Application Links* do, against a deployment of
``sso_middleware``. Standard library only.

**Provisioning** (the billing system's server module, with admin API
credentials):

1. When a service is created, create one OAuth credential set for it:
   ``CreateOAuthCredential`` with ``grantType=single_sign_on``, the
   ``serviceId`` and the enabled link scopes (``clientarea:services
   clientarea:invoices ...``). The set can sign in the owner of that service's
   account only, and only to those destinations.
2. Store on the panel, per service: ``subscriber_unique_id`` (the set's
   ``clientIdentifier``), ``token`` (its ``clientSecret``, shown once) and, per
   link, the URL ``<system_url>/oauth/token.php?scope=clientarea:sso
   <scope>&module_type=server&module=cpanel``.
3. When the service is updated, rotate the secret (``UpdateOAuthCredential``
   with ``resetSecret=true``; the old one stops working at once) and store the
   new one. When the service is deleted, ``DeleteOAuthCredential``.

**A click** (the panel, with the stored fields only):

1. POST ``subscriber_unique_id``, ``token`` and ``attempt=n`` to the link URL,
   form-encoded. The secret goes in the body, never in a URL.
2. The JSON reply carries ``access_token`` and ``redirect_url`` (the
   single sign-on URL, one use, valid for 60 seconds): redirect the browser
   there. If it carries ``retry`` (or the HTTP answer ``Retry-After``), wait
   that many seconds (60 at most) and try again, 3 attempts in all.
3. When no redirect comes of it, send the browser to a plain URL (the client
   area's login) instead: the user signs in by hand.

Try it against the demo portal (client 1 owns service 101)::

    $ sso-middleware demo --port 8000      # prints the admin API identifier and secret
    $ python examples/application_links.py --system-url http://127.0.0.1:8000 \\
          --identifier demo-... --secret ...

It provisions a credential set for service 101, rotates its secret, clicks the
invoices link, deletes the set and prints the URL to open in a browser (the
token it carries was minted before the deletion and stays valid for its 60
seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing as t
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from urllib.parse import quote, urlencode, urlsplit

#: Link scopes a service gets; each becomes one link on the panel.
LINK_SCOPES = (
    "clientarea:services",
    "clientarea:product_details",
    "clientarea:invoices",
    "clientarea:tickets",
)
MAX_ATTEMPTS = 3
MAX_WAIT = 60.0


class ProvisioningError(Exception):
    """The admin API refused; the message is its own (WHMCS's text)."""


@dataclass(frozen=True)
class ServiceLinks:
    """What the panel stores for one service."""

    credential_id: int
    subscriber_unique_id: str
    token: str
    #: link scope → autologin token URL
    urls: dict[str, str]


#: A JSON reply (``{}`` when there is none) and its ``Retry-After`` header.
Reply = tuple[dict[str, t.Any], str | None]


def _post(url: str, fields: t.Mapping[str, str], timeout: float) -> Reply:
    """POST ``fields`` form-encoded and read the reply, of an HTTP error too.
    Network failures raise :class:`OSError`."""
    request = urllib.request.Request(
        url, urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body, retry_after = response.read(), response.headers.get("Retry-After")
    except urllib.error.HTTPError as e:
        with e:
            body, retry_after = e.read(), e.headers.get("Retry-After")
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    return (reply if isinstance(reply, dict) else {}), retry_after


def link_url(system_url: str, scope: str, module: str = "cpanel") -> str:
    """The autologin token URL of one link."""
    query = urlencode(
        {"scope": f"clientarea:sso {scope}", "module_type": "server", "module": module},
        safe=":",
        quote_via=quote,
    )
    return f"{system_url.rstrip('/')}/oauth/token.php?{query}"


class Provisioner:
    """The billing system's side: keeps one credential set per service.

    :param system_url: the deployment's public base URL.
    :param identifier: admin API identifier.
    :param secret: admin API secret.
    """

    def __init__(self, system_url: str, identifier: str, secret: str, *, timeout: float = 10.0):
        self.system_url = system_url.rstrip("/")
        self.identifier = identifier
        self._secret = secret
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Provisioner({self.system_url!r}, {self.identifier!r})"

    def call(self, action: str, **fields: str) -> dict[str, t.Any]:
        """One admin API action; raise :class:`ProvisioningError` on refusal."""
        body, _ = _post(
            self.system_url + "/includes/api.php",
            {
                "action": action,
                "identifier": self.identifier,
                "secret": self._secret,
                "responsetype": "json",
                **fields,
            },
            self.timeout,
        )
        if body.get("result") != "success":
            raise ProvisioningError(str(body.get("message") or "no answer from the admin API"))
        return body

    def service_created(self, service_id: int, scopes: t.Sequence[str] = LINK_SCOPES) -> ServiceLinks:
        """Create the service's credential set and its links."""
        body = self.call(
            "CreateOAuthCredential",
            grantType="single_sign_on",
            serviceId=str(service_id),
            scope=" ".join(scopes),
            name=f"Application Links for service {service_id}",
        )
        return ServiceLinks(
            body["credentialId"],
            body["clientIdentifier"],
            body["clientSecret"],
            {scope: link_url(self.system_url, scope) for scope in scopes},
        )

    def service_updated(self, links: ServiceLinks) -> ServiceLinks:
        """Rotate the secret; the old one stops working at once."""
        body = self.call("UpdateOAuthCredential", credentialId=str(links.credential_id), resetSecret="true")
        return replace(links, token=body["clientSecret"])

    def service_deleted(self, links: ServiceLinks) -> None:
        """Delete the credential set."""
        self.call("DeleteOAuthCredential", credentialId=str(links.credential_id))


def click(
    links: ServiceLinks,
    scope: str,
    fallback_url: str,
    *,
    timeout: float = 10.0,
    sleep: t.Callable[[float], None] = time.sleep,
) -> str:
    """The panel's side of one click: the URL to redirect the browser to,
    ``fallback_url`` when single sign-on does not work out."""
    url = links.urls[scope]
    origin = urlsplit(url)[:2]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        fields = {
            "subscriber_unique_id": links.subscriber_unique_id,
            "token": links.token,
            "attempt": str(attempt),
        }
        try:
            reply, retry_after = _post(url, fields, timeout)
        except OSError:
            return fallback_url
        redirect_url = reply.get("redirect_url")
        # only ever send the browser to the deployment that answered
        if isinstance(redirect_url, str) and urlsplit(redirect_url)[:2] == origin:
            return redirect_url
        retry: t.Any = reply.get("retry", retry_after)
        try:
            wait = float(retry)
        except (TypeError, ValueError):
            return fallback_url
        if attempt < MAX_ATTEMPTS:
            sleep(min(wait, MAX_WAIT) if wait >= 0 else 0.0)  # NaN waits 0
    return fallback_url


def main(argv: t.Sequence[str] | None = None) -> int:
    """Provision a service's links, rotate the secret, click one link,
    deprovision; print the URL to open."""
    parser = argparse.ArgumentParser(description="Application Links against the demo portal.")
    parser.add_argument("--system-url", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--identifier", required=True, help="admin API identifier")
    parser.add_argument("--secret", required=True, help="admin API secret")
    parser.add_argument("--service-id", type=int, default=101)
    parser.add_argument("--scope", default="clientarea:invoices", choices=LINK_SCOPES)
    args = parser.parse_args(argv)

    provisioner = Provisioner(args.system_url, args.identifier, args.secret)
    try:
        links = provisioner.service_created(args.service_id)
        links = provisioner.service_updated(links)
        url = click(links, args.scope, fallback_url=provisioner.system_url + "/clientarea.php")
        provisioner.service_deleted(links)
    except (ProvisioningError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
