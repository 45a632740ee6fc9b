"""The disk an attempt takes: how much it has written, whether that is over its limit, and
whether the file system of its run directory is full.

An attempt's disk is its run directory (inputs, volumes, work dirs, outputs, logs) and, where
the engine tells, the writable layer of the container that runs. Its limit is the task's
`resources.disk_gb`, else the setting `containers.default_disk_gb` (0: none). The executors check
it while a container runs, at most every CHECK_EVERY_S and so that the walks take no more than
1/CHECK_COST_SHARE of the time, and stop the container that goes over it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from ..jobfiles import Job

CHECK_EVERY_S = 1.0
CHECK_COST_SHARE = 50
# Below this much free space a file system counts as full: what a program that failed to write
# leaves behind is a few blocks at most.
FULL_BELOW_BYTES = 1 << 20
GB = 10**9  # TES's disk_gb is in gigabytes, as ram_gb is


def disk_limit_bytes(job: Job) -> int | None:
    """The task's `disk_gb`, else the default of the settings, in bytes; None: no limit."""
    given = (job.task.get("resources") or {}).get("disk_gb") or job.containers.default_disk_gb
    return int(given * GB) if given else None


def used_bytes(root: Path) -> int:
    """The blocks the files under `root` take (not their sizes: a sparse file takes what it
    wrote), each hard-linked file once; what vanishes during the walk counts as gone."""
    total, seen = 0, set()
    pending = [root]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                stat = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
            except OSError:
                continue
            if stat.st_nlink > 1:
                if (stat.st_dev, stat.st_ino) in seen:
                    continue
                seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_blocks * 512
    return total


def file_system_full(path: str | os.PathLike) -> str | None:
    """None while the file system of `path` has room; else a sentence that says it is full."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    free = stats.f_bavail * stats.f_frsize
    if free >= FULL_BELOW_BYTES:
        return None
    return f"the file system of the run directory is full ({megabytes(free)} free of {megabytes(stats.f_blocks * stats.f_frsize)})"


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


class DiskLimit:
    """The limit of one attempt, checked while its containers run."""

    def __init__(self, run_dir: str, limit_bytes: int, clock: Callable[[], float] = time.monotonic):
        self.run_dir = Path(run_dir)
        self.limit_bytes = limit_bytes
        self._clock = clock
        self._next_check = 0.0

    def exceeded(self, index: int, container_bytes: Callable[[], int | None]) -> str | None:
        """None while the attempt is within its limit (or it is not time to look again); else why
        executor `index` is stopped. `container_bytes` is what the container's writable layer
        holds (None: the engine cannot tell)."""
        started = self._clock()
        if started < self._next_check:
            return None
        in_run_dir = used_bytes(self.run_dir)
        in_layer = container_bytes() or 0
        self._next_check = started + max(CHECK_EVERY_S, CHECK_COST_SHARE * (self._clock() - started))
        if in_run_dir + in_layer <= self.limit_bytes:
            return None
        return (f"executor {index} exceeded the task's disk limit of {self.limit_bytes / GB:g} GB (resources.disk_gb, "
                f"else the setting containers.default_disk_gb): {megabytes(in_run_dir)} in its inputs, volumes, outputs and logs"
                + (f" and {megabytes(in_layer)} in its container" if in_layer else ""))
