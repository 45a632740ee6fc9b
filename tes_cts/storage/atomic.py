"""Writing files and directories so that the final name holds all of it or nothing."""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Iterator

from .checksums import CHUNK_BYTES, Crc64Nvme


def _temporary_name(dest: Path) -> Path:
    # Beside the destination, so the final rename stays on one file system; the name is cut
    # short so that it fits NAME_MAX (255) whatever the destination's name.
    return dest.with_name(f".{dest.name[:200]}.{secrets.token_hex(6)}.tmp")


@contextmanager
def atomic_file(dest: Path, durable: bool = True) -> Iterator[BinaryIO]:
    """A handle on a new temporary file beside `dest`; renamed to `dest` when the block ends
    normally, removed when it raises.

    `durable`: flushed to disk (fsync) before the rename, so that after a crash `dest` holds the
    whole file or the old one. Downloads into a task's run directory pass False: the rename alone
    keeps them all-or-nothing for every reader, a crash restarts the attempt's staging anyway, and
    an fsync there would cost more than the download (a third of the speed of a 1 GiB input)."""
    temporary = _temporary_name(dest)
    # 0o666 filtered by the umask, like any new file (mkstemp would make it 0o600).
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
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


def copy_stream(source: BinaryIO, target: BinaryIO) -> Crc64Nvme:
    """Copy `source` to `target` through one reused buffer; the size and CRC64NVME of the bytes
    copied."""
    running = Crc64Nvme()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    while count := source.readinto(buffer):
        running.update(view[:count])
        target.write(view[:count])
    return running
