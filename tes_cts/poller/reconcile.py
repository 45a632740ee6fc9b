"""The tasks a backend holds (INITIALIZING, RUNNING, CANCELING): one poll for all of them, then
one decision per task on the fact its backend reports."""

from __future__ import annotations

import logging
from typing import Iterator

from ..backends.base import (
    Backend,
    BackendUnavailable,
    Evicted,
    Finished,
    Held,
    JobRef,
    JobStatus,
    Lost,
    NoNews,
    Removed,
    Running,
    Waiting,
)
from ..clock import now_us
from ..database.base import TaskDatabase
from ..durations import describe_duration
from ..jobfiles import Progress, Result
from ..metrics import record as metrics
from ..model.record import TaskRecord
from ..model.states import Phase, TesState
from ..tasks.attempts import EXECUTOR_KEY, current_attempt, last_system_log, runtime_started_us
from ..tasks.jobs import runtime_limit_s
from . import moves
from .config import PollerConfig
from .records import batches, job_ref

log = logging.getLogger("tes_cts.poller")

# Tasks a backend holds: each cycle polls all of them in one call.
ACTIVE_STATES = (TesState.INITIALIZING, TesState.RUNNING, TesState.CANCELING)
# The order in which a dispatched task moves; the poller walks it one step at a time, so a
# task whose worker raced ahead still passes every state.
PROGRESS_ORDER = (Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING, Phase.STAGING_OUT)
# The worker enforces the runtime limit itself; the poller steps in only if it did not.
RUNTIME_LIMIT_GRACE_S = 60
NO_RECORD = "the backend has no record of this attempt"


