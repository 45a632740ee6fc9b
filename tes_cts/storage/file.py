"""file:///abs and bare /abs paths: the server's own file system, only under `storage.file_roots`.

Every access resolves symlinks (os.path.realpath) and checks the real path against the roots, so
a symlink placed inside a root cannot reach outside it.

A file has no stored checksum: `stat` computes its CRC64NVME (reading it), so that preflight
records it like an object's and `get` refuses a file that changed after submission.

Validation applies the same root rule to a submitted URL (`FILE_URL`, `LOCAL_PATH`), in the same
words, on the path as written: the real one is known only when the file is opened.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import quote, unquote

from ..posix_paths import is_under, normalize, path_problems
from .atomic import atomic_directory, atomic_file, copy_stream
from .base import ChangedSinceSubmission, ObjectInfo, Storage, StorageError, check_relative, compare_listing, entries_by_url
from .checksums import crc64nvme_of_file
from .scheme import INPUTS_AND_OUTPUTS, SchemeInfo, UrlUse

FILE_ROOTS_SETTING = "storage.file_roots (env TES_CTS_STORAGE__FILE_ROOTS)"
FILE_URLS_DISABLED = (
    "file URLs and local paths are disabled on this server; the operator enables them "
    f"with the setting {FILE_ROOTS_SETTING}"
)


def not_under_file_roots(roots: tuple[str, ...]) -> str:
    return (
        f"is not under an allowed file root ({', '.join(roots)}); use a path under one of them, "
        f"or have the operator add a root to the setting {FILE_ROOTS_SETTING}"
    )


def _under_a_root(path: str, roots: tuple[str, ...]) -> bool:
    return any(is_under(normalize(path), normalize(root)) for root in roots)


def _file_url_problems(url: str, use: UrlUse) -> list[str]:
    rest = url[len("file://"):]
    if not rest.startswith("/"):
        return ["must be file:///absolute/path (three slashes: no host, an absolute path)"]
    # Checked decoded, as storage will open it: %2e%2e must not slip past the '..' rule.
    return _local_path_problems(unquote(rest), use)


def _local_path_problems(path: str, use: UrlUse) -> list[str]:
    problems = path_problems(path, whole_root=True)
    if problems:
        return problems
    if not use.file_roots:
        return [FILE_URLS_DISABLED]
    if not _under_a_root(path, use.file_roots):
        return [not_under_file_roots(use.file_roots)]
    return []


FILE_URL = SchemeInfo("file", "file:///absolute/path", INPUTS_AND_OUTPUTS, _file_url_problems, needs_file_roots=True)
LOCAL_PATH = SchemeInfo("", "/absolute/path", INPUTS_AND_OUTPUTS, _local_path_problems, needs_file_roots=True)


class FileStorage(Storage):
    verifiable = True

    def __init__(self, roots: Iterable[str]):
        self.roots = tuple(os.path.realpath(root) for root in roots)

    def stat(self, url: str) -> ObjectInfo:
        real = self._real(url)
        with _os_errors(url):
            if os.path.isdir(real):
                files = [source for _, source, is_dir in self._tree(url, real) if not is_dir]
                return ObjectInfo(sum(os.path.getsize(f) for f in files), True)
            self._expect(url, real, is_dir=False)
            digest = crc64nvme_of_file(real)
            return ObjectInfo(digest.size, False, digest.crc64nvme)

    def list(self, url: str) -> list[str]:
        real = self._real(url)
        with _os_errors(url):
            self._expect(url, real, is_dir=True)
            return [self.join(url, relative) for relative, _, is_dir in self._tree(url, real) if not is_dir]

    def get(self, url: str, dest: Path, is_dir: bool, expected: list[dict] | None = None) -> int:
        real = self._real(url)
        with _os_errors(url):
            self._expect(url, real, is_dir)
            if not is_dir:
                return _copy_file(real, Path(dest), expected[0] if expected else None)
            recorded = entries_by_url(expected) if expected is not None else None
            entries = self._tree(url, real)  # every entry is checked before anything is copied
            if expected is not None:
                compare_listing(url, expected, [self.join(url, relative) for relative, _, d in entries if not d])
            total = 0
            with atomic_directory(Path(dest)) as temporary:
                for relative, source, entry_is_dir in entries:
                    if entry_is_dir:
                        os.mkdir(temporary / relative, 0o777)
                    else:
                        entry = recorded[self.join(url, relative)] if recorded is not None else None
                        total += _copy_file(source, temporary / relative, entry, within=url)
            return total

    def put(self, src: Path, url: str) -> ObjectInfo:
        real = self._real(url)
        with _os_errors(url):
            if os.path.isdir(real):
                raise StorageError(url, "is a directory; cannot replace it with a file")
            os.makedirs(os.path.dirname(real), exist_ok=True)
            with open(src, "rb") as source, atomic_file(Path(real)) as target:
                copied = copy_stream(source, target)
            return ObjectInfo(copied.size, False, copied.encoded())

    def join(self, url: str, relative: str) -> str:
        check_relative(url, relative)
        base = url if url.endswith("/") else url + "/"
        return base + (quote(relative) if url.startswith("file://") else relative)

    # --- checks -------------------------------------------------------------------------------

    def _real(self, url: str) -> str:
        return self._inside_roots(url, _local_path(url))

    def _inside_roots(self, url: str, path: str, entry: str | None = None) -> str:
        """The real path of `path`, if it is under a root; `entry` names it inside a directory."""
        if not self.roots:
            raise StorageError(url, FILE_URLS_DISABLED)
        real = os.path.realpath(path)
        if not _under_a_root(real, self.roots):
            through_link = "leads through a symbolic link to a file that " if real != path or entry else ""
            raise StorageError(url, f"{entry + ' ' if entry else ''}{through_link}{not_under_file_roots(self.roots)}")
        return real

    @staticmethod
    def _expect(url: str, real: str, is_dir: bool) -> None:
        if not os.path.exists(real):
            raise StorageError(url, "no such file or directory")
        if is_dir and not os.path.isdir(real):
            raise StorageError(url, "is a file, not a directory")
        if not is_dir and os.path.isdir(real):
            raise StorageError(url, "is a directory, not a file")
        if not is_dir and not os.path.isfile(real):
            raise StorageError(url, "is not a regular file")

    def _tree(self, url: str, top: str) -> list[tuple[str, str, bool]]:
        """(relative path, real path, is a directory) of everything under `top`, parents first."""
        entries: list[tuple[str, str, bool]] = []

        def visit(directory: str, relative: str, ancestors: frozenset[str]) -> None:
            with os.scandir(directory) as listing:
                names = sorted(entry.name for entry in listing)
            for name in names:
                inner = f"{relative}/{name}" if relative else name
                real = self._inside_roots(url, os.path.join(directory, name), entry=inner)
                if os.path.isdir(real):
                    if real in ancestors:
                        raise StorageError(url, f"{inner} is a symlink loop")
                    entries.append((inner, real, True))
                    visit(real, inner, ancestors | {real})
                elif os.path.isfile(real):
                    entries.append((inner, real, False))
                else:
                    raise StorageError(url, f"{inner} is not a regular file or directory")

        visit(top, "", frozenset({top}))
        return entries


def _local_path(url: str) -> str:
    if url.startswith("file://"):
        rest = url[len("file://"):]
        if not rest.startswith("/"):
            raise StorageError(url, "must be file:///absolute/path (three slashes)")
        path = unquote(rest)  # as validation checked it
    elif url.startswith("/"):
        path = url
    else:
        raise StorageError(url, "is neither a file:// URL nor an absolute path")
    if "\x00" in path:
        raise StorageError(url, "must not contain a NUL byte")
    return path


def _copy_file(source: str, dest: Path, recorded: dict | None = None, within: str | None = None) -> int:
    """Copy one file; with `recorded` (its VerifiedInputs entry), only if its bytes are the ones
    recorded: otherwise ChangedSinceSubmission and nothing at `dest`."""
    with open(source, "rb") as reader, atomic_file(dest, durable=False) as writer:
        copied = copy_stream(reader, writer)
        if recorded is not None and (copied.size != recorded.get("size") or copied.encoded() != recorded.get("crc64nvme")):
            raise ChangedSinceSubmission.of(recorded, copied.encoded(), copied.size, within=within)
        if os.fstat(reader.fileno()).st_mode & 0o111:
            # Keep scripts runnable: executable wherever the new file is readable.
            mode = os.fstat(writer.fileno()).st_mode & 0o777
            os.fchmod(writer.fileno(), mode | (mode & 0o444) >> 2)
    return copied.size


@contextmanager
def _os_errors(url: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise StorageError(url, f"{exc.strerror or exc}{where}") from None
