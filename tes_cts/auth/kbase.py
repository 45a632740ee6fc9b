"""`kbase`: tokens checked against a KBase auth2 service (`GET /api/V2/me`), which answers with
the user name and custom roles; answers are cached for `auth.kbase.cache_s`."""

from __future__ import annotations

import requests

from .cache import TtlCache, credential_key
from .identity import AuthUnavailable, CredentialsRejected, Identity
from .roles import RoleMap


class KBaseProvider:
    name = "kbase"

    def __init__(self, url: str, timeout_s: float, cache_s: float, roles: RoleMap):
        self._me_url = url.rstrip("/") + "/api/V2/me"
        self._timeout_s = timeout_s
        self._roles = roles
        self._cache: TtlCache[Identity] = TtlCache(cache_s)

    def authenticate(self, token: str) -> Identity | None:
        if "." in token:  # a JWT (KBase tokens have no dots): never sent to KBase
            return None
        key = credential_key(token)
        identity = self._cache.get(key)
        if identity is None:
            identity = self._ask(token)
            self._cache.put(key, identity)
        return identity

    def _ask(self, token: str) -> Identity:
        try:
            response = requests.get(self._me_url, headers={"Authorization": token, "Accept": "application/json"},
                                    timeout=self._timeout_s)
        except requests.RequestException as exc:
            raise AuthUnavailable(f"the KBase auth service at {self._me_url} could not be reached ({type(exc).__name__})") from None
        if response.status_code == 401:
            raise CredentialsRejected("the KBase auth service does not accept this token (invalid or expired)")
        try:
            response.raise_for_status()
            me = response.json()
            user, custom_roles = me["user"], me.get("customroles") or []
            if not isinstance(user, str) or not user or not isinstance(custom_roles, list):
                raise ValueError("unexpected answer")
        except (requests.RequestException, ValueError, TypeError, KeyError):
            raise AuthUnavailable(f"the KBase auth service at {self._me_url} answered with HTTP {response.status_code}, "
                                  "not a KBase user record") from None
        return self._roles.identity(user, [role for role in custom_roles if isinstance(role, str)])
