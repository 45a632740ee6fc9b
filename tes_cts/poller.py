"""The poller: drives every task to a terminal state, whatever crashed in between.

Each cycle it first reconciles the tasks a backend holds (progress, results, cancels, lost jobs,
time limits), then dispatches queued tasks oldest first. It decides states; backends only report
facts. Every change is a compare-and-set, so several pollers can run at once: a claim carries a
lease, and a lost race is re-read and decided again next cycle.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from typing import Iterator

from . import jobfiles
from .backends.base import Backend, BackendUnavailable, Held, JobRef, JobStatus, Waiting
from .clock import now_us, rfc3339
from .database.base import DatabaseUnavailable, TaskDatabase
from .durations import describe_duration, parse_duration
from .jobfiles import ContainerSettings, Job, Result
from .model.query import Cursor, TaskQuery
from .model.record import TaskRecord
from .model.states import Phase, TesState
from .storage.preflight import InputPreflight
from .tasks.attempts import (
    EXECUTOR_KEY,
    add_system_log,
    attempt_log,
    begin_wait,
    current_attempt,
    end_wait,
    last_system_log,
    next_attempt,
)
from .tasks.lifecycle import move, update

log = logging.getLogger("tes_cts.poller")

# The order in which a dispatched task moves; the poller walks it one step at a time, so a
# task whose worker raced ahead still passes every state.
PROGRESS_ORDER = (Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING, Phase.STAGING_OUT)
STEP_PHASE = {jobfiles.STAGING_IN: Phase.STAGING_IN, jobfiles.RUNNING: Phase.RUNNING,
              jobfiles.STAGING_OUT: Phase.STAGING_OUT}
OUTCOME_PHASE = {jobfiles.COMPLETE: Phase.COMPLETE, jobfiles.EXECUTOR_ERROR: Phase.EXECUTOR_ERROR,
                 jobfiles.SYSTEM_ERROR: Phase.SYSTEM_ERROR}
# The worker enforces the runtime limit itself; the poller steps in only if it did not.
RUNTIME_LIMIT_GRACE_S = 60
# Tasks a backend holds: each cycle polls all of them in one call.
ACTIVE_STATES = (TesState.INITIALIZING, TesState.RUNNING, TesState.CANCELING)
# When the attempt's worker started (a job may wait in a backend's queue long after submission):
# the runtime limit counts from here.
RUNNING_SINCE_KEY = "_running_us"


@dataclass(frozen=True)
class PollerConfig:
    interval_s: float = 1.0
    lease_s: float = 30.0
    max_attempts: int = 3
    batch_size: int = 100
    engine_wait_s: float = 0.0          # 0: queued tasks wait for the engine as long as it takes
    unmatched_wait_s: float = 0.0       # fail a job no machine can run after this long (0: never)
    runtime_limit_s: float | None = None  # default when a task has no `runtime` parameter
    containers: ContainerSettings = ContainerSettings()
    file_roots: tuple[str, ...] = ()
    s3_stores: tuple[dict, ...] = ()  # storage.config.public_stores: what a worker may know
    preflight: InputPreflight | None = None  # None: inputs were checked at create, or nothing to check


class Poller:
    def __init__(self, store: TaskDatabase, backend: Backend, config: PollerConfig, poller_id: str | None = None):
        self.store = store
        self.backend = backend
        self.config = config
        self.id = poller_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def run(self, stop: threading.Event) -> None:
        log.info("poller %s started (backend %s)", self.id, self.backend.kind)
        while not stop.is_set():
            try:
                self.cycle()
            except DatabaseUnavailable as exc:
                log.warning("store unavailable, retrying: %s", exc)
            except Exception:  # one bad cycle must not stop the service's only reconciler
                log.exception("poller cycle failed; continuing")
            stop.wait(self.config.interval_s)

    def cycle(self) -> None:
        self.reconcile()
        self.dispatch()

    # --- tasks a backend holds --------------------------------------------------------------

    def reconcile(self) -> None:
        """One poll for every task a backend holds, so that a backend which reads its whole queue
        in one call (HTCondor) makes the same few calls per cycle for ten tasks or ten thousand.
        Tasks are read in batches twice: once for their jobs, once to decide."""
        polled: dict[str, JobRef] = {}
        for state in ACTIVE_STATES:
            for batch in self._batches(state):
                polled.update((r.id, ref) for r in batch if (ref := self._job_ref(r)) is not None)
        statuses = self.backend.poll(list(polled.values())) if polled else {}
        for state in ACTIVE_STATES:
            for batch in self._batches(state):
                for record in batch:
                    ref = self._job_ref(record)
                    if ref is not None and polled.get(record.id) != ref:
                        continue  # dispatched or retried since the poll: the next cycle decides
                    try:
                        self._reconcile_one(record, ref, statuses.get(ref.backend_job_id) if ref else None)
                    except BackendUnavailable as exc:
                        log.warning("task %s: backend unavailable, will retry: %s", record.id, exc)

    def _reconcile_one(self, record: TaskRecord, ref: JobRef | None, status: JobStatus | None) -> None:
        if record.phase is Phase.CANCELING:
            self._finish_cancel(record, ref, status)
        elif ref is None or status is None:
            self._attempt_failed(record, ref, "the backend has no record of this attempt")
        elif status.result is not None:
            self._apply_result(record, ref, status.result, status.host)
        elif status.lost is not None:
            self._attempt_failed(record, ref, status.lost)
        elif status.evicted is not None:
            self._attempt_failed(record, ref, f"evicted: {status.evicted}")
        elif status.held is not None:
            self._held(record, ref, status.held)
        elif status.removed is not None:
            self._system_error(record, ref, status.removed)
        elif status.waiting is not None:
            self._waiting(record, ref, status.waiting)
        else:
            if status.progress is not None:  # first, so that a job that has just started counts from now
                record = self._advance(record, STEP_PHASE[status.progress.step], status.progress.executor)
            if record is not None and self._over_runtime_limit(record):
                self._stop_over_limit(record, ref)

    def _finish_cancel(self, record: TaskRecord, ref: JobRef | None, status: JobStatus | None) -> None:
        if ref is not None:
            self.backend.cancel(ref)

        def record_cancel(r: TaskRecord) -> None:
            if r.logs:
                entry = r.logs[-1]
                if status is not None and status.result is not None:
                    _fill_log(entry, status.result, status.host)
                entry.setdefault("end_time", rfc3339(now_us()))
                add_system_log(r, "canceled by the user")

        reason = "canceled by the user; worker and containers stopped" if ref else "canceled by the user"
        move(self.store, record, Phase.CANCELED, reason, record_cancel)

    def _apply_result(self, record: TaskRecord, ref: JobRef, result: Result, host: str | None) -> None:
        if result.outcome == jobfiles.CANCELED:  # stopped by a signal that was not ours
            self._attempt_failed(record, ref, f"the worker was stopped from outside: {result.reason}")
            return
        outcome = OUTCOME_PHASE[result.outcome]
        if outcome is not Phase.SYSTEM_ERROR:
            # Outputs are staged before any outcome but a system error, so walk there first.
            record = self._advance(record, Phase.STAGING_OUT, None)
            if record is None or record.phase is not Phase.STAGING_OUT:
                return
        move(self.store, record, outcome, result.reason, lambda r: _fill_log(r.logs[-1], result, host))

    def _advance(self, record: TaskRecord, target: Phase, executor: int | None) -> TaskRecord | None:
        """Move forward one phase at a time up to `target` (and to the reported executor)."""
        while record is not None:
            here, goal = PROGRESS_ORDER.index(record.phase), PROGRESS_ORDER.index(target)
            running = record.logs[-1].get(EXECUTOR_KEY, 0)
            if here < goal:
                nxt = PROGRESS_ORDER[here + 1]
                change = {Phase.STAGING_IN: _running_since, Phase.RUNNING: _at_executor(0)}.get(nxt)
                record = move(self.store, record, nxt, _step_reason(nxt, 0), change)
            elif target is Phase.RUNNING and executor is not None and executor > running:
                record = move(self.store, record, Phase.RUNNING, _step_reason(Phase.RUNNING, running + 1),
                              _at_executor(running + 1))
            else:
                return record
        return None

    def _attempt_failed(self, record: TaskRecord, ref: JobRef | None, reason: str) -> None:
        """A system fault, not the task's doing: retry with a new attempt, up to the limit."""
        if ref is not None:
            self.backend.cancel(ref)  # whatever the attempt left running goes
        attempt = current_attempt(record)

        def close_attempt(r: TaskRecord) -> None:
            r.logs[-1].setdefault("end_time", rfc3339(now_us()))
            add_system_log(r, f"attempt {attempt} failed: {reason}")

        if attempt < self.config.max_attempts:
            move(self.store, record, Phase.CREATED,
                 f"attempt {attempt} failed: {reason}; retrying as attempt {attempt + 1} of {self.config.max_attempts}",
                 close_attempt)
        else:
            move(self.store, record, Phase.SYSTEM_ERROR,
                 f"{reason} (gave up after {attempt} attempts)", close_attempt)

    def _held(self, record: TaskRecord, ref: JobRef, held: Held) -> None:
        """Never left held, never shown as running: a transient hold (a machine or a transfer
        failed) is retried as a new attempt, any other fails the task, both with the reason."""
        reason = f"held: {held.reason}"
        if held.transient:
            self._attempt_failed(record, ref, reason)
        else:
            self._system_error(record, ref, reason)

    def _waiting(self, record: TaskRecord, ref: JobRef, waiting: Waiting) -> None:
        limit = self.config.unmatched_wait_s
        since = waiting.unmatched_since_us
        if limit and since is not None and now_us() - since > limit * 1e6:
            self._system_error(record, ref, f"{waiting.reason} for more than {describe_duration(limit)}")
        else:
            self._note(record, f"waiting: {waiting.reason}")

    def _over_runtime_limit(self, record: TaskRecord) -> bool:
        limit = self._runtime_limit_s(record)
        entry = record.logs[-1] if record.logs else {}
        started = entry.get(RUNNING_SINCE_KEY, entry.get("_started_us"))
        return limit is not None and started is not None and now_us() - started > (limit + RUNTIME_LIMIT_GRACE_S) * 1e6

    def _stop_over_limit(self, record: TaskRecord, ref: JobRef) -> None:
        reason = f"exceeded runtime limit of {describe_duration(self._runtime_limit_s(record))}"
        self._system_error(record, ref, reason, f"{reason}; stopped by the poller")

    def _system_error(self, record: TaskRecord, ref: JobRef | None, reason: str, note: str | None = None) -> None:
        """A fault a new attempt would meet again: stop the job, fail the task, say why."""
        if ref is not None:
            self.backend.cancel(ref)

        def close(r: TaskRecord) -> None:
            r.logs[-1].setdefault("end_time", rfc3339(now_us()))
            add_system_log(r, note or reason)

        move(self.store, record, Phase.SYSTEM_ERROR, reason, close)

    # --- queued tasks -------------------------------------------------------------------------

    def dispatch(self) -> None:
        engine_problem = self.backend.unavailable()
        for batch in self._batches(TesState.QUEUED):
            for record in batch:
                if record.phase is Phase.CREATED:
                    self._dispatch(record, engine_problem)
                elif record.phase is Phase.PREFLIGHT and _lease_expired(record):
                    self._resume(record)

    def _dispatch(self, record: TaskRecord, engine_problem: str | None) -> None:
        attempt = next_attempt(record)
        job = self._job(record, attempt)
        never = self.backend.never_fits(job)
        if never:
            move(self.store, record, Phase.SYSTEM_ERROR, never, lambda r: add_system_log(r, never))
            return
        if engine_problem:
            self._wait_for_engine(record, engine_problem)
            return
        if not self.backend.admits(job):
            self._wait(record, "slot", "a free slot",
                       f"waiting: the {self.backend.kind} backend has no free slot for this task's resources")
            return

        def claim(r: TaskRecord) -> None:
            end_wait(r)  # before the entry of a retry exists: said where the wait was noted
            entry = attempt_log(r, attempt)
            entry.setdefault("metadata", {}).update({"backend": self.backend.kind, "attempt": str(attempt)})
            r.lease = self._lease()

        claimed = move(self.store, record, Phase.PREFLIGHT, f"attempt {attempt} claimed by poller {self.id}", claim)
        if claimed is not None:
            self._preflight_and_submit(claimed, attempt)

    def _preflight_and_submit(self, record: TaskRecord, attempt: int) -> None:
        checked = self._preflight(record)
        if checked is not None:
            self._submit(checked, self._job(checked, attempt))

    def _preflight(self, record: TaskRecord) -> TaskRecord | None:
        """Verify the inputs (checksums, sizes, ETags) once, before the first attempt; a bad
        input fails the task here, with every offending object named."""
        inputs = record.task.get("inputs") or []
        if self.config.preflight is None or record.verified_inputs or not any("url" in i for i in inputs):
            return record
        report = self.config.preflight(inputs)
        if report.problems:
            reason = "input check failed: " + "; ".join(report.problems)

            def explain(r: TaskRecord) -> None:
                for problem in report.problems:
                    add_system_log(r, problem)

            move(self.store, record, Phase.SYSTEM_ERROR, reason, explain)
            return None
        if not report.verified:
            return record
        return update(self.store, record, lambda r: setattr(r, "verified_inputs", report.verified))

    def _resume(self, record: TaskRecord) -> None:
        """A poller died between claiming and recording the submission: take the claim over.
        Submitting again is safe: a backend returns the job it already started for the attempt."""
        previous = (record.lease or {}).get("owner", "unknown")
        taken = update(self.store, record, lambda r: setattr(r, "lease", self._lease()))
        if taken is not None:
            log.info("task %s: took over the claim of poller %s", record.id, previous)
            self._preflight_and_submit(taken, current_attempt(taken))

    def _submit(self, record: TaskRecord, job: Job) -> None:
        try:
            job_id = self.backend.submit(job, record.owner)
        except BackendUnavailable as exc:
            move(self.store, record, Phase.CREATED, f"not submitted, will retry: {exc}",
                 lambda r: setattr(r, "lease", None))
            return

        def submitted(r: TaskRecord) -> None:
            entry = r.logs[job.attempt - 1]
            entry["start_time"] = rfc3339(now_us())
            entry["_started_us"] = now_us()
            entry["metadata"].update({"backend_job_id": job_id})
            r.lease = None

        reason = f"submitted to the {self.backend.kind} backend as job {job_id}"
        if move(self.store, record, Phase.SUBMITTED, reason, submitted) is None:
            # Changed meanwhile (canceled, most likely): unless the task records this very job,
            # nothing will ever poll it, so it must not run on.
            latest = self.store.get(record.id)
            recorded = self._job_ref(latest) if latest is not None else None
            if recorded is None or recorded.backend_job_id != job_id:
                self.backend.cancel(JobRef(record.id, job.attempt, job_id, job.run_dir))

    def _wait_for_engine(self, record: TaskRecord, problem: str) -> None:
        waited_s = (now_us() - record.created_us) / 1e6
        limit = self.config.engine_wait_s
        if limit and waited_s > limit:
            reason = f"the {self.backend.kind} backend was unavailable for more than {describe_duration(limit)}: {problem}"
            move(self.store, record, Phase.SYSTEM_ERROR, reason, lambda r: add_system_log(r, reason))
            return
        self._wait(record, "engine", f"the {self.backend.kind} backend: {problem}", f"waiting: {problem}")

    def _note(self, record: TaskRecord, note: str) -> None:
        """Tell a queued task's owner why it waits: once, not every cycle."""
        if last_system_log(record) != note:
            update(self.store, record, lambda r: add_system_log(r, note))

    def _wait(self, record: TaskRecord, kind: str, waited_for: str, note: str) -> None:
        """Like `_note`, for a task not yet claimed: the claim then says how long it waited."""
        if last_system_log(record) != note:
            update(self.store, record, lambda r: begin_wait(r, kind, waited_for, note))

    # --- helpers ------------------------------------------------------------------------------

    def _job(self, record: TaskRecord, attempt: int) -> Job:
        return Job(
            task_id=record.id, attempt=attempt, task=record.task,
            run_dir=self.backend.run_dir(record.id, attempt),
            containers=self.config.containers, file_roots=self.config.file_roots,
            runtime_limit_s=self._runtime_limit_s(record),
            verified_inputs=record.verified_inputs,
            s3_stores=list(self.config.s3_stores),
        )

    def _job_ref(self, record: TaskRecord) -> JobRef | None:
        if not record.logs:
            return None
        job_id = (record.logs[-1].get("metadata") or {}).get("backend_job_id")
        if not job_id:
            return None
        attempt = current_attempt(record)
        return JobRef(record.id, attempt, job_id, self.backend.run_dir(record.id, attempt))

    def _runtime_limit_s(self, record: TaskRecord) -> float | None:
        given = ((record.task.get("resources") or {}).get("backend_parameters") or {}).get("runtime")
        return parse_duration(given) if given else self.config.runtime_limit_s

    def _lease(self) -> dict:
        return {"owner": self.id, "expires_us": now_us() + int(self.config.lease_s * 1e6)}

    def _batches(self, state: TesState) -> Iterator[list[TaskRecord]]:
        after = None
        while True:
            batch = self.store.query(TaskQuery(limit=self.config.batch_size, state=state, after=after, oldest_first=True))
            if batch:
                yield batch
            if len(batch) < self.config.batch_size:
                return
            after = Cursor(batch[-1].created_us, batch[-1].id)


