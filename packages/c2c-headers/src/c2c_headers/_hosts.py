"""The one trusted-hosts parser: `ForwardedHeadersMiddleware` and c2c-config's ``proxy_headers`` setting.

An entry is ``*`` (anyone), an IP address, a network in CIDR notation, or a literal (a unix socket
path, ``unix:/run/app.sock``, ``testclient``...). Something that looks like an address or a network
but does not parse is an error, never a literal that would silently match nothing.

Scoped IPv6 addresses (``fe80::1%eth0``) are addresses: `ipaddress` keeps the zone and compares it,
so the entry matches the peer ``fe80::1%eth0`` (what an ASGI server reports for a link-local
client) and neither ``fe80::1`` nor ``fe80::1%eth1``. A zone on a network (``fe80::%eth0/64``)
is refused: `ipaddress` ignores it when testing membership, so the entry would trust that network
on every interface, not what it says.

A peer on a unix socket has no address (ASGI servers such as ``uvicorn --uds`` report
``scope["client"]`` as None, and do not say which socket): it is trusted when the entries hold
``*`` or any socket literal (``unix:``, ``unix:/run/app.sock`` or an absolute path ``/run/app.sock``).
A literal is otherwise compared as a whole string: ``unix:`` matches the ``X-Forwarded-For`` entry
``unix:`` that nginx writes for a client on a unix socket, ``unix:/run/app.sock`` that exact entry.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final

BAD_TRUSTED_HOST: Final = "trusted host {entry!r} is not a valid {kind}: {reason}"
BAD_TRUSTED_LITERAL: Final = "trusted host {entry!r} is not a valid entry (empty or with spaces/control characters)"

# Something meant as an IP or a network: only digits and dots (IPv4), or at least two colons
# between letters, digits and dots (IPv6), then an optional %zone (IPv6) and an optional /prefix.
# Anything else is a literal (a unix socket path, "unix:/run/app.sock", "testclient"...).
_IP_LIKE: Final = re.compile(r"[0-9.]+(/.*)?|[0-9A-Za-z.%]*:[0-9A-Za-z.%]*:[0-9A-Za-z:.]*(%[^/\s]*)?(/.*)?")
# What may follow the "/" of a network: a prefix length, or an IPv4 netmask (255.0.0.0).
_PREFIX: Final = re.compile(r"[0-9.]+")
_MAX_CACHE: Final = 4096


def _parse_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address, _, prefix = entry.partition("/")
    if "%" in address:
        reason = "a network cannot carry a zone (%...): it would match on every interface; write the network alone"
        raise ValueError(BAD_TRUSTED_HOST.format(entry=entry, kind="network", reason=reason))
    if not _PREFIX.fullmatch(prefix):
        reason = "after '/' comes a prefix length (0-32 for IPv4, 0-128 for IPv6) or an IPv4 netmask"
        raise ValueError(BAD_TRUSTED_HOST.format(entry=entry, kind="network", reason=reason))
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError as error:
        raise ValueError(BAD_TRUSTED_HOST.format(entry=entry, kind="network", reason=error)) from None


def _parse_address(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(entry)
    except ValueError as error:
        raise ValueError(BAD_TRUSTED_HOST.format(entry=entry, kind="IP address", reason=error)) from None


class TrustedHosts:
    """The proxies whose forwarded headers are believed: IPs, networks, literals, or ``*``.

    ``"127.0.0.1, 10.0.0.0/8, ::1, /tmp/app.sock"`` or a list of such strings (each item may
    itself be a comma list). ``host in trusted`` reads as prose. An IPv4-mapped IPv6 peer
    (``::ffff:10.0.0.1``) matches its IPv4 entries too.
    """

    def __init__(self, trusted_hosts: str | Iterable[str]) -> None:
        """Parse every entry; raise ValueError for an entry that looks like an IP but does not parse."""
        items = [trusted_hosts] if isinstance(trusted_hosts, str) else list(trusted_hosts)
        entries = [entry.strip() for item in items for entry in str(item).split(",")]
        self.always = False
        self.addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.literals: set[str] = set()
        for entry in entries:
            if not entry:
                continue
            if entry == "*":
                self.always = True
            elif _IP_LIKE.fullmatch(entry):
                if "/" in entry:
                    self.networks.append(_parse_network(entry))
                else:
                    self.addresses.add(_parse_address(entry))
            elif any(char.isspace() or ord(char) < 32 for char in entry):
                raise ValueError(BAD_TRUSTED_LITERAL.format(entry=entry))
            else:
                self.literals.add(entry)
        self.cache: dict[str, bool] = {}
        """Lookups already made (bounded), for hot paths that skip the method call."""
        self.sockets = self.always or any(literal.startswith(("unix:", "/")) for literal in self.literals)
        """Whether a peer on a unix socket (no address: ``scope["client"]`` is None) is trusted."""

    def __contains__(self, host: object) -> bool:
        """Whether ``host`` (an address string from the scope or a header) is trusted."""
        if self.always:
            return True
        if not isinstance(host, str):
            return False
        known = self.cache.get(host)
        if known is None:
            known = self._lookup(host)
            if len(self.cache) >= _MAX_CACHE:  # values come from headers: keep the cache bounded
                self.cache.clear()
            self.cache[host] = known
        return known

    def _lookup(self, host: str) -> bool:
        if host in self.literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            candidate in self.addresses or any(candidate in network for network in self.networks)
            for candidate in candidates
        )


def parse_trusted_hosts(trusted_hosts: str | Iterable[str]) -> TrustedHosts:
    """Parse trusted proxy hosts: the one parser of `ForwardedHeadersMiddleware` and c2c-config's setting.

    Args:
        trusted_hosts: a comma-separated string or a list of strings (each item may itself be a
            comma list; entries are stripped, empty ones skipped). An entry is ``*`` (anyone), an
            IPv4 or IPv6 address (``fe80::1%eth0``: a scoped address matches that zone only), a
            network (``10.0.0.0/8``, host bits allowed, no zone), or a literal without spaces
            compared as a string (``/tmp/app.sock``, ``unix:/run/app.sock``, ``testclient``).

    Returns:
        The matcher: ``"10.1.2.3" in parse_trusted_hosts("10.0.0.0/8")`` is true.

    Raises:
        ValueError: an entry looks like an address or a network but does not parse (``10.0.0.300``,
            ``10.0.0.0/abc``, ``fe80::%eth0/64``), or a literal holds spaces or control characters;
            the message names the entry and why.
    """
    return TrustedHosts(trusted_hosts)
