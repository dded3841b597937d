"""
Address allow-lists
===================

:class:`AddressAllowList` holds the networks the admin API may be called
from, as the reference system's "API IP Access Restriction" does. The
address checked is the one :func:`~sso_middleware.ratelimit.remote_address`
finds, so proxies declared with ``trusted_proxies`` are looked through and
an ``X-Forwarded-For`` written by the client is not.

.. code-block:: python

    >>> allowed = AddressAllowList(["203.0.113.0/24", "2001:db8::1"])
    >>> "203.0.113.7" in allowed, "198.51.100.1" in allowed
    (True, False)
"""

from __future__ import annotations

import ipaddress
import typing as t

from .exceptions import ConfigurationError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """The IP address in ``text``, or ``None``. An IPv4 address mapped into
    IPv6 (``::ffff:203.0.113.7``, as dual-stack servers report IPv4
    clients) is the IPv4 address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


#: Where IPv6 keeps IPv4 addresses (``::ffff:203.0.113.7``).
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(network: Network) -> Network:
    """An IPv4-mapped network as the IPv4 network it maps, since callers'
    addresses are compared in that form."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
    return network


class AddressAllowList:
    """Networks in CIDR notation (a bare address is a network of one), as
    an iterable or one string separated by spaces or commas.

    :raises ConfigurationError: for an empty list (it would refuse every
        caller; leave the setting out to allow any address), or a network
        that does not parse or has host bits set (``10.0.0.5/8`` is a typo of
        either ``10.0.0.5`` or ``10.0.0.0/8``; which is not ours to guess).
    """

    def __init__(self, networks: t.Iterable[str] | str):
        if isinstance(networks, str):
            networks = networks.replace(",", " ").split()
        elif not isinstance(networks, t.Iterable):
            raise ConfigurationError(f"api_allowed_ips must be networks; got {type(networks).__name__}")
        parsed: list[Network] = []
        for network in networks:
            try:
                parsed.append(_unmapped(ipaddress.ip_network(str(network).strip())))
            except ValueError as e:
                raise ConfigurationError(f"api_allowed_ips: {e}") from None
        if not parsed:
            raise ConfigurationError(
                "api_allowed_ips lists no network; list at least one, or leave it out to allow any address"
            )
        self.networks = tuple(parsed)

    def __repr__(self) -> str:
        return f"AddressAllowList({[str(n) for n in self.networks]!r})"

    def __contains__(self, address: object) -> bool:
        parsed = parse_address(address) if isinstance(address, str) else None
        return parsed is not None and any(parsed in network for network in self.networks)
