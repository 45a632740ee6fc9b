"""Waking the poller at once: a FIFO (named pipe) in the work dir that the poller waits on
between cycles, and `notify`, which the API (a task created or canceled) and a local worker (its
result written) call to make it run a cycle now instead of at the end of its interval.

A wake-up is a hint, never a message: the poller still runs a cycle every `poller.interval_s`, so a
wake-up lost or never sent costs latency, nothing else. It is best-effort beyond one host: a FIFO
reaches only the processes of the host it is on, so where several pollers share MongoDB from
several hosts, each waits on the FIFO of its own work dir, and a create or a cancel wakes only the
pollers on the host of the API process that took it (the others see the task at their next
interval). A worker always wakes the poller of the host that started it.
"""

from __future__ import annotations

import os
import select
import stat

WAKE_FILE = "poller.wake"
_READ_BYTES = 65536                        # a pipe's default capacity: one read usually drains it


def notify(path: str | os.PathLike) -> None:
    """Wake the poller waiting on the FIFO at `path`. Never blocks, never raises: no FIFO there
    (ENOENT) or no poller holding it open (ENXIO) means there is nobody to wake, and a full pipe
    (EAGAIN) means a wake-up is already pending."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):  # a file left at the path is not written to
            os.write(fd, b"\0")
    except OSError:  # EAGAIN, or EPIPE: the poller closed it just now
        pass
    finally:
        os.close(fd)


class WakeupFifo:
    """The poller's end: the FIFO at `path` (made, or made again if something else is there),
    mode 0600, held open for reading and writing."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        _make_fifo(self.path)
        # Read-write, so that the FIFO always has a writer: the poller never reads EOF when a
        # notifier closes its end, and opening never waits for one.
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self._readable = select.poll()
        self._readable.register(self._fd, select.POLLIN)

    def wait(self, timeout_s: float) -> bool:
        """Until a wake-up comes or `timeout_s` has passed; whether one came. Every wake-up
        pending then is consumed, so any number of them make one cycle."""
        if not self._readable.poll(timeout_s * 1000):
            return False
        self._drain()
        return True

    def wake(self) -> None:
        """A wake-up from this process (its stop event), through the descriptor it holds."""
        try:
            os.write(self._fd, b"\0")
        except BlockingIOError:  # full: one is pending already
            pass

    def close(self) -> None:
        os.close(self._fd)

    def _drain(self) -> None:
        try:
            while os.read(self._fd, _READ_BYTES):
                pass
        except BlockingIOError:
            pass


def _make_fifo(path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        if not stat.S_ISFIFO(os.lstat(path).st_mode):
            os.unlink(path)  # a file, a link or a socket left there
    except FileNotFoundError:
        pass
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:  # kept from an earlier poller, or made by another one just now
        pass
    os.chmod(path, 0o600)
