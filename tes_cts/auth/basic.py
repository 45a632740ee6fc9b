"""`basic`: user names and scrypt password hashes from settings (or a secret file)."""

from __future__ import annotations

from .cache import TtlCache, credential_key
from .hashing import hash_password, verify_password
from .identity import CredentialsRejected, Identity
from .roles import RoleMap
from .throttle import FailureThrottle

# Clients send the password with every request (Snakemake polls each task); scrypt costs tens
# of milliseconds, so a verified password is remembered for a while. Settings only change at a
# restart, which empties the cache.
VERIFIED_TTL_S = 300


class BasicProvider:
    name = "basic"

    def __init__(self, users: dict[str, str], roles: RoleMap):
        self._users = dict(users)
        self._roles = roles
        self._verified: TtlCache[Identity] = TtlCache(VERIFIED_TTL_S)
        # Checked for unknown names, so that they take as long to refuse as a wrong password.
        self._dummy_hash = hash_password("")
        self._failures = FailureThrottle()

    def authenticate(self, user: str, password: str, address: str = "") -> Identity:
        """The user's identity; CredentialsRejected, or TooManyFailures (the password is then
        not checked) while `address` (the client's) has failed too often."""
        key = credential_key(user, password)
        identity = self._verified.get(key)
        if identity is not None:
            return identity
        self._failures.check(user, address)
        known = user in self._users
        if not verify_password(password, self._users.get(user, self._dummy_hash)) or not known:
            self._failures.failed(user, address)
            raise CredentialsRejected("wrong user name or password")
        self._failures.succeeded(user, address)
        identity = self._roles.identity(user)
        self._verified.put(key, identity)
        return identity
