"""The `Storage` contract: what every URL scheme implements.

One module per scheme (`file.py`, `http.py`, `s3.py`), each also declaring what it accepts
(`scheme.SchemeInfo`; s3's is in `s3_urls.py`, which loads no boto3); `storage_for` in `__init__`
picks one by the URL. Storage knows URLs and local files, nothing about tasks.

Integrity: a scheme whose objects can be checksummed (`verifiable`) reports each object's
CRC64NVME in `stat`, and the algorithms of any other checksums it has (for the message when the
CRC64NVME is missing: `missing_crc64nvme`); preflight records it (a `VerifiedInputs` entry per
object) and `get`, given those entries, recomputes the CRC64NVME of the bytes it receives and
refuses them, leaving nothing behind, when they are not the recorded ones
(`ChangedSinceSubmission`). `put` computes the CRC64NVME of what it uploads and returns it.
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


class ChecksumMismatch(StorageError):
    """Bytes that are not the ones recorded for them: an input changed since submission, or an
    output the store holds with another CRC64NVME than the one computed here (the service counts
    these apart: metrics)."""


class ChangedSinceSubmission(ChecksumMismatch):
    """The bytes of an input are not those recorded when the task was submitted (preflight)."""

    @classmethod
    def of(cls, recorded: dict, now_crc: str | None, now_size: int | None = None, within: str | None = None,
           detail: str = "") -> ChangedSinceSubmission:
        """`recorded` is the object's VerifiedInputs entry, `now_*` what its bytes are now; `within`
        the URL of the DIRECTORY input the object is part of."""
        reason = f"changed since submission (recorded CRC64NVME {recorded.get('crc64nvme')}, now {now_crc or 'none'}"
        if now_size is not None and now_size != recorded.get("size"):
            reason += f"; recorded size {recorded.get('size')} bytes, now {now_size}"
        reason += (f"; {detail}" if detail else "") + ")"
        if within is not None and within != recorded["url"]:
            return cls(within, f"{recorded['url']} {reason}")
        return cls(recorded["url"], reason)


@dataclass(frozen=True)
class ObjectInfo:
    size: int                    # bytes (a directory: all files under it); -1 when unknown
    is_dir: bool
    checksum: str | None = None  # CRC64NVME (S3 base64 form), as the store reports it or as computed
    etag: str | None = None      # the store's ETag, quotes included, when it has one
    encryption: str | None = None  # "aws:kms" (or "aws:kms:dsse") or "SSE-C" when so encrypted
    other_checksums: tuple[str, ...] = ()  # the algorithms of the store's checksums besides CRC64NVME, e.g. ("CRC32",)


def missing_crc64nvme(url: str, info: ObjectInfo) -> str:
    """Why the object at `url` (s3://) cannot be an input: it has no CRC64NVME. Says which checksum
    it carries instead, which tells the user what uploaded it, and how to upload it with one."""
    return (f"has no CRC64NVME checksum in its storage metadata, which every input needs "
            f"({_checksums_carried(info.other_checksums)}); upload it again with one: "
            f"`aws s3 cp --checksum-algorithm CRC64NVME FILE {url}`, "
            f"`mc cp --checksum crc64nvme FILE ALIAS/{url.removeprefix('s3://')}`, or with boto3 "
            '`put_object(..., ChecksumAlgorithm="CRC64NVME")` or '
            '`upload_file(..., ExtraArgs={"ChecksumAlgorithm": "CRC64NVME"})` (which need awscrt: '
            '`pip install "boto3[crt]"`)')


def _checksums_carried(algorithms: tuple[str, ...]) -> str:
    if not algorithms:
        return "it has no checksum at all"
    if algorithms == ("CRC32",):  # the likeliest cause: what boto3 sends unless told otherwise
        return "its checksum is CRC32, which boto3 adds by default"
    if len(algorithms) == 1:
        return f"its checksum is {algorithms[0]}"
    return f"its checksums are {' and '.join(algorithms)}"


class Storage(ABC):
    # Whether preflight records this scheme's objects (size, CRC64NVME) for `get` to re-check.
    verifiable: bool = False

    @abstractmethod
    def stat(self, url: str) -> ObjectInfo:
        """What the URL names, without downloading it (a local file is read to checksum it).
        Raises StorageError (missing, refused, ...)."""

    @abstractmethod
    def list(self, url: str) -> list[str]:
        """The URLs of every file (object) under the directory `url` names, sorted; each is
        `join(url, relative path)`. Raises StorageError."""

    @abstractmethod
    def get(self, url: str, dest: Path, is_dir: bool, expected: list[dict] | None = None) -> int:
        """Download a file (or, with is_dir, a whole tree) to `dest`; returns the bytes written.
        Nothing is left at `dest` on failure. A file replaces what is at `dest`; a directory
        needs `dest` to be absent or an empty directory.

        `expected`: the VerifiedInputs entries recorded at preflight ({"url", "size", "etag",
        "crc64nvme"}, one per object). When given, exactly those objects are downloaded and each
        must still have the recorded size and CRC64NVME, else ChangedSinceSubmission."""

    @abstractmethod
    def put(self, src: Path, url: str) -> ObjectInfo:
        """Upload one local file to `url`, creating parents as the scheme needs; returns its size
        and the CRC64NVME of the bytes read. A failed upload leaves nothing at `url`."""

    @abstractmethod
    def join(self, url: str, relative: str) -> str:
        """The URL of `relative` (a relative POSIX path) under the directory `url` names."""


def check_relative(url: str, relative: str) -> None:
    parts = relative.split("/")
    if relative.startswith("/") or ".." in parts or "" in parts:
        raise StorageError(url, f"cannot append {relative!r}: not a plain relative path")


def entries_by_url(expected: list[dict]) -> dict[str, dict]:
    """The recorded entries of one input by object URL."""
    return {entry["url"]: entry for entry in expected}


def compare_listing(url: str, recorded: list[dict], now: list[str]) -> None:
    """Raise ChangedSinceSubmission if the objects under a directory are not the recorded ones."""
    before, after = {entry["url"] for entry in recorded}, set(now)
    if before == after:
        return
    added, removed = sorted(after - before), sorted(before - after)
    said = []
    if added:
        said.append(f"{len(added)} object(s) added: {_few(added)}")
    if removed:
        said.append(f"{len(removed)} object(s) removed: {_few(removed)}")
    raise ChangedSinceSubmission(url, f"changed since submission ({'; '.join(said)})")


def _few(urls: list[str], shown: int = 5) -> str:
    more = f" and {len(urls) - shown} more" if len(urls) > shown else ""
    return ", ".join(urls[:shown]) + more
