"""The OIDC issuer's signing keys: discovered, fetched, cached, and fetched again when a token
names a key the cache does not hold (the issuer rotated its keys)."""

from __future__ import annotations

import threading
import time
from typing import Callable

import jwt
import requests

from .identity import AuthUnavailable

KEYS_TTL_S = 3600
# After a refetch that still lacked the key a token named, tokens naming unknown keys are
# refused without fetching for this long: random key ids must not make us hammer the issuer.
UNKNOWN_KEY_QUIET_S = 10


class JwksKeys:
    def __init__(self, issuer: str, jwks_url: str, timeout_s: float, clock: Callable[[], float] = time.monotonic):
        self.issuer = issuer
        self._jwks_url = jwks_url  # empty: discovered from the issuer
        self._timeout_s = timeout_s
        self._clock = clock
        self._keys: list[dict] | None = None
        self._expires = 0.0
        self._quiet_until = 0.0
        self._lock = threading.Lock()

    def get(self, kid: str | None) -> dict | None:
        """The JWK with this key id (with no id: the only key), or None."""
        with self._lock:  # one fetch at a time; concurrent callers use its result
            now = self._clock()
            fetched = self._keys is None or now >= self._expires
            if fetched:
                self._refresh(now)
            key = self._find(kid)
            if key is None and not fetched and now >= self._quiet_until:
                self._refresh(now)
                fetched, key = True, self._find(kid)
            if key is None and fetched:
                self._quiet_until = now + UNKNOWN_KEY_QUIET_S
            return key

    def _find(self, kid: str | None) -> dict | None:
        if kid is None:
            return self._keys[0] if len(self._keys) == 1 else None
        return next((key for key in self._keys if key.get("kid") == kid), None)

    def _refresh(self, now: float) -> None:
        if not self._jwks_url:
            self._jwks_url = self._discover()
        document = self._fetch(self._jwks_url, "signing keys (JWKS)")
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise AuthUnavailable(f"the OIDC signing keys at {self._jwks_url} are not a JWK set")
        self._keys = [key for key in keys if _usable(key)]
        self._expires = now + KEYS_TTL_S

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._fetch(url, "discovery document")
        if not isinstance(document, dict) or document.get("issuer") != self.issuer or not document.get("jwks_uri"):
            raise AuthUnavailable(f"the OIDC discovery document at {url} does not describe the issuer {self.issuer} "
                                  "with a jwks_uri (set auth.oidc.jwks_url to skip discovery)")
        return document["jwks_uri"]

    def _fetch(self, url: str, what: str):
        try:
            response = requests.get(url, timeout=self._timeout_s)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            raise AuthUnavailable(f"the OIDC issuer's {what} at {url} could not be read ({type(exc).__name__})") from None


def _usable(key) -> bool:
    """Signature keys that PyJWT can load; never a symmetric key, whatever the set holds."""
    if not isinstance(key, dict) or key.get("kty") == "oct" or key.get("use", "sig") != "sig":
        return False
    try:
        jwt.PyJWK(key)
    except jwt.PyJWKError:
        return False
    return True
