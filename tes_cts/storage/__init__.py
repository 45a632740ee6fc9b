"""Storage by URL: the one registry of schemes, and the two questions asked of it.

`storage_for(url, config)` is the storage serving a URL (an s3:// URL goes to the configured
store serving its bucket: `s3_stores.resolve_store`); `url_problems(url, use)` is what validation
reports about a submitted URL. Each scheme module declares what it accepts and checks its own
URLs (`scheme.SchemeInfo`); adding a scheme is adding its module and one line in `_REGISTRY`.
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

from ..quoting import quoted
from ..urls import without_password
from .base import ChangedSinceSubmission, ObjectInfo, Storage, StorageError
from .config import S3StoreConfig, StorageConfig, VerifiedInputs
from .file import FILE_URL, LOCAL_PATH, FileStorage
from .http import HTTP, HTTPS, HttpStorage
from .s3_stores import resolve_store
from .s3_urls import S3
from .scheme import INPUT, OUTPUT, SchemeInfo, UrlUse

__all__ = ["INPUT", "OUTPUT", "ChangedSinceSubmission", "ObjectInfo", "S3StoreConfig", "Storage", "StorageConfig",
           "StorageError", "UrlUse", "VerifiedInputs", "check_s3_stores", "storage_for", "url_problems"]


def _s3(url: str, config: StorageConfig) -> Storage:
    from .s3 import S3Storage  # boto3 is slow to import: only when an s3:// URL is met

    return S3Storage(resolve_store(url, config.s3_stores), max_connections=max(10, config.preflight_concurrency))


def _file(url: str, config: StorageConfig) -> Storage:
    return FileStorage(config.file_roots)


def _http(url: str, config: StorageConfig) -> Storage:
    return HttpStorage(config.http_allow)


class _Registered(NamedTuple):
    scheme: SchemeInfo  # what it accepts
    make: Callable[[str, StorageConfig], Storage]  # the storage serving its URLs


# Every scheme, once; messages list the accepted schemes in this order.
_REGISTRY = (
    _Registered(S3, _s3),
    _Registered(FILE_URL, _file),
    _Registered(LOCAL_PATH, _file),
    _Registered(HTTP, _http),
    _Registered(HTTPS, _http),
)
_BY_NAME = {registered.scheme.name: registered for registered in _REGISTRY}
_SCHEME_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def _written_scheme(url: str) -> str | None:
    """The scheme as `url` writes it ("" for a bare absolute path); None when it has none."""
    if url.startswith("/"):
        return ""
    match = _SCHEME_PREFIX.match(url)
    return match.group(1) if match else None


def _registered(name: str | None) -> _Registered | None:
    return _BY_NAME.get(name.lower()) if name is not None else None


def storage_for(url: str, config: StorageConfig) -> Storage:
    """The storage for `url`'s scheme; a bare absolute path is a local file. Raises StorageError."""
    registered = _registered(_written_scheme(url))
    if registered is None:
        accepted = ", ".join(f"{r.scheme.name}://" for r in _REGISTRY if r.scheme.name)
        raise StorageError(without_password(url), f"unsupported URL scheme; accepted: {accepted} and absolute paths")
    return registered.make(url, config)


def url_problems(url: str, use: UrlUse) -> list[str]:
    """What is wrong with a submitted `url` for `use`, in words the user can act on; [] if nothing."""
    accepted = ", ".join(r.scheme.example for r in _REGISTRY if r.scheme.offered_for(use))
    name = _written_scheme(url)
    registered = _registered(name)
    scheme = registered.scheme if registered else None
    if name is None:
        expected = "a URL or an absolute path" if LOCAL_PATH.offered_for(use) else "a URL"
        return [f"must be {expected}, not {quoted(url)}; accepted for {use.direction}s: {accepted}"]
    if scheme is None or use.direction not in scheme.directions:
        return [f"scheme {quoted(name + '://')} is not supported for {use.direction}s; accepted: {accepted}"]
    if name != name.lower():
        return [f"write the scheme in lower case: {name.lower()}://"]
    if "\x00" in url:
        return ["must not contain a NUL byte"]
    return scheme.url_problems(url, use)


def check_s3_stores(config: StorageConfig) -> None:
    """Every configured S3 store answers and accepts its credentials; see `s3.check_s3_stores`."""
    from .s3 import check_s3_stores as check

    check(config)
