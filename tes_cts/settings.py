"""Settings: dynaconf over `settings.toml` and `TES_CTS_*` environment variables.

Every setting has its default and type in `VALIDATORS`, so the service runs with no settings file
at all (a setting that a worker-side dataclass also needs, such as `containers.*`, takes its
default from that dataclass, so each default is written once); `settings.toml` only holds what differs per environment (`TES_CTS_ENV` chooses one).
Nested names use `__` in the environment: `TES_CTS_SERVER__BIND=0.0.0.0:8080`.

This module checks what it can see of a setting on its own (type, range, form); a package that
gives settings their meaning checks the rest itself (`auth.config.check_auth_settings`), and the
composition root runs those checks after `load_settings` (`wiring.load_checked_settings`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dynaconf import Dynaconf, ValidationError, Validator

from .auth.hashing import is_token_digest
from .durations import parse_duration
from .jobfiles import ContainerSettings
from .model.limits import SIZE_LIMITS, SizeLimits
from .settings_error import InvalidSettings, SettingsError
from .storage.config import S3StoreConfig, StorageConfig

ENV_PREFIX = "TES_CTS"
SETTINGS_FILE_VARIABLE = "TES_CTS_SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = Path(__file__).resolve().parent.parent / "settings.toml"
MIN_CONTENT_BYTES = 128 * 1024
DATABASE_KINDS = ("sqlite", "mongodb")
BACKEND_KINDS = ("local", "htcondor")
CONTAINER_RUNTIMES = ("docker", "podman")
VERIFY_INPUTS_MODES = ("dispatch", "create")
# Keys a named store under s3.stores may set; the rest come from the top-level s3 section.
S3_STORE_KEYS = ("endpoint_url", "region", "access_key_id", "secret_access_key", "secret_access_key_file",
                 "verify_tls", "buckets", "key_prefixes")


def _total_ram_gb() -> float:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return round(pages * page_size / 2**30, 1)


def _positive(name: str) -> Validator:
    return Validator(name, is_type_of=int, gte=1, messages={"operations": _RANGE_MESSAGE})


_RANGE_MESSAGE = "setting {name} must be {operation} {op_value}, but it is {value}"


def _secret_table(name: str, what: str) -> Validator:
    # The message must not quote the value: it may be a password hash or a token digest.
    return Validator(name, default={}, is_type_of=dict,
                     messages={"operations": f"setting {name} must be a table of {what}"})


def _typed(name: str, default, kind: type = str, **checks) -> Validator:
    return Validator(name, default=default, is_type_of=kind, messages={"operations": _RANGE_MESSAGE}, **checks)


def _origins_ok(origins: list) -> bool:
    return all(o == "*" or (isinstance(o, str) and re.fullmatch(r"https?://[^/\s]+", o)) for o in origins)


AUTH_VALIDATORS = [
    _typed("auth.providers", ["none"], list),
    _typed("auth.admins", [], list),
    Validator("auth.timeout_s", default=10),
    Validator("auth.timeout_s", is_type_of=(int, float), gt=0, messages={"operations": _RANGE_MESSAGE}),
    _secret_table("auth.basic.users", "user name = password hash (tes-cts hash-password)"),
    _typed("auth.basic.users_file", ""),
    _secret_table("auth.bearer.tokens", "account name = token digest (tes-cts hash-password --token)"),
    _typed("auth.bearer.tokens_file", ""),
    _typed("auth.oidc.issuer", ""),
    _typed("auth.oidc.audience", ""),
    _typed("auth.oidc.jwks_url", ""),
    _typed("auth.oidc.algorithms", ["RS256", "ES256"], list),
    _typed("auth.oidc.user_claim", "sub", len_min=1),
    _typed("auth.oidc.roles_claim", "groups", len_min=1),
    _typed("auth.oidc.admin_roles", [], list),
    _typed("auth.oidc.user_roles", [], list),
    _typed("auth.kbase.url", "https://kbase.us/services/auth"),
    _typed("auth.kbase.admin_roles", [], list),
    _typed("auth.kbase.user_roles", [], list),
    Validator("auth.kbase.cache_s", default=300),
    Validator("auth.kbase.cache_s", is_type_of=(int, float), gte=0, messages={"operations": _RANGE_MESSAGE}),
    _typed("cors.allow_origins", [], list),
    Validator("cors.allow_origins", condition=_origins_ok, messages={
        "condition": "setting cors.allow_origins entries must be \"*\" or origins such as https://app.example.org "
                     "(scheme and host, no path), but it is {value}"}),
]


def _is_duration(text) -> bool:
    try:
        return bool(parse_duration(text))
    except (ValueError, AttributeError):
        return False


# The HTCondor backend (tes_cts/backends/htcondor.py). Expressions are checked when it is opened.
HTCONDOR_VALIDATORS = [
    _typed("htcondor.schedd_name", ""),
    _typed("htcondor.collector", ""),
    _typed("htcondor.worker_command", ["/usr/bin/python3", "-m", "tes_cts.backends.htcondor_job"], list, len_min=1),
    Validator("htcondor.worker_command", condition=lambda c: isinstance(c[0], str) and c[0].startswith("/"), messages={
        "condition": "setting htcondor.worker_command must start with the absolute path of a program on the "
                     "execute nodes, but it is {value}"}),
    _typed("htcondor.worker_environment", {}, dict),
    _typed("htcondor.s3_secret_files", {}, dict),
    _typed("htcondor.requirements", ""),
    _typed("htcondor.accounting_group", ""),
    _typed("htcondor.concurrency_limit", ""),
    _typed("htcondor.transient_hold_codes", [6, 7, 8, 9, 10, 11, 12, 13, 14, 18, 19, 21, 22, 23, 24, 45, 48], list),
    Validator("htcondor.transient_hold_codes", condition=lambda codes: all(isinstance(c, int) for c in codes), messages={
        "condition": "setting htcondor.transient_hold_codes must list HoldReasonCode numbers, but it is {value}"}),
    _typed("htcondor.unmatched_timeout", "PT1H"),
    _typed("htcondor.lost_job_grace", "PT10M"),
    Validator("htcondor.lost_job_grace", condition=_is_duration, messages={
        "condition": "setting htcondor.lost_job_grace must be a duration, seconds (600) or ISO 8601 (PT10M), "
                     "but it is {value}"}),
]

VALIDATORS = [
    Validator("work_dir", default="./tes-cts-work", is_type_of=str, len_min=1),
    Validator("server.bind", default="127.0.0.1:8000", is_type_of=str, len_min=1),
    Validator("server.workers", default=1),
    _positive("server.workers"),
    Validator("server.max_body_bytes", default=16 * 1024 * 1024),
    _positive("server.max_body_bytes"),
    Validator("database.kind", default="sqlite", is_in=DATABASE_KINDS),
    Validator("database.sqlite_path", default="", is_type_of=str),
    Validator("database.mongodb_uri", default="mongodb://127.0.0.1:27017", is_type_of=str),
    Validator("database.mongodb_database", default="tes_cts", is_type_of=str, len_min=1),
    Validator("service.id", default="local.tes-cts", is_type_of=str, len_min=1),
    Validator("service.name", default="tes-cts", is_type_of=str, len_min=1),
    Validator(
        "service.description",
        default="GA4GH TES v1.1 server running tasks as checksum-verified CTS-style jobs",
        is_type_of=str,
    ),
    Validator("service.organization_name", default="tes-cts operators", is_type_of=str, len_min=1),
    Validator("service.organization_url", default="https://example.org", is_type_of=str, len_min=1),
    Validator("service.contact_url", default="", is_type_of=str),
    Validator("service.documentation_url", default="", is_type_of=str),
    Validator("service.environment", default="", is_type_of=str),
    Validator("tasks.content_max_bytes", default=MIN_CONTENT_BYTES),
    Validator(
        "tasks.content_max_bytes",
        is_type_of=int,
        gte=MIN_CONTENT_BYTES,
        messages={"operations": _RANGE_MESSAGE + " (TES requires at least 128 KiB of input content)"},
    ),
    *(Validator(f"tasks.max_{name}", default=getattr(SizeLimits(), name)) for name in SIZE_LIMITS),
    *(_positive(f"tasks.max_{name}") for name in SIZE_LIMITS),
    Validator("storage.file_roots", default=[], is_type_of=list),
    Validator("storage.http_allow", default=[], is_type_of=list),
    Validator("backend.kind", default="local", is_in=BACKEND_KINDS),
    Validator("containers.runtime", default=ContainerSettings.runtime, is_in=CONTAINER_RUNTIMES),
    Validator("containers.network", default=ContainerSettings.network, is_type_of=str, len_min=1),
    Validator("containers.no_new_privileges", default=ContainerSettings.no_new_privileges, is_type_of=bool),
    Validator("containers.cap_drop", default=list(ContainerSettings.cap_drop), is_type_of=list),
    Validator("containers.pull", default=ContainerSettings.pull, is_type_of=bool),
    Validator("containers.extra_args", default=list(ContainerSettings.extra_args), is_type_of=list),
    Validator("containers.log_tail_bytes", default=ContainerSettings.log_tail_bytes),
    _positive("containers.log_tail_bytes"),
    Validator("containers.runtime_limit", default="P7D", is_type_of=str),
    Validator("containers.default_disk_gb", default=ContainerSettings.default_disk_gb),
    Validator("containers.default_disk_gb", is_type_of=(int, float), gte=0, messages={"operations": _RANGE_MESSAGE}),
    Validator("local.cpu_slots", default=os.cpu_count() or 1),
    _positive("local.cpu_slots"),
    Validator("local.ram_gb", default=_total_ram_gb()),
    Validator("local.ram_gb", is_type_of=(int, float), gt=0, messages={"operations": _RANGE_MESSAGE}),
    Validator("local.min_free_gb", default=1.0),
    Validator("local.min_free_gb", is_type_of=(int, float), gte=0, messages={"operations": _RANGE_MESSAGE}),
    Validator("poller.embedded", default=True, is_type_of=bool),
    Validator("poller.run_retention", default="P30D", is_type_of=str),
    Validator("poller.event_retention", default="P7D", is_type_of=str),
    Validator("events.webhooks", default=[], is_type_of=list),
    Validator("poller.interval_s", default=1.0),
    Validator("poller.interval_s", is_type_of=(int, float), gt=0, messages={"operations": _RANGE_MESSAGE}),
    Validator("poller.lease_s", default=30),
    _positive("poller.lease_s"),
    Validator("poller.max_attempts", default=3),
    _positive("poller.max_attempts"),
    Validator("poller.batch_size", default=100),
    _positive("poller.batch_size"),
    Validator("s3.endpoint_url", default="", is_type_of=str),
    Validator("s3.region", default="us-east-1", is_type_of=str, len_min=1),
    Validator("s3.access_key_id", default="", is_type_of=str),
    Validator("s3.secret_access_key", default="", is_type_of=str),
    Validator("s3.secret_access_key_file", default="", is_type_of=str),
    Validator("s3.verify_tls", default=S3StoreConfig.verify_tls, is_type_of=bool),
    Validator("s3.buckets", default=[], is_type_of=list),
    Validator("s3.key_prefixes", default=[], is_type_of=list),
    Validator("s3.verify_inputs", default="dispatch", is_in=VERIFY_INPUTS_MODES),
    Validator("s3.multipart_threshold_bytes", default=64 * 1024 * 1024),
    Validator("s3.multipart_threshold_bytes", is_type_of=int, gte=5 * 1024 * 1024,
              messages={"operations": _RANGE_MESSAGE + " (S3 parts are at least 5 MiB)"}),
    Validator("s3.preflight_concurrency", default=StorageConfig.preflight_concurrency),
    _positive("s3.preflight_concurrency"),
    Validator("s3.max_attempts", default=S3StoreConfig.max_attempts),
    _positive("s3.max_attempts"),
    Validator("s3.stores", default={}, is_type_of=dict),
    Validator("poller.engine_wait_s", default=0),
    Validator("poller.engine_wait_s", is_type_of=(int, float), gte=0, messages={"operations": _RANGE_MESSAGE}),
    _typed("metrics.enabled", True, bool),
    # A digest, as auth.bearer.tokens holds them: the settings never hold the token itself.
    _typed("metrics.token_digest", ""),
    Validator("metrics.token_digest", condition=lambda digest: digest == "" or is_token_digest(digest), messages={
        "condition": "setting metrics.token_digest must be empty or a digest made by `tes-cts hash-password --token` "
                     "($sha256$ and 64 hex digits)"}),
    *AUTH_VALIDATORS,
    *HTCONDOR_VALIDATORS,
]


def load_settings(overrides: dict | None = None, settings_file: str | os.PathLike | None = None):
    """Load, apply `overrides` (dotted names), validate, and return the settings object.

    Raises SettingsError naming the offending setting. The auth settings are checked by
    `auth.config.check_auth_settings`, which the caller runs next.
    """
    path = settings_file or os.environ.get(SETTINGS_FILE_VARIABLE) or DEFAULT_SETTINGS_FILE
    files = [str(path)] if Path(path).exists() else []
    if settings_file and not files:
        raise SettingsError(f"settings file {settings_file} does not exist")
    settings = Dynaconf(
        envvar_prefix=ENV_PREFIX,
        settings_files=files,
        environments=True,
        env_switcher=f"{ENV_PREFIX}_ENV",
        merge_enabled=True,
    )
    for name, value in (overrides or {}).items():
        settings.set(name, value)
    settings.validators.register(*VALIDATORS)
    try:
        settings.validators.validate_all()
    except ValidationError as exc:
        raise InvalidSettings(_describe(exc)) from None
    _check_file_roots(settings.storage.file_roots)
    _check_http_allow(settings.storage.http_allow)
    _check_duration("containers.runtime_limit", settings.containers.runtime_limit)
    _check_duration("poller.run_retention", settings.poller.run_retention)
    _check_duration("poller.event_retention", settings.poller.event_retention)
    _check_webhooks(settings.events.webhooks)
    _check_extra_args(settings.containers.runtime, settings.containers.extra_args)
    _check_duration("htcondor.unmatched_timeout", settings.htcondor.unmatched_timeout)
    _check_s3_stores(named_s3_stores(settings))
    return settings


def _describe(exc: ValidationError) -> str:
    details = getattr(exc, "details", None) or []
    messages = [_plain(message) for _validator, message in details] or [_plain(str(exc))]
    return "; ".join(messages) + f" (environment variables use the {ENV_PREFIX}_ prefix, e.g. {ENV_PREFIX}_SERVER__WORKERS)"


_OPERATION_WORDS = {
    "must be gte": "must be at least",
    "must be lte": "must be at most",
    "must be is_type_of <class 'int'>": "must be an integer",
    "must be is_type_of <class 'str'>": "must be a string",
    "must be is_type_of <class 'list'>": "must be a list",
    "must be is_type_of <class 'bool'>": "must be true or false",
    "must be is_type_of (<class 'int'>, <class 'float'>)": "must be a number",
    "must be gt": "must be greater than",
    "must be len_min 1": "must not be empty",
    "must is_in": "must be one of",
}


def _plain(message: str) -> str:
    for operation, words in _OPERATION_WORDS.items():
        message = message.replace(operation, words)
    return message


def _check_file_roots(roots: list) -> None:
    for root in roots:
        if not isinstance(root, str) or not root.startswith("/"):
            raise InvalidSettings(f"storage.file_roots entries must be absolute paths, got {root!r}")


def _check_http_allow(entries: list) -> None:
    from .storage.http_addresses import allowed_network

    for entry in entries:
        if not isinstance(entry, str) or not entry or "/" in entry and allowed_network(entry) is None:
            raise InvalidSettings(f"storage.http_allow entries are host names or networks (10.1.0.0/16), got {entry!r}")


def _check_webhooks(entries: list) -> None:
    from .webhook_settings import webhooks_of

    try:
        webhooks_of(list(entries))
    except ValueError as exc:
        raise InvalidSettings(str(exc)) from None


def _check_duration(name: str, value: str) -> None:
    if value:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise InvalidSettings(f"{name}: {exc} (empty for no limit)") from None


def _check_extra_args(runtime: str, extra_args: list) -> None:
    if runtime == "docker" and extra_args:
        raise InvalidSettings(
            f"containers.extra_args must be empty with containers.runtime = \"docker\", but it is {list(extra_args)}: "
            "they are arguments of `podman run`, and the docker runtime speaks the Docker Engine API, "
            "not a command line (set containers.runtime = \"podman\" to use them)")


def named_s3_stores(settings) -> dict[str, dict]:
    """s3.stores with names and keys in lower case: environment variables arrive upper case
    (TES_CTS_S3__STORES__ARCHIVE__ENDPOINT_URL)."""
    stores = {}
    for name, store in dict(settings.s3.stores).items():
        if not isinstance(store, dict):
            raise InvalidSettings(f"s3.stores.{name} must be a table of store settings")
        stores[str(name).lower()] = {str(key).lower(): value for key, value in store.items()}
    return stores


def _check_s3_stores(stores: dict[str, dict]) -> None:
    for name, store in stores.items():
        where = f"s3.stores.{name}"
        unknown = sorted(set(store) - set(S3_STORE_KEYS), key=str)
        if unknown:
            raise InvalidSettings(f"{where} has unknown keys {unknown} (known: {', '.join(S3_STORE_KEYS)})")
        if not store.get("endpoint_url"):
            raise InvalidSettings(f"{where}.endpoint_url is required")
        if not store.get("buckets"):
            raise InvalidSettings(f"{where}.buckets must list the buckets this store serves")


def sqlite_path(settings) -> Path:
    configured = settings.database.sqlite_path
    return Path(configured) if configured else Path(settings.work_dir) / "tes-cts.sqlite3"


def environment_name(settings) -> str:
    return settings.service.environment or str(settings.current_env).lower()
