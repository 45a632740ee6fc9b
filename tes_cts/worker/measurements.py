"""What a worker measures of its attempt for the service's metrics: the bytes and the time it
staged by URL scheme and direction, and the CRC64NVME mismatches it met.

A worker counts nothing itself (it is a process of its own per attempt, and every process that
counts leaves files): it returns these in its result (`Result.measurements`), summed per scheme
and direction so that the result stays small whatever the number of files, and the poller
counts them once it records the result (`metrics/record.py`).
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterator

from ..storage.base import ChecksumMismatch


def scheme_of(url: str) -> str:
    """The URL's scheme as metrics name it: a bare path is a local file. Validation accepted
    only the schemes of the storage registry, in lower case."""
    return url.partition("://")[0] if "://" in url else "file"


class StagingMeter:
    def __init__(self):
        self._bytes: Counter[tuple[str, str]] = Counter()
        self._seconds: Counter[tuple[str, str]] = Counter()
        self._mismatches: Counter[tuple[str, str]] = Counter()

    @contextmanager
    def transfer(self, url: str, direction: str) -> Iterator[Callable[[int], None]]:
        """Around one transfer (a file, or a DIRECTORY input's tree) of `direction` (input or
        output): call what it yields with the bytes moved once they are; a ChecksumMismatch raised
        out of it counts as one."""
        key, started = (scheme_of(url), direction), time.monotonic()

        def moved(size: int) -> None:
            self._bytes[key] += max(size, 0)
            self._seconds[key] += time.monotonic() - started

        try:
            yield moved
        except ChecksumMismatch:
            self._mismatches[key] += 1
            raise

    def measurements(self) -> dict:
        """As `Result.measurements` holds them."""
        return {
            "staging": [{"scheme": scheme, "direction": direction, "bytes": self._bytes[scheme, direction],
                         "seconds": round(seconds, 6)}
                        for (scheme, direction), seconds in self._seconds.items()],
            "checksum_mismatches": [{"scheme": scheme, "direction": direction, "count": count}
                                    for (scheme, direction), count in self._mismatches.items()],
        }
