"""Run directories of finished tasks are removed once they are older than `poller.run_retention`,
so that a long-running service does not grow without bound.

A task's directory (`<work_dir>/runs/<task>`, every attempt in it) goes when the task is terminal
in the store and no attempt directory changed for the retention period (a directory's time is
that of the last file made or renamed in it: result.json, last of all). What the API shows of a
task (its logs' tails, outputs, checksums) is in the store and stays; the full executor logs in
the run directory go with it. A directory whose task is unknown or still active is kept.

Events (model/events.py) are pruned the same way once older than `poller.event_retention`; a
stream or webhook that was away for longer resumes at the oldest event kept. A sweep of either
runs at most once every SWEEP_EVERY_S, from the poller's cycle.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Callable

from ..clock import rfc3339
from ..database.base import TaskDatabase
from ..model.states import TERMINAL_PHASES

log = logging.getLogger("tes_cts.poller")

SWEEP_EVERY_S = 3600.0


class _Sweeps:
    """When a sweep is due: never without a retention, else at most once every SWEEP_EVERY_S."""

    def __init__(self, retention_s: float | None, clock: Callable[[], float]):
        self.retention_s = retention_s
        self._clock = clock
        self._last_sweep = float("-inf")

    def due(self) -> float | None:
        """Now, if a sweep is due (it then counts as done), else None."""
        now = self._clock()
        if self.retention_s is None or now - self._last_sweep < SWEEP_EVERY_S:
            return None
        self._last_sweep = now
        return now


class EventRetention:
    def __init__(self, retention_s: float | None, database: TaskDatabase, clock: Callable[[], float] = time.time):
        """`retention_s` None: events are kept."""
        self.database = database
        self._sweeps = _Sweeps(retention_s, clock)

    def maybe_sweep(self) -> int:
        """A sweep if one is due: how many events were pruned."""
        now = self._sweeps.due()
        if now is None:
            return 0
        pruned = self.database.prune_events(rfc3339(int((now - self._sweeps.retention_s) * 1e6)))
        if pruned:
            log.info("pruned %d events older than %g s", pruned, self._sweeps.retention_s)
        return pruned


class RunRetention:
    def __init__(self, runs_dir: str | Path, retention_s: float | None, database: TaskDatabase,
                 clock: Callable[[], float] = time.time):
        """`retention_s` None: run directories are kept."""
        self.runs_dir = Path(runs_dir)
        self.retention_s = retention_s
        self.database = database
        self._sweeps = _Sweeps(retention_s, clock)

    def maybe_sweep(self) -> list[str]:
        """A sweep if one is due: the tasks whose run directories were removed."""
        now = self._sweeps.due()
        return [] if now is None else self.sweep(now)

    def sweep(self, now: float) -> list[str]:
        removed = []
        for task_dir in sorted(self.runs_dir.iterdir()) if self.runs_dir.is_dir() else ():
            if task_dir.is_dir() and self._expired(task_dir, now) and self._finished(task_dir.name):
                shutil.rmtree(task_dir, ignore_errors=True)
                removed.append(task_dir.name)
        if removed:
            log.info("removed the run directories of %d finished tasks older than %g s", len(removed), self.retention_s)
        return removed

    def _expired(self, task_dir: Path, now: float) -> bool:
        times = [entry.stat().st_mtime for entry in (task_dir, *task_dir.iterdir())]
        return now - max(times) > self.retention_s

    def _finished(self, task_id: str) -> bool:
        record = self.database.get(task_id)
        return record is not None and record.phase in TERMINAL_PHASES