class Reconciler:
    def __init__(self, database: TaskDatabase, backend: Backend, config: PollerConfig):
        self.database = database
        self.backend = backend
        self.config = config

    def reconcile(self) -> int:
        """One poll for every task a backend holds, so that a backend which reads its whole queue
        in one call (HTCondor) makes the same few calls per cycle for ten tasks or ten thousand.
        Tasks are read in batches twice: once for their jobs, once to decide. Returns how many
        were decided on."""
        polled = self._jobs_held()
        statuses = self.backend.poll(list(polled.values())) if polled else {}
        decided = 0
        for record in self._held_tasks():
            decided += 1
            ref = job_ref(record, self.backend)
            if ref is not None and polled.get(record.id) != ref:
                continue  # dispatched or retried since the poll: the next cycle decides
            status = statuses.get(ref.backend_job_id) if ref else None
            try:
                self._decide(record, ref, status or Lost(NO_RECORD))
            except BackendUnavailable as exc:
                log.warning("task %s: backend unavailable, will retry: %s", record.id, exc)
        return decided

    def _held_tasks(self) -> Iterator[TaskRecord]:
        for state in ACTIVE_STATES:
            for batch in batches(self.database, state, self.config.batch_size):
                yield from batch

    def _jobs_held(self) -> dict[str, JobRef]:
        return {record.id: ref for record in self._held_tasks() if (ref := job_ref(record, self.backend)) is not None}

    def _decide(self, record: TaskRecord, ref: JobRef | None, status: JobStatus) -> None:
        if record.phase is Phase.CANCELING:
            self._finish_cancel(record, ref, status)
            return
        match status:
            case Finished(result, host):
                self._finish(record, ref, result, host)
            case Lost(reason):
                self._attempt_failed(record, ref, reason)
            case Evicted(reason):
                self._attempt_failed(record, ref, f"evicted: {reason}")
            case Held(reason, transient) if transient:  # a machine or a transfer failed
                self._attempt_failed(record, ref, f"held: {reason}")
            case Held(reason):                  # never left held, never shown as running
                self._system_error(record, ref, f"held: {reason}")
            case Removed(reason):
                self._system_error(record, ref, reason)
            case Waiting():
                self._waiting(record, ref, status)
            case Running(progress):
                self._follow(record, ref, progress)
            case NoNews():
                self._follow(record, ref, None)

    def _finish_cancel(self, record: TaskRecord, ref: JobRef | None, status: JobStatus) -> None:
        if ref is not None:
            self.backend.cancel(ref)
        result, host = (status.result, status.host) if isinstance(status, Finished) else (None, None)
        canceled = moves.apply(self.database, record, moves.canceled(ref is not None, result, host))
        if canceled is not None and result is not None:
            metrics.worker_measurements(result.measurements)

    def _finish(self, record: TaskRecord, ref: JobRef, result: Result, host: str | None) -> None:
        outcome = Phase(result.outcome)
        if outcome is Phase.CANCELED:  # stopped by a signal that was not ours
            self._attempt_failed(record, ref, f"the worker was stopped from outside: {result.reason}")
            return
        # Outputs are staged before any outcome but a system error, so the task walks there first.
        steps = [] if outcome is Phase.SYSTEM_ERROR else steps_to(record, Phase.STAGING_OUT, None)
        if moves.apply(self.database, record, *steps, moves.finished(result, host)) is not None:
            metrics.worker_measurements(result.measurements)  # once: only the move that stored the result counts

    def _follow(self, record: TaskRecord, ref: JobRef, progress: Progress | None) -> None:
        """Whatever the job reports while it runs, or if nothing: the runtime limit counts."""
        steps = steps_to(record, Phase(progress.step), progress.executor) if progress is not None else []
        if steps:  # first, so that a job that has just started counts from now
            record = moves.apply(self.database, record, *steps)
        if record is not None and self._over_runtime_limit(record):
            self._stop_over_limit(record, ref)

    def _attempt_failed(self, record: TaskRecord, ref: JobRef | None, reason: str) -> None:
        self._stop_job_then(record, ref, moves.attempt_failed(current_attempt(record), self.config.max_attempts, reason))

    def _system_error(self, record: TaskRecord, ref: JobRef | None, reason: str, note: str | None = None) -> None:
        self._stop_job_then(record, ref, moves.system_error(reason, note))

    def _stop_job_then(self, record: TaskRecord, ref: JobRef | None, move: moves.Move) -> None:
        """Whatever the attempt left running goes before the task leaves it."""
        if ref is not None:
            self.backend.cancel(ref)
        moves.apply(self.database, record, move)

    def _waiting(self, record: TaskRecord, ref: JobRef, waiting: Waiting) -> None:
        limit = self.config.unmatched_wait_s
        since = waiting.unmatched_since_us
        if limit and since is not None and now_us() - since > limit * 1e6:
            self._system_error(record, ref, f"{waiting.reason} for more than {describe_duration(limit)}")
            return
        note = f"waiting: {waiting.reason}"
        if last_system_log(record) != note:  # said once, not every cycle
            moves.apply(self.database, record, moves.noted(note))

    def _over_runtime_limit(self, record: TaskRecord) -> bool:
        limit = runtime_limit_s(record, self.config.runtime_limit_s)
        started = runtime_started_us(record.logs[-1] if record.logs else {})
        return limit is not None and started is not None and now_us() - started > (limit + RUNTIME_LIMIT_GRACE_S) * 1e6

    def _stop_over_limit(self, record: TaskRecord, ref: JobRef) -> None:
        reason = f"exceeded runtime limit of {describe_duration(runtime_limit_s(record, self.config.runtime_limit_s))}"
        self._system_error(record, ref, reason, f"{reason}; stopped by the poller")


def steps_to(record: TaskRecord, target: Phase, executor: int | None) -> list[moves.Move]:
    """The moves forward from the record's phase to `target` (and to the reported executor),
    one phase and one executor at a time, so that no state is skipped."""
    here, goal = PROGRESS_ORDER.index(record.phase), PROGRESS_ORDER.index(target)
    steps = [moves.step_into(phase) for phase in PROGRESS_ORDER[here + 1:goal + 1]]
    running = 0 if Phase.RUNNING in PROGRESS_ORDER[here + 1:goal + 1] else record.logs[-1].get(EXECUTOR_KEY, 0)
    if target is Phase.RUNNING and executor is not None:
        steps += [moves.running_executor(index) for index in range(running + 1, executor + 1)]
    return steps
