"""CRC64NVME, the checksum every object carries: computed incrementally, written as S3 writes it.

S3 (and every store speaking its API) shows a CRC64NVME as the base64 of its 8 bytes, big-endian:
`encode(0)` is "AAAAAAAAAAA=". awscrt computes it at memory speed (~11 GB/s) when it is given
buffers it can read in place: bytes, bytearrays, memoryviews. Slicing a bytes object copies it,
so files are read with readinto into one reused buffer and checksummed through a memoryview.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import NamedTuple

from awscrt.checksums import combine_crc64nvme, crc64nvme

__all__ = ["CHUNK_BYTES", "Crc64Nvme", "FileDigest", "combine", "crc64nvme", "crc64nvme_of_file", "decode", "encode"]

CHUNK_BYTES = 1024 * 1024
ALGORITHM = "CRC64NVME"


def encode(crc: int) -> str:
    """The S3 form of a CRC64NVME value: base64 of 8 big-endian bytes."""
    return base64.b64encode(crc.to_bytes(8, "big")).decode("ascii")


def decode(text: str) -> int:
    """The value of a CRC64NVME in its S3 form. Raises ValueError for anything else."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{text!r} is not base64") from None
    if len(raw) != 8:
        raise ValueError(f"{text!r} is {len(raw)} bytes, not the 8 of a CRC64NVME")
    return int.from_bytes(raw, "big")


def combine(first: int, second: int, second_length: int) -> int:
    """The CRC64NVME of A followed by B, from the CRC of A, the CRC of B and B's length."""
    return combine_crc64nvme(first, second, second_length)


class Crc64Nvme:
    """A running CRC64NVME: `update` with each buffer in order; `value`, `size`, `encoded()`."""

    __slots__ = ("value", "size")

    def __init__(self) -> None:
        self.value = 0
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = crc64nvme(data, self.value)
        self.size += len(data)

    def encoded(self) -> str:
        return encode(self.value)


class FileDigest(NamedTuple):
    size: int
    crc64nvme: str      # S3 form


def crc64nvme_of_file(path: str | os.PathLike, chunk: int = CHUNK_BYTES) -> FileDigest:
    """Size and CRC64NVME of a local file, read once in `chunk`-sized pieces into one buffer."""
    running = Crc64Nvme()
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            running.update(view[:count])
    return FileDigest(running.size, running.encoded())
