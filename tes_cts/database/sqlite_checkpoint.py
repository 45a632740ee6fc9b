"""WAL checkpoints off the request path: a daemon thread per writing process.

SQLite's automatic checkpoint runs inside whichever commit takes the WAL past 1000 pages, so that
one request waits for it. Every connection turns it off (`PRAGMA wal_autocheckpoint = 0`), and
the process that writes runs a PASSIVE checkpoint (it waits for no reader or writer) from this
thread: about once a second after a write, or sooner once the WAL has grown by
CHECKPOINT_WAL_BYTES since the last one. `journal_size_limit` cuts the WAL back to that size when
it restarts.

Under a steady stream of writes a PASSIVE checkpoint never catches up with the last frames, so
the WAL never restarts and keeps growing. Once it is past WAL_TRUNCATE_BYTES the thread runs a
TRUNCATE checkpoint after the passive one: it waits (at most TRUNCATE_BUSY_MS, else it tries
again later) for a moment without a writer, copies the few frames written since, and empties
the file.

Checkpoints do not change durability: a commit is in the WAL when it returns, and stays there
until a checkpoint has copied it into the database file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("tes_cts.database")

CHECKPOINT_INTERVAL_S = 1.0
CHECKPOINT_WAL_BYTES = 64 * 1024 * 1024
# A TRUNCATE holds writers back while it syncs the database file (a few hundred ms here), so it
# is kept for a WAL that sustained writes have let grow this far (in normal use it restarts).
WAL_TRUNCATE_BYTES = 16 * CHECKPOINT_WAL_BYTES
TRUNCATE_BUSY_MS = 200
_WAL_SIZE_POLL_S = 0.1


def leave_checkpoints_to_the_thread(conn: sqlite3.Connection) -> None:
    """Set on every connection: no commit checkpoints, and a restarted WAL is cut back to size."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(f"PRAGMA journal_size_limit = {CHECKPOINT_WAL_BYTES}")


class WalCheckpointer:
    """Checkpoints the WAL of `path` on a connection of its own (from `connect`) after the writes
    `wrote` announces. Belongs to the process that made it; `stop` ends the thread."""

    def __init__(self, path: Path, connect: Callable[[], sqlite3.Connection]):
        self.pid = os.getpid()
        self.checkpoints = 0
        self._wal_bytes_after_checkpoint = 0
        self._wal = path.with_name(path.name + "-wal")
        self._connect = connect
        self._wrote = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint {path}", daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        self._wrote.set()

    def stop(self, timeout_s: float) -> None:
        self._stopping.set()
        self._wrote.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        conn = self._connect()
        try:
            while not self._stopping.is_set():
                self._wrote.wait()
                self._wait_until_due()
                if self._stopping.is_set():
                    return
                # Cleared before the checkpoint: a write committed during it asks for the next.
                self._wrote.clear()
                self._checkpoint(conn)
        finally:
            conn.close()

    def _wait_until_due(self) -> None:
        due = time.monotonic() + CHECKPOINT_INTERVAL_S
        while time.monotonic() < due and not self._wal_is_large():
            if self._stopping.wait(_WAL_SIZE_POLL_S):
                return

    def _wal_bytes(self) -> int:
        try:
            return self._wal.stat().st_size
        except FileNotFoundError:
            return 0

    def _wal_is_large(self) -> bool:
        return self._wal_bytes() - self._wal_bytes_after_checkpoint > CHECKPOINT_WAL_BYTES

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # The passive pass copies nearly everything without blocking anyone, so that a TRUNCATE
        # right after it holds writers back only for the frames written meanwhile.
        modes = ("PASSIVE", "TRUNCATE") if self._wal_bytes() > WAL_TRUNCATE_BYTES else ("PASSIVE",)
        try:
            conn.execute(f"PRAGMA busy_timeout = {TRUNCATE_BUSY_MS}")
            for mode in modes:
                busy = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
            self.checkpoints += 1
            if busy:  # TRUNCATE met a writer or reader for too long: the next write asks again
                self._wrote.set()
        except sqlite3.Error as exc:  # the next write asks again
            log.warning("WAL checkpoint of %s failed: %s", self._wal, exc)
        self._wal_bytes_after_checkpoint = self._wal_bytes()