def _lease_expired(record: TaskRecord) -> bool:
    return record.lease is None or record.lease.get("expires_us", 0) < now_us()


def _running_since(record: TaskRecord) -> None:
    record.logs[-1][RUNNING_SINCE_KEY] = now_us()


def _at_executor(index: int):
    def change(record: TaskRecord) -> None:
        record.logs[-1][EXECUTOR_KEY] = index

    return change


def _step_reason(phase: Phase, executor: int) -> str:
    if phase is Phase.STAGING_IN:
        return "worker started: staging inputs"
    if phase is Phase.RUNNING:
        return f"running executor {executor}"
    return "executors finished: staging outputs"


# tesOutputFileLog has no checksum field and strict clients refuse unknown keys, so each output's
# CRC64NVME goes into the task log's metadata under this key prefix followed by the output URL.
OUTPUT_CHECKSUM_KEY = "crc64nvme:"


def _fill_log(entry: dict, result: Result, host: str | None) -> None:
    entry["end_time"] = result.end_time
    entry["logs"] = result.executor_logs
    entry["outputs"] = result.outputs
    entry.setdefault("system_logs", []).extend(result.system_logs)
    metadata = entry.setdefault("metadata", {})
    metadata.update({k: str(v) for k, v in result.metadata.items()})
    metadata.update({OUTPUT_CHECKSUM_KEY + o["url"]: o["crc64nvme"] for o in result.outputs if o.get("crc64nvme")})
    if host and "host" not in metadata:
        metadata["host"] = host
