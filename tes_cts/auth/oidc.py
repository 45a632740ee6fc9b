"""`oidc`: JWT access tokens of one issuer, verified against its published keys: signature,
`iss`, `aud`, `exp` (and `nbf`, `iat` when present)."""

from __future__ import annotations

import jwt

from .identity import CredentialsRejected, Identity
from .jwks import JwksKeys
from .roles import RoleMap

LEEWAY_S = 30  # clock skew between the issuer and us
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

_REASONS = {  # fixed words: PyJWT's own messages may quote parts of the token
    jwt.ExpiredSignatureError: "the token has expired",
    jwt.InvalidAudienceError: "the token is not meant for this service (aud)",
    jwt.InvalidIssuerError: "the token comes from another issuer (iss)",
    jwt.ImmatureSignatureError: "the token is not valid yet (nbf or iat)",
    jwt.MissingRequiredClaimError: "the token lacks a required claim (exp, iss and aud are required)",
    jwt.InvalidSignatureError: "the token's signature does not verify",
}


class OidcProvider:
    name = "oidc"

    def __init__(self, keys: JwksKeys, audience: str, algorithms: list[str], user_claim: str,
                 roles_claim: str, roles: RoleMap):
        self._keys = keys
        self._audience = audience
        self._algorithms = list(algorithms)
        self._user_claim = user_claim
        self._roles_claim = roles_claim
        self._roles = roles

    def authenticate(self, token: str) -> Identity | None:
        """None for a token that is not a JWT of our issuer: another provider may know it."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return None
        if unverified.get("iss") != self._keys.issuer:
            return None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise CredentialsRejected(f"the token's algorithm {algorithm!r} is not accepted (auth.oidc.algorithms)")
        jwk = self._keys.get(header.get("kid"))
        if jwk is None:
            raise CredentialsRejected("the token is signed with a key the issuer does not publish")
        claims = self._verified_claims(token, jwk, algorithm)
        name = claims.get(self._user_claim)
        if not isinstance(name, str) or not name:
            raise CredentialsRejected(f"the token has no user name in the claim {self._user_claim!r} (auth.oidc.user_claim)")
        return self._roles.identity(name, external_roles(claims, self._roles_claim))

    def _verified_claims(self, token: str, jwk: dict, algorithm: str) -> dict:
        if jwk.get("alg", algorithm) != algorithm:
            raise CredentialsRejected("the token's algorithm does not match its signing key")
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithm).key
            return jwt.decode(token, key=key, algorithms=[algorithm], audience=self._audience,
                              issuer=self._keys.issuer, leeway=LEEWAY_S,
                              options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            reason = next((words for kind, words in _REASONS.items() if isinstance(exc, kind)), "the token is not valid")
            raise CredentialsRejected(reason) from None


def external_roles(claims: dict, path: str) -> list[str]:
    """The roles or groups at a dotted claim path (`groups`, `realm_access.roles`): a list of
    strings or one space-separated string."""
    value: object = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []
