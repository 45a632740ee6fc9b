"""An executor's full stdout or stderr, read from the file the worker writes as the executor runs
(`jobfiles.executor_log`: `<runs>/<task>/<attempt>/logs/executor-<n>.<stream>`), one part at a
time: what one answer of the logs extension carries. Nothing here knows of HTTP or of records.

The task id and the numbers come from a URL, so the file is reached one name at a time from the
runs directory, each opened with O_NOFOLLOW: no name can climb out (a name is never `..` or holds
a `/`) and no symbolic link, wherever it was planted, leads a read outside the run directory.
"""

from __future__ import annotations

import errno
import os
import stat
from enum import Enum
from pathlib import Path

from ..jobfiles import EXECUTOR_STREAMS, executor_log, run_dir_in

# The most one read returns, however much is asked for: an answer is held in memory whole, and a
# client that wants more asks again from where it got to.
MAX_READ_BYTES = 8 * 1024 * 1024

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO never blocks the open


class Absence(Enum):
    """Why there is no log to read."""

    NO_RUN_DIR = "the attempt has no run directory"  # not made yet, or removed after poller.run_retention
    NOT_WRITTEN = "the executor has not written this log"  # it has not started (or never ran)
    NOT_A_FILE = "the log's path is not a plain file"  # a link or anything else: never read


class LogNotThere(Exception):
    def __init__(self, absence: Absence):
        super().__init__(absence.value)
        self.absence = absence


class ExecutorLog:
    """An open log: its size when opened (it may be growing) and reads of parts of it, never
    beyond that size, so that an answer and the size it reports agree."""

    def __init__(self, fd: int):
        self._fd = fd
        self.size = os.fstat(fd).st_size

    def read(self, offset: int, length: int | None = None) -> bytes:
        """The bytes from `offset`, at most `length` of them and MAX_READ_BYTES; none from the end on."""
        asked = MAX_READ_BYTES if length is None else min(length, MAX_READ_BYTES)
        wanted = min(asked, max(self.size - offset, 0))
        parts, read = [], 0
        while read < wanted:
            part = os.pread(self._fd, wanted - read, offset + read)
            if not part:  # truncated since it was opened: what there is
                break
            parts.append(part)
            read += len(part)
        return b"".join(parts)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> ExecutorLog:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def open_executor_log(runs: Path, task_id: str, attempt: int, executor: int, stream: str) -> ExecutorLog:
    """The log `stream` of executor `executor` (from 0) of `attempt` (1 for the first) of the
    task. Raises LogNotThere, or ValueError for a name that could not be one of ours."""
    if stream not in EXECUTOR_STREAMS:
        raise ValueError(f"{stream!r} is not one of {', '.join(EXECUTOR_STREAMS)}")
    if not _plain_name(task_id) or attempt < 1 or executor < 0:
        raise ValueError(f"no run directory is named by task {task_id!r}, attempt {attempt}, executor {executor}")
    run_dir = run_dir_in(runs, task_id, attempt)
    *directories, file_name = executor_log(run_dir, executor, stream).relative_to(runs).parts
    run_dir_depth = len(run_dir.relative_to(runs).parts)
    try:
        fd = os.open(runs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the operator's work dir: links allowed
    except FileNotFoundError:
        raise LogNotThere(Absence.NO_RUN_DIR) from None
    steps = [(name, _DIRECTORY_FLAGS, Absence.NO_RUN_DIR if depth <= run_dir_depth else Absence.NOT_WRITTEN)
             for depth, name in enumerate(directories, start=1)]
    steps.append((file_name, _FILE_FLAGS, Absence.NOT_WRITTEN))
    try:
        for name, flags, when_missing in steps:
            below = _open_below(fd, name, flags, when_missing)
            os.close(fd)
            fd = below
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LogNotThere(Absence.NOT_A_FILE)
        return ExecutorLog(fd)
    except BaseException:
        os.close(fd)
        raise


def _open_below(directory_fd: int, name: str, flags: int, when_missing: Absence) -> int:
    """`name` in the directory, opened with `flags`, never through a symbolic link."""
    try:
        return os.open(name, flags, dir_fd=directory_fd)
    except FileNotFoundError:
        raise LogNotThere(when_missing) from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symbolic link, or a file where a directory goes
            raise LogNotThere(Absence.NOT_A_FILE) from None
        raise


def _plain_name(name: str) -> bool:
    """One path component of its own: not empty, no separator or NUL, not `.` or `..`."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name
