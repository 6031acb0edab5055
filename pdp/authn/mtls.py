"""mTLS peers: the `source.principal` Envoy derives from a verified client certificate."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pdp.errors import AuthnError
from pdp.model import EntityRef

MAX_PEER_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class MtlsConfig:
    """Peers become `principal_type::"<peer>"`; with `trust_domains`, only SPIFFE ids from them."""

    principal_type: str
    trust_domains: tuple[str, ...] = ()

    def principal(self, peer: str) -> EntityRef:
        """The principal for a peer id; AuthnError when its trust domain is not accepted."""
        if len(peer) > MAX_PEER_LENGTH or any(ord(c) < 0x20 for c in peer):
            raise AuthnError("untrusted_peer", "mTLS peer id is malformed")
        if self.trust_domains and trust_domain(peer) not in self.trust_domains:
            raise AuthnError("untrusted_peer", "mTLS peer is not in a trusted SPIFFE trust domain")
        return EntityRef(self.principal_type, peer)


def trust_domain(peer: str) -> str | None:
    """The trust domain of a SPIFFE id (`spiffe://<domain>/...`), else None."""
    parts = urlsplit(peer)
    if parts.scheme != "spiffe" or not parts.netloc:
        return None
    return parts.netloc
