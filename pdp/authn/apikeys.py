"""API keys from a request header, stored only as SHA-256 hashes and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from pdp.errors import AuthnError
from pdp.model import EntityRef

_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")
MAX_KEY_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One known key: a name for logs, the SHA-256 digest, and the principal it stands for."""

    name: str
    digest: bytes
    principal: EntityRef


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    """The header keys arrive in, and the known keys."""

    header: str
    keys: tuple[ApiKey, ...]

    def lookup(self, presented: str) -> ApiKey:
        """The key matching `presented`; AuthnError when none does. Every digest is compared."""
        if not presented or len(presented) > MAX_KEY_LENGTH:
            raise AuthnError("unknown_api_key", "API key is not known")
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest) and found is None:
                found = key
        if found is None:
            raise AuthnError("unknown_api_key", "API key is not known")
        return found


def parse_hash(text: str) -> bytes:
    """`sha256:<64 lowercase hex>` -> the digest bytes; ValueError otherwise."""
    match = _HASH.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError("must be 'sha256:' followed by 64 lowercase hex digits")
    return bytes.fromhex(match.group(1))


def hash_key(key: str) -> str:
    """The routes.yaml form of a raw key: `sha256:<hex>` (what `pdp` stores, never the key)."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
