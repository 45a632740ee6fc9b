"""Storage by URL: `storage_for(url, file_roots)` picks the scheme's implementation.

Adding a scheme is adding one module and one line in `_SCHEMES`.
"""

from __future__ import annotations

from typing import Callable, Iterable

from .base import ObjectInfo, Storage, StorageError
from .file import FileStorage
from .http import HttpStorage, shown

__all__ = ["ObjectInfo", "Storage", "StorageError", "shown_url", "storage_for"]

_SCHEMES: dict[str, Callable[[tuple[str, ...]], Storage]] = {
    "file": FileStorage,
    "http": lambda roots: HttpStorage(),
    "https": lambda roots: HttpStorage(),
}


def storage_for(url: str, file_roots: Iterable[str]) -> Storage:
    """The storage for `url`'s scheme; a bare absolute path is a local file. Raises StorageError."""
    scheme = "file" if url.startswith("/") else url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "s3":
        raise StorageError(url, "S3 storage is not configured on this server yet")
    if scheme not in _SCHEMES:
        accepted = ", ".join(f"{name}://" for name in _SCHEMES)
        raise StorageError(shown(url), f"unsupported URL scheme; accepted: {accepted} and absolute paths")
    return _SCHEMES[scheme](tuple(file_roots))


def shown_url(url: str) -> str:
    """`url` without any password in it, for messages and system logs."""
    return shown(url)
