"""The `Storage` contract: what every URL scheme implements.

One module per scheme (`file.py`, `http.py`, later `s3.py`); `storage_for` in `__init__` picks
one by the URL. Storage knows URLs and local files, nothing about tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


class StorageError(Exception):
    """Something went wrong with one URL; `reason` says what, in words a user can act on."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


@dataclass(frozen=True)
class ObjectInfo:
    size: int                   # bytes (a directory: all files under it); -1 when unknown
    is_dir: bool
    checksum: str | None = None  # CRC64NVME as the store reports it, when it does


class Storage(ABC):
    @abstractmethod
    def stat(self, url: str) -> ObjectInfo:
        """What the URL names, without reading it. Raises StorageError (missing, refused, ...)."""

    @abstractmethod
    def get(self, url: str, dest: Path, is_dir: bool) -> int:
        """Download a file (or, with is_dir, a whole tree) to `dest`; returns the bytes written.
        Nothing is left at `dest` on failure. A file replaces what is at `dest`; a directory
        needs `dest` to be absent or an empty directory."""

    @abstractmethod
    def put(self, src: Path, url: str) -> int:
        """Upload one local file to `url`, creating parents as the scheme needs; returns the
        bytes written. A failed upload leaves nothing at `url`."""

    @abstractmethod
    def join(self, url: str, relative: str) -> str:
        """The URL of `relative` (a relative POSIX path) under the directory `url` names."""


def check_relative(url: str, relative: str) -> None:
    parts = relative.split("/")
    if relative.startswith("/") or ".." in parts or "" in parts:
        raise StorageError(url, f"cannot append {relative!r}: not a plain relative path")
