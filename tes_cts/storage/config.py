"""What storage needs to know, built from settings by the caller (no settings import here)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class S3StoreConfig:
    """One S3 endpoint and the buckets it serves."""

    name: str                                   # "default", or the key under s3.stores
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)  # never in a repr, a log line or a message
    verify_tls: bool = True
    buckets: tuple[str, ...] = ()               # served buckets; empty: any bucket no other store serves
    key_prefixes: tuple[str, ...] = ()          # keys must start with one of these; empty: any key
    # Above it, uploads are multipart; no default here: it is the setting s3.multipart_threshold_bytes.
    multipart_threshold_bytes: int = field(kw_only=True)
    max_attempts: int = 5                       # per request (transient errors retried); the s3.max_attempts default
    # Of temporary credentials (SSO, an assumed role): the command line's, from the environment.
    session_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class StorageConfig:
    file_roots: tuple[str, ...] = ()
    s3_stores: tuple[S3StoreConfig, ...] = ()
    http_allow: tuple[str, ...] = ()  # the setting storage.http_allow (storage/http_addresses.py)
    preflight_concurrency: int = 8  # the s3.preflight_concurrency default (settings.py reads it here)


# How a verified input is recorded at preflight and re-checked at staging: per input index
# (as a string), one entry per object (a DIRECTORY input has one per object under its prefix):
#     {"url": "s3://bucket/key", "size": 123, "etag": "\"...\"", "crc64nvme": "base64"}
VerifiedInputs = dict[str, list[dict]]


# A worker learns its stores from the job file, which never holds a secret; the backend that
# starts it passes each store's secret in the worker's environment under this name.
SECRET_VARIABLE_PREFIX = "TES_CTS_WORKER_S3_SECRET_"


def secret_variable(store_name: str) -> str:
    return SECRET_VARIABLE_PREFIX + "".join(c if c.isalnum() else "_" for c in store_name.upper())


SECRET_FIELDS = ("secret_access_key", "session_token")  # never written to a job file


def public_stores(config: StorageConfig) -> list[dict]:
    """The S3 stores as job-file data: everything but the secret."""
    stores = []
    for store in config.s3_stores:
        public = {name: getattr(store, name) for name in S3StoreConfig.__dataclass_fields__ if name not in SECRET_FIELDS}
        public["buckets"], public["key_prefixes"] = list(store.buckets), list(store.key_prefixes)
        stores.append(public)
    return stores


def stores_from_job(public: list[dict], environ: dict[str, str]) -> tuple[S3StoreConfig, ...]:
    return tuple(
        S3StoreConfig(**{**store, "buckets": tuple(store["buckets"]), "key_prefixes": tuple(store["key_prefixes"]),
                         "secret_access_key": environ.get(secret_variable(store["name"]), "")})
        for store in public
    )


def secret_environment(config: StorageConfig) -> dict[str, str]:
    return {secret_variable(store.name): store.secret_access_key for store in config.s3_stores}
