"""Writing files and directories so that the final name holds all of it or nothing."""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Iterator

CHUNK_BYTES = 1024 * 1024


def _temporary_name(dest: Path) -> Path:
    # Beside the destination, so the final rename stays on one file system; the name is cut
    # short so that it fits NAME_MAX (255) whatever the destination's name.
    return dest.with_name(f".{dest.name[:200]}.{secrets.token_hex(6)}.tmp")


@contextmanager
def atomic_file(dest: Path) -> Iterator[BinaryIO]:
    """A handle on a new temporary file beside `dest`; renamed to `dest` when the block ends
    normally, removed when it raises."""
    temporary = _temporary_name(dest)
    # 0o666 filtered by the umask, like any new file (mkstemp would make it 0o600).
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, dest)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextmanager
def atomic_directory(dest: Path) -> Iterator[Path]:
    """A new temporary directory beside `dest`, renamed to `dest` (absent or empty) when the block
    ends normally, removed with everything in it when it raises."""
    temporary = _temporary_name(dest)
    os.mkdir(temporary, 0o777)
    try:
        yield temporary
        os.replace(temporary, dest)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def copy_stream(source: BinaryIO, target: BinaryIO) -> int:
    written = 0
    while chunk := source.read(CHUNK_BYTES):
        target.write(chunk)
        written += len(chunk)
    return written
