"""Storage by URL: `storage_for(url, config)` picks the scheme's implementation.

Adding a scheme is adding one module and one line in `_SCHEMES`. An s3:// URL goes to the
configured store serving its bucket (`s3_stores.resolve_store`).
"""

from __future__ import annotations

from typing import Callable

from ..urls import without_password
from .base import ChangedSinceSubmission, ObjectInfo, Storage, StorageError
from .config import S3StoreConfig, StorageConfig, VerifiedInputs
from .file import FileStorage
from .http import HttpStorage
from .s3_stores import resolve_store

__all__ = ["ChangedSinceSubmission", "ObjectInfo", "S3StoreConfig", "Storage", "StorageConfig", "StorageError",
           "VerifiedInputs", "check_s3_stores", "storage_for"]


def _s3(url: str, config: StorageConfig) -> Storage:
    from .s3 import S3Storage  # boto3 is slow to import: only when an s3:// URL is met

    return S3Storage(resolve_store(url, config.s3_stores), max_connections=max(10, config.preflight_concurrency))


_SCHEMES: dict[str, Callable[[str, StorageConfig], Storage]] = {
    "s3": _s3,
    "file": lambda url, config: FileStorage(config.file_roots),
    "http": lambda url, config: HttpStorage(),
    "https": lambda url, config: HttpStorage(),
}


def storage_for(url: str, config: StorageConfig) -> Storage:
    """The storage for `url`'s scheme; a bare absolute path is a local file. Raises StorageError."""
    scheme = "file" if url.startswith("/") else url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        accepted = ", ".join(f"{name}://" for name in _SCHEMES)
        raise StorageError(without_password(url), f"unsupported URL scheme; accepted: {accepted} and absolute paths")
    return _SCHEMES[scheme](url, config)


def check_s3_stores(config: StorageConfig) -> None:
    """Every configured S3 store answers and accepts its credentials; see `s3.check_s3_stores`."""
    from .s3 import check_s3_stores as check

    check(config)

