"""Which configured S3 store serves an `s3://bucket/key` URL, and whether it allows the key.

A store listing the bucket in `buckets` serves it; otherwise the store with no `buckets` (the
default) does; otherwise no store does. A store with `key_prefixes` serves only keys starting
with one of them. No boto3 here: `s3.py` talks to the stores.
"""

from __future__ import annotations

from .base import StorageError
from .config import S3StoreConfig
from .s3_urls import parse_s3_url

SETTINGS_HINT = ("settings s3.endpoint_url, s3.region, s3.access_key_id, s3.secret_access_key; "
                 "or named stores s3.stores.NAME.*")


def resolve_store(url: str, stores: tuple[S3StoreConfig, ...]) -> S3StoreConfig:
    """The store serving `url`'s bucket, its key allowed by the store. Raises StorageError."""
    bucket, key = parse_s3_url(url)
    if not stores:
        raise StorageError(url, f"no S3 store is configured ({SETTINGS_HINT})")
    store = next((s for s in stores if bucket in s.buckets), None)
    if store is None:
        defaults = [s for s in stores if not s.buckets]
        store = next((s for s in defaults if s.name == "default"), defaults[0] if defaults else None)
    if store is None:
        configured = "; ".join(f"store {s.name}: {', '.join(s.buckets)}" for s in stores)
        raise StorageError(url, f"no S3 store serves bucket {bucket} (configured: {configured})")
    # The URL of a DIRECTORY may omit its final '/'; the verbs check each exact key again.
    check_key(store, url, key, directory_form=True)
    return store


def check_key(store: S3StoreConfig, url: str, key: str, directory_form: bool = False) -> None:
    """Refuse a key (or a listing prefix) outside the store's `key_prefixes`; `directory_form`:
    also accept `key` + '/'."""
    forms = (key, key + "/") if directory_form and not key.endswith("/") else (key,)
    if store.key_prefixes and not any(f.startswith(p) for f in forms for p in store.key_prefixes):
        allowed = ", ".join(repr(prefix) for prefix in store.key_prefixes)
        raise StorageError(
            url,
            f"key {key!r} is not under a key prefix store {store.name} allows (allowed: {allowed}); "
            f"see the setting key_prefixes of that store",
        )
