"""
Destinations
============

A token names where the user lands by a *scope* (``clientarea:invoices``), never
by a URL. :class:`Destinations` maps each scope to a path of this deployment,
so a redirect can only ever go to a page of the wrapped app: there is no open
redirect to guard against, only a table to configure.

The table ships with the reference system's defaults (:data:`WHMCS_DESTINATIONS`);
a deployment maps scopes to its own routes:

.. code-block:: python

    Destinations({"clientarea:invoices": "/billing", "clientarea:product_details": "/services/{service_id}"},
                 home="/account")

A path template may use ``{service_id}``, ``{domain_id}`` or
``{sso_redirect_path}``; a scope whose template uses an input requires it.
"""

from __future__ import annotations

import re
import string
import typing as t

from .exceptions import APIError, ConfigurationError

#: The marker scope every single sign-on token carries; not a destination.
SSO_SCOPE = "clientarea:sso"
#: The scope whose path is given by the caller (admin API only).
CUSTOM_REDIRECT = "sso:custom_redirect"

#: The reference system's scopes and the paths it sends them to.
WHMCS_DESTINATIONS: t.Mapping[str, str] = {
    "clientarea:profile": "/clientarea.php?action=details",
    "clientarea:billing_info": "/clientarea.php?action=creditcard",
    "clientarea:emails": "/clientarea.php?action=emails",
    "clientarea:announcements": "/index.php?rp=/announcements",
    "clientarea:downloads": "/index.php?rp=/download",
    "clientarea:knowledgebase": "/knowledgebase.php",
    "clientarea:network_status": "/serverstatus.php",
    "clientarea:services": "/clientarea.php?action=services",
    "clientarea:product_details": "/clientarea.php?action=productdetails&id={service_id}",
    "clientarea:domains": "/clientarea.php?action=domains",
    "clientarea:domain_details": "/clientarea.php?action=domaindetails&id={domain_id}",
    "clientarea:invoices": "/clientarea.php?action=invoices",
    "clientarea:tickets": "/supporttickets.php",
    "clientarea:submit_ticket": "/submitticket.php",
    "clientarea:shopping_cart": "/cart.php",
    "clientarea:shopping_cart_addons": "/cart.php?gid=addons",
    "clientarea:shopping_cart_domain_register": "/cart.php?a=add&domain=register",
    "clientarea:shopping_cart_domain_transfer": "/cart.php?a=add&domain=transfer",
    "clientarea:upgrade": "/upgrade.php?type=package&id={service_id}",
    "clientarea:upgrades": "/upgrade.php?type=package&id={service_id}",
    CUSTOM_REDIRECT: "/{sso_redirect_path}",
}

#: The reference system's client area home, where a token without scope lands.
WHMCS_HOME = "/clientarea.php"

#: Inputs a template may use.
INPUTS = frozenset({"service_id", "domain_id", "sso_redirect_path"})

#: Longest accepted ``sso_redirect_path``.
MAX_PATH_LENGTH = 2048

# Printable ASCII without backslash and space; percent-escapes stay as they are.
_PATH_CHARS = re.compile(r"[!-\[\]-~]*")
# "." and ".." segments, also percent-encoded, which browsers decode (URL
# Standard); and percent-encoded control characters (CR, LF, NUL, ...).
_FORBIDDEN = re.compile(r"(^|/)(\.|%2e){1,2}(/|$|\?|#)|%[01][0-9a-f]|%7f", re.IGNORECASE)


def is_safe_path(path: str) -> bool:
    """Whether ``path`` is an absolute path of this deployment.

    It must start with exactly one ``/``, hold only printable ASCII without
    spaces or backslashes (browsers read ``\\`` as ``/``, so ``/\\evil.com``
    would leave the site), no percent-encoded control character, and no
    ``.``/``..`` segment, plain or percent-encoded (which could climb out of a
    deployment under a path prefix).
    """
    return (
        path.startswith("/")
        and not path.startswith("//")
        and len(path) <= MAX_PATH_LENGTH
        and _PATH_CHARS.fullmatch(path) is not None
        and _FORBIDDEN.search(path) is None
    )


class Destinations:
    """The scope → path table of one deployment.

    :param overrides: scopes mapped to path templates of this app; merged over
        :data:`WHMCS_DESTINATIONS`. Map a scope to ``None`` to disable it.
    :param home: the path for a token without a destination.
    :raises ConfigurationError: for a template that is not a safe path or
        uses an unknown input.
    """

    def __init__(
        self,
        overrides: t.Mapping[str, str | None] | None = None,
        *,
        home: str = WHMCS_HOME,
    ):
        table: dict[str, str | None] = {**WHMCS_DESTINATIONS, **(overrides or {})}
        self.home = home
        #: scope → (template, inputs it needs)
        self.table: dict[str, tuple[str, frozenset[str]]] = {}
        for scope, template in table.items():
            if template is not None:
                self.table[scope] = (template, self._check(scope, template))
        if self._check("home", home):
            raise ConfigurationError(f"home {home!r}: the home path takes no inputs")

    @staticmethod
    def _check(scope: str, template: str) -> frozenset[str]:
        try:
            parsed = list(string.Formatter().parse(template))
            if any(spec or conversion for _, f, spec, conversion in parsed if f is not None):
                raise ValueError("a format spec or conversion")
        except ValueError as e:
            raise ConfigurationError(
                f"destination {scope!r}: {template!r} is not a path template ({e}); write inputs"
                " as {service_id}, and a literal brace as {{ or }}"
            ) from None
        fields = frozenset(f for _, f, _, _ in parsed if f is not None)
        unknown = fields - INPUTS
        if unknown:
            raise ConfigurationError(
                f"destination {scope!r}: unknown input {sorted(unknown)[0]!r} in {template!r};"
                f" a template may use {', '.join(sorted(INPUTS))}"
            )
        sample = template.format(service_id=1, domain_id=1, sso_redirect_path="x")
        if scope == SSO_SCOPE or not is_safe_path(sample):
            raise ConfigurationError(
                f"destination {scope!r}: {template!r} must be a path of this app"
                " starting with a single '/' (and clientarea:sso is not a destination)"
            )
        return fields

    def inputs(self, scope: str) -> frozenset[str]:
        """The inputs ``scope``'s path needs (``service_id``, ...)."""
        return self.table[scope][1]

    def __contains__(self, scope: str) -> bool:
        return scope in self.table

    def resolve(
        self,
        scope: str | None,
        *,
        service_id: int | None = None,
        domain_id: int | None = None,
        sso_redirect_path: str | None = None,
    ) -> str:
        """Return the path for ``scope`` with its inputs filled in.

        Inputs are expected already parsed (ids as positive integers). Raises
        :class:`APIError` with a message for the caller: ``Invalid
        destination``, a missing input, or an unsafe ``sso_redirect_path``.
        """
        if not scope:
            return self.home
        entry = self.table.get(scope)
        if entry is None:
            raise APIError("Invalid destination")
        template, needs = entry
        values: dict[str, object] = {}
        for name, value in (
            ("service_id", service_id),
            ("domain_id", domain_id),
            ("sso_redirect_path", sso_redirect_path),
        ):
            if name in needs:
                if value is None or value == "":
                    raise APIError(f"A {name} is required for destination {scope}")
                values[name] = value
        if "sso_redirect_path" in values:
            values["sso_redirect_path"] = str(values["sso_redirect_path"]).removeprefix("/")
        path = template.format(**values)
        if not is_safe_path(path):
            raise APIError("Invalid sso_redirect_path")
        return path
