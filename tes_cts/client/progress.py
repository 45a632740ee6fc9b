"""A progress bar (bytes, rate, ETA) on stderr for the transfers of `tes-cts storage` and `run`.

Shown only where someone watches it: stderr a terminal, the transfer big enough to take a moment,
and the caller not asked to be quiet. Otherwise `progress_bar` yields None, which S3Storage's
put/get take as "no progress to report".
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

MIB = 1024 * 1024
SHOWN_FROM_BYTES = 4 * MIB  # below, a transfer ends before a bar would tell anything


def wanted(total_bytes: int, quiet: bool) -> bool:
    """Whether a transfer of `total_bytes` gets a bar."""
    return not quiet and total_bytes >= SHOWN_FROM_BYTES and sys.stderr.isatty()


@contextmanager
def progress_bar(total_bytes: int, label: str, quiet: bool = False) -> Iterator[Callable[[int], None] | None]:
    """A callback told the bytes moved since its last call (negative to take some back), drawing
    the bar; None when no bar is wanted. The bar is cleared when the block ends."""
    if not wanted(total_bytes, quiet):
        yield None
        return
    from tqdm import tqdm  # only when a bar is drawn

    bar = tqdm(total=total_bytes, desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
               leave=False, dynamic_ncols=True, miniters=1)
    lock = threading.Lock()  # the parts of a multipart upload report from several threads

    def advance(count: int) -> None:
        with lock:
            bar.update(count)

    try:
        yield advance
    finally:
        bar.close()
