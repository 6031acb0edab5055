"""Which peers may tell pdp about another request (X-Forwarded-*, X-Original-*): CIDRs, parsed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
LOOPBACK = ("127.0.0.0/8", "::1/128")


def parse_cidrs(text: str) -> tuple[Network, ...]:
    """`CIDR[,CIDR...]` (a bare address is a /32 or /128); ValueError naming the bad one."""
    networks = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)") from None
    if not networks:
        raise ValueError("expected CIDR[,CIDR...], e.g. 127.0.0.1/32,10.1.0.0/16")
    return tuple(networks)


def address(text: str | None) -> Address | None:
    """An IP address from text (IPv4-mapped IPv6 made IPv4, a zone dropped); None if not one."""
    if not text:
        return None
    try:
        found = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


class TrustedProxies:
    """Peers whose forwarding headers pdp believes: these networks, and Unix socket peers."""

    def __init__(self, networks: Iterable[Network] | None = None) -> None:
        self.networks: tuple[Network, ...] = tuple(
            networks if networks is not None else parse_cidrs(",".join(LOOPBACK))
        )

    def trusts(self, peer: str | None) -> bool:
        """Whether the connection's peer (None: a Unix socket) is a trusted proxy."""
        if peer is None:
            return True
        found = address(peer)
        return found is not None and any(found in network for network in self.networks)

    def client(self, forwarded_for: Sequence[str], peer: str | None) -> str:
        """The client's address: the right-most X-Forwarded-For entry that is not a trusted
        proxy (entries left of it are the client's own claims), else the left-most valid
        entry, else the peer. Entries that are not IP addresses are skipped."""
        entries = [e for value in forwarded_for for e in value.split(",")]
        found = [a for a in (address(entry) for entry in entries) if a is not None]
        for candidate in reversed(found):
            if not any(candidate in network for network in self.networks):
                return str(candidate)
        if found:
            return str(found[0])
        peer_address = address(peer)
        return str(peer_address) if peer_address is not None else ""
