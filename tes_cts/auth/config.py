"""Auth settings: checked at start (every message names its setting, never a secret) and
turned into providers."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..settings_error import InvalidSettings
from .basic import BasicProvider
from .bearer import BearerProvider
from .hashing import is_password_hash, is_token_digest
from .jwks import JwksKeys
from .kbase import KBaseProvider
from .oidc import ALGORITHMS, OidcProvider
from .roles import RoleMap

PROVIDERS = ("none", "basic", "bearer", "oidc", "kbase")
# The order credentials are tried in, whatever the order of auth.providers: local checks
# first, so a static token is never sent to a remote service.
PRECEDENCE = ("basic", "bearer", "oidc", "kbase")
# provider -> (its table of name = secret, what each secret must be)
_CREDENTIALS = {
    "basic": ("users", is_password_hash, "a password hash made by `tes-cts hash-password`"),
    "bearer": ("tokens", is_token_digest, "a token digest made by `tes-cts hash-password --token`"),
}


def check_auth_settings(settings) -> None:
    auth = settings.auth
    _check_providers(list(auth.providers))
    _check_admins(list(auth.admins))
    enabled = set(auth.providers)
    for provider in enabled & set(_CREDENTIALS):
        credentials(auth, provider)
    if "oidc" in enabled:
        _check_oidc(auth.oidc)
    if "kbase" in enabled:
        _check_url("auth.kbase.url", auth.kbase.url)
    for provider in ("oidc", "kbase"):
        for kind in ("admin_roles", "user_roles"):
            _check_strings(f"auth.{provider}.{kind}", list(auth[provider][kind]))


def build_providers(settings) -> dict:
    """The enabled providers, in PRECEDENCE order; empty for `none`."""
    auth = settings.auth
    admins = frozenset(auth.admins)
    builders = {
        "basic": lambda: BasicProvider(credentials(auth, "basic"), RoleMap("basic", admins)),
        "bearer": lambda: BearerProvider(credentials(auth, "bearer"), RoleMap("bearer", admins)),
        "oidc": lambda: OidcProvider(
            JwksKeys(auth.oidc.issuer, auth.oidc.jwks_url, auth.timeout_s), auth.oidc.audience,
            list(auth.oidc.algorithms), auth.oidc.user_claim, auth.oidc.roles_claim,
            _external_roles("oidc", auth.oidc, admins, f"values of the token claim {auth.oidc.roles_claim!r}")),
        "kbase": lambda: KBaseProvider(
            auth.kbase.url, auth.timeout_s, auth.kbase.cache_s,
            _external_roles("kbase", auth.kbase, admins, "KBase custom roles")),
    }
    return {name: builders[name]() for name in PRECEDENCE if name in auth.providers}


def _external_roles(provider: str, section, admins: frozenset[str], label: str) -> RoleMap:
    return RoleMap(provider, admins, frozenset(section.admin_roles), frozenset(section.user_roles), label)


def _check_providers(providers: list) -> None:
    if not providers:
        raise InvalidSettings("auth.providers must list at least one provider (\"none\" for no authentication)")
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown:
        raise InvalidSettings(f"auth.providers: unknown provider(s) {unknown}; known: {', '.join(PROVIDERS)}")
    if len(set(providers)) != len(providers):
        raise InvalidSettings(f"auth.providers lists a provider twice: {providers}")
    if "none" in providers and len(providers) > 1:
        raise InvalidSettings("auth.providers: \"none\" cannot be combined with other providers (a caller whose "
                              "credentials fail would become the anonymous local user); list only the providers that "
                              "check credentials")


def _check_admins(admins: list) -> None:
    for admin in admins:
        provider, _, name = admin.partition(":") if isinstance(admin, str) else ("", "", "")
        if provider not in PRECEDENCE or not name:
            raise InvalidSettings(f"auth.admins entries are owners written <provider>:<user name> with a provider "
                                  f"among {', '.join(PRECEDENCE)} (e.g. \"kbase:alice\"), got {admin!r}")


def _check_oidc(oidc) -> None:
    _check_url("auth.oidc.issuer", oidc.issuer)
    if not oidc.audience:
        raise InvalidSettings("auth.oidc.audience is required with the oidc provider: the `aud` value tokens for this service carry")
    if oidc.jwks_url:
        _check_url("auth.oidc.jwks_url", oidc.jwks_url)
    bad = [a for a in oidc.algorithms if a not in ALGORITHMS]
    if bad or not oidc.algorithms:
        raise InvalidSettings(f"auth.oidc.algorithms must list signature algorithms among {', '.join(ALGORITHMS)}, got {list(oidc.algorithms)}")


def _check_url(name: str, value: str) -> None:
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidSettings(f"{name} must be an http(s) URL, got {value!r}")


def _check_strings(name: str, values: list) -> None:
    if not all(isinstance(v, str) and v for v in values):
        raise InvalidSettings(f"{name} must be a list of non-empty strings")


def credentials(auth, provider: str) -> dict[str, str]:
    """A provider's table merged with its secret file's `name:secret` lines; a secret that is
    not valid is refused by its name alone."""
    table, valid, what = _CREDENTIALS[provider]
    section, setting = auth[provider], f"auth.{provider}.{table}"
    file_setting, path = setting + "_file", section[table + "_file"]
    entries = {str(name): secret for name, secret in dict(section[table]).items()}
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise InvalidSettings(f"{file_setting}: cannot read {path}: {exc.strerror}")
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, colon, secret = line.strip().partition(":")
            if not colon or name in entries:
                raise InvalidSettings(f"{file_setting}: line {number} of {path} " + (f"names {name!r} again" if colon else "is not NAME:SECRET"))
            entries[name] = secret
    if not entries:
        raise InvalidSettings(f"{setting} (or {file_setting}) must name at least one entry when the {provider} provider is enabled")
    for name, secret in entries.items():
        if not name or ":" in name:
            raise InvalidSettings(f"{setting}: {name!r} is not a usable name (it must be non-empty, without a colon)")
        if not valid(secret):
            raise InvalidSettings(f"{setting}: the value for {name!r} is not {what}")
    return entries
