"""What storage needs to know, built from settings by the caller (no settings import here)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024


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
    multipart_threshold_bytes: int = DEFAULT_MULTIPART_THRESHOLD
    max_attempts: int = 5                       # per request, transient errors retried with backoff


@dataclass(frozen=True)
class StorageConfig:
    file_roots: tuple[str, ...] = ()
    s3_stores: tuple[S3StoreConfig, ...] = ()
    preflight_concurrency: int = 8


# How a verified input is recorded at preflight and re-checked at staging: per input index
# (as a string), one entry per object (a DIRECTORY input has one per object under its prefix):
#     {"url": "s3://bucket/key", "size": 123, "etag": "\"...\"", "crc64nvme": "base64"}
VerifiedInputs = dict[str, list[dict]]
