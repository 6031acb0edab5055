"""A key lookup that counts its calls: how tests see whether a token was verified or cached."""

from __future__ import annotations

import jwt as pyjwt

from pdp.authn.identity import key_lookup
from pdp.authn.jwks import Keyring
from pdp.authn.jwt import Issuer


class CountingLookup:
    """The real key lookup, counting how often verification asks it for a key."""

    def __init__(self, keyring: Keyring | None = None) -> None:
        self._lookup = key_lookup(keyring or Keyring())
        self.calls = 0

    def __call__(self, issuer: Issuer, kid: str | None, algorithm: str) -> pyjwt.PyJWK | None:
        self.calls += 1
        return self._lookup(issuer, kid, algorithm)
