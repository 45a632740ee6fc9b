"""Authentication at the HTTP edge: the effective spec's security schemes (from auth.providers),
Connexion security handlers that ask the providers, the caller of a request, and the 401, 403
and 503 answers.

Connexion tries the schemes of `security` in order and takes the first that recognizes the
credential; a provider answers None for a credential that is not its own, so a bearer token
reaches OIDC or KBase only when no earlier provider knows it.
"""

from __future__ import annotations

import base64
import copy
import math
from functools import partial

import anyio
from connexion.exceptions import ProblemException
from connexion.security import NO_VALUE, BasicSecurityHandler, BearerSecurityHandler

from ..auth.identity import AuthUnavailable, CredentialsRejected, Identity, RoleMissing
from ..auth.throttle import TooManyFailures
from . import errors

PROVIDER_KEY = "x-tes-cts-provider"
IDENTITY_KEY = "tes_cts_identity"
REALM = "tes-cts"
# How each provider's credential is sent, for challenges and for messages.
_SENT_AS = {
    "basic": ("Basic", "a user name and password"),
    "bearer": ("Bearer", "a service account token"),
    "oidc": ("Bearer", "an OIDC access token"),
    "kbase": ("Bearer", "a KBase token"),
}


class AuthProblem(ProblemException):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(status=status, title=title, detail=detail, headers=headers)


def effective_spec(spec: dict, providers: dict) -> dict:
    """The spec with only the enabled providers' schemes, required (any one of them) by every
    operation that does not opt out (`security: []`, as service-info does)."""
    spec = copy.deepcopy(spec)
    components = spec.setdefault("components", {})
    declared = components.pop("securitySchemes", {})
    if providers:
        components["securitySchemes"] = {name: {**declared[name], PROVIDER_KEY: name} for name in providers}
        spec["security"] = [{name: []} for name in providers]
    return spec


def security_map(providers: dict) -> dict:
    return {"basic": partial(_BasicHandler, providers), "bearer": partial(_BearerHandler, providers)}


class _ProviderResolver:
    """Finds a scheme's check by its provider, instead of by a function name in the spec."""

    def __init__(self, providers: dict):
        self._providers = providers

    def _resolve_func(self, security_scheme):
        return _check_with(self._providers[security_scheme[PROVIDER_KEY]])


class _BasicHandler(_ProviderResolver, BasicSecurityHandler):
    def _resolve_func(self, security_scheme):
        check = super()._resolve_func(security_scheme)

        async def recoded(user, password, request):
            return await check(_as_utf8(user), _as_utf8(password), request.client.host if request.client else "")

        return recoded


class _BearerHandler(_ProviderResolver, BearerSecurityHandler):
    pass


def _check_with(provider):
    async def check(*credentials):
        # Providers block (scrypt, HTTP to the issuer or KBase): keep them off the event loop.
        identity = await anyio.to_thread.run_sync(_authenticate, provider, *credentials)
        return NO_VALUE if identity is None else {"sub": identity.owner, IDENTITY_KEY: identity}

    return check


def _authenticate(provider, *credentials) -> Identity | None:
    """The provider's answer, its refusals as the AuthProblem the API answers with."""
    try:
        return provider.authenticate(*credentials)
    except CredentialsRejected as exc:
        raise AuthProblem(401, "Unauthorized", f"{provider.name}: {exc}") from None
    except TooManyFailures as exc:
        raise AuthProblem(429, "Too Many Requests", f"{provider.name}: {exc}",
                          headers={"Retry-After": str(math.ceil(exc.retry_after_s))}) from None
    except AuthUnavailable as exc:
        raise AuthProblem(503, "Service Unavailable", f"{exc}; retry later") from None


def identify(providers: dict, anonymous: Identity | None, authorization: str | None, address: str = "") -> Identity:
    """The caller of a request outside the spec (the dashboard's pages), found as Connexion's
    security check finds it for an operation: the same providers in the same order. Raises
    AuthProblem; a 401 carries the API's challenge, so that a browser asks for Basic credentials."""
    if not providers:
        return anonymous
    challenge, how = _challenge(list(providers))
    try:
        identity = _identity_in(providers, authorization or "", address)
    except AuthProblem as exc:
        if exc.status != 401:
            raise
        detail = exc.detail
    else:
        if identity is not None:
            return identity
        detail = ("the credentials sent were not accepted" if authorization else "this page needs credentials") + f"; send {how}"
    raise AuthProblem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def _identity_in(providers: dict, authorization: str, address: str) -> Identity | None:
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() == "basic" and "basic" in providers and credential:
        try:
            user, colon, password = base64.b64decode(credential, validate=True).decode("latin-1").partition(":")
        except ValueError:
            return None
        return _authenticate(providers["basic"], _as_utf8(user), _as_utf8(password), address) if colon else None
    if scheme.lower() == "bearer" and credential:
        for provider in (p for name, p in providers.items() if name != "basic"):
            identity = _authenticate(provider, credential)
            if identity is not None:
                return identity
    return None


def caller(token_info: dict | None, anonymous: Identity | None) -> Identity:
    """The identity Connexion's security check found, or the local user when there is none."""
    if token_info:
        return token_info[IDENTITY_KEY]
    if anonymous is None:
        raise RuntimeError("an operation without security was called while authentication is on")
    return anonymous


def auth_failed_handler(provider_names):
    """401s (Connexion's for no or malformed credentials, ours for rejected ones) with a
    challenge naming the accepted schemes; 503s when a provider could not decide."""
    challenge, how = _challenge(provider_names)

    def handle(request, exc: ProblemException):
        if exc.status != 401:
            return errors.error_response(exc.status, exc.title, exc.detail, headers=exc.headers)
        if isinstance(exc, AuthProblem):
            detail = exc.detail
        elif request.headers.get("authorization"):
            detail = f"the credentials sent were not accepted; send {how}"
        else:
            detail = f"this call needs credentials; send {how}"
        return errors.error_response(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})

    return handle


def _challenge(provider_names) -> tuple[str, str]:
    """The WWW-Authenticate value naming the accepted schemes, and how to send credentials."""
    schemes = list(dict.fromkeys(_SENT_AS[name][0] for name in provider_names))
    # RFC 7617: charset tells Basic clients to send UTF-8.
    challenge = ", ".join(f'{scheme} realm="{REALM}"' + (', charset="UTF-8"' if scheme == "Basic" else "")
                          for scheme in schemes)
    how = " or ".join(
        f"Authorization: {scheme} with " + _either([_SENT_AS[n][1] for n in provider_names if _SENT_AS[n][0] == scheme])
        for scheme in schemes)
    return challenge, how


def role_missing(_request, exc: RoleMissing):
    return errors.error_response(403, "Forbidden", str(exc), [{"field": "role", "reason": f"missing role '{exc.role}'"}])


def _as_utf8(text: str) -> str:
    """Connexion decodes Basic credentials as latin-1; curl and browsers send UTF-8, requests
    (py-tes) latin-1. Read the bytes as UTF-8 when they are."""
    raw = text.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return text


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
