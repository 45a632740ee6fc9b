"""`bearer`: static tokens for service accounts, configured as SHA-256 digests per name."""

from __future__ import annotations

import hmac

from .hashing import token_digest
from .identity import Identity
from .roles import RoleMap


class BearerProvider:
    name = "bearer"

    def __init__(self, tokens: dict[str, str], roles: RoleMap):
        self._digests = list(tokens.items())
        self._roles = roles

    def authenticate(self, token: str) -> Identity | None:
        """None for a token that is not one of ours: an OIDC or KBase provider may know it."""
        digest = token_digest(token).encode()
        found = None
        for name, expected in self._digests:  # no early exit: the time does not depend on which
            if hmac.compare_digest(digest, expected.encode()):
                found = name
        return None if found is None else self._roles.identity(found)
