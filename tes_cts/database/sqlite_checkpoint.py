"""WAL checkpoints off the request path: a daemon thread per writing process.

SQLite's automatic checkpoint runs inside whichever commit takes the WAL past 1000 pages, so that
one request waits for it. Every connection turns it off (`PRAGMA wal_autocheckpoint = 0`), and
the process that writes checkpoints from this thread: about once a second after a write, or
sooner once the WAL has grown by CHECKPOINT_WAL_BYTES since the last one.

A checkpoint is two steps. A PASSIVE one copies the frames written so far into the database file
and waits for no reader or writer. Under a steady stream of writes that never catches up with
the last frames, so the WAL would never start again from its beginning: it would grow without
end, each commit extending the file (the filesystem allocating as it goes) and, past a while,
costing more than the insert. So a RESTART follows, with this process's writers held back for it
(`hold_writers`; other processes' writers and the readers it waits for at most RESTART_BUSY_MS):
it copies the few frames written meanwhile and leaves the WAL to start again from its beginning
at the next write, overwriting the same file. `journal_size_limit` cuts the file back to
CHECKPOINT_WAL_BYTES when that happens.

Checkpoints do not change durability: a commit is in the WAL when it returns, and stays there
until a checkpoint has copied it into the database file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

log = logging.getLogger("tes_cts.database")

CHECKPOINT_INTERVAL_S = 1.0
CHECKPOINT_WAL_BYTES = 64 * 1024 * 1024
# How long the RESTART may wait for another process's writer or for readers, this process's
# writers waiting meanwhile; when that is not enough it is tried again after the next write.
RESTART_BUSY_MS = 50
_WAL_SIZE_POLL_S = 0.1


def leave_checkpoints_to_the_thread(conn: sqlite3.Connection) -> None:
    """Set on every connection: no commit checkpoints, and a restarted WAL is cut back to size."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(f"PRAGMA journal_size_limit = {CHECKPOINT_WAL_BYTES}")


class WalCheckpointer:
    """Checkpoints the WAL of `path` on a connection of its own (from `connect`) after the writes
    `wrote` announces, holding this process's writers back with `hold_writers()` for the RESTART.
    Belongs to the process that made it; `stop` ends the thread."""

    def __init__(self, path: Path, connect: Callable[[], sqlite3.Connection],
                 hold_writers: Callable[[], AbstractContextManager]):
        self.pid = os.getpid()
        self._hold_writers = hold_writers
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
        try:
            conn.execute(f"PRAGMA busy_timeout = {RESTART_BUSY_MS}")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            with self._hold_writers():
                busy = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
            self.checkpoints += 1
            if busy:  # another process or a reader held on for too long: the next write asks again
                self._wrote.set()
        except sqlite3.Error as exc:  # the next write asks again
            log.warning("WAL checkpoint of %s failed: %s", self._wal, exc)
        self._wal_bytes_after_checkpoint = self._wal_bytes()
