"""Queued tasks, oldest first: claim each with a lease, check its inputs, submit its attempt's
job; or say why it waits, or why it can never run."""

from __future__ import annotations

import logging

from ..backends.base import Backend, BackendUnavailable, JobRef
from ..clock import now_us
from ..database.base import TaskDatabase
from ..durations import describe_duration
from ..jobfiles import Job
from ..model.record import TaskRecord
from ..model.states import Phase, TesState
from ..tasks.attempts import current_attempt, last_system_log, next_attempt
from ..tasks.jobs import job_for
from . import moves
from .config import PollerConfig
from .records import batches, job_ref

log = logging.getLogger("tes_cts.poller")


class Dispatcher:
    def __init__(self, database: TaskDatabase, backend: Backend, config: PollerConfig, poller_id: str):
        self.database = database
        self.backend = backend
        self.config = config
        self.poller_id = poller_id

    def dispatch(self) -> int:
        """Every queued task looked at, oldest first; returns how many there were."""
        engine = _EngineCheck(self.backend)
        seen = 0
        for batch in batches(self.database, TesState.QUEUED, self.config.batch_size):
            seen += len(batch)
            for record in batch:
                if record.phase is Phase.CREATED:
                    self._dispatch(record, engine)
                elif record.phase is Phase.PREFLIGHT and _lease_expired(record):
                    self._resume(record)
        return seen

    def _dispatch(self, record: TaskRecord, engine: _EngineCheck) -> None:
        slot_note = f"waiting: the {self.backend.kind} backend has no free slot for this task's resources"
        if last_system_log(record) == slot_note and not self.backend.has_free_slot():
            return  # nothing has changed for it since it was told
        attempt = next_attempt(record)
        job = self._job(record, attempt)
        never = self.backend.never_fits(job)
        if never:
            moves.apply(self.database, record, moves.failed_before_start(never))
            return
        if not self.backend.admits(job):
            self._wait(record, "slot", "a free slot", slot_note)
            return
        if engine.problem():
            self._wait_for_engine(record, engine.problem())
            return
        claim = moves.claimed(attempt, self.poller_id, self.backend.kind, self._lease())
        claimed = moves.apply(self.database, record, claim)
        if claimed is not None:
            self._preflight_and_submit(claimed, attempt)

    def _resume(self, record: TaskRecord) -> None:
        """A poller died between claiming and recording the submission: take the claim over.
        Submitting again is safe: a backend returns the job it already started for the attempt."""
        previous = (record.lease or {}).get("owner", "unknown")
        taken = moves.apply(self.database, record, moves.claim_taken_over(self._lease()))
        if taken is not None:
            log.info("task %s: took over the claim of poller %s", record.id, previous)
            self._preflight_and_submit(taken, current_attempt(taken))

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
            moves.apply(self.database, record, moves.input_check_failed(report.problems))
            return None
        if not report.verified:
            return record
        return moves.apply(self.database, record, moves.inputs_verified(report.verified))

    def _submit(self, record: TaskRecord, job: Job) -> None:
        try:
            job_id = self.backend.submit(job, record.owner)
        except BackendUnavailable as exc:
            moves.apply(self.database, record, moves.not_submitted(exc))
            return
        if moves.apply(self.database, record, moves.submitted(job.attempt, self.backend.kind, job_id)) is None:
            # Changed meanwhile (canceled, most likely): unless the task records this very job,
            # nothing will ever poll it, so it must not run on.
            latest = self.database.get(record.id)
            recorded = job_ref(latest, self.backend) if latest is not None else None
            if recorded is None or recorded.backend_job_id != job_id:
                self.backend.cancel(JobRef(record.id, job.attempt, job_id, job.run_dir))

    def _wait_for_engine(self, record: TaskRecord, problem: str) -> None:
        waited_s = (now_us() - record.created_us) / 1e6
        limit = self.config.engine_wait_s
        if limit and waited_s > limit:
            reason = f"the {self.backend.kind} backend was unavailable for more than {describe_duration(limit)}: {problem}"
            moves.apply(self.database, record, moves.failed_before_start(reason))
        else:
            self._wait(record, "engine", f"the {self.backend.kind} backend: {problem}", f"waiting: {problem}")

    def _wait(self, record: TaskRecord, kind: str, waited_for: str, note: str) -> None:
        """Tell a queued task's owner why it waits, once, not every cycle; the claim then says
        how long it waited."""
        if last_system_log(record) != note:
            moves.apply(self.database, record, moves.wait_noted(kind, waited_for, note))

    def _job(self, record: TaskRecord, attempt: int) -> Job:
        return job_for(record, attempt, self.backend.run_dir(record.id, attempt),
                       containers=self.config.containers, file_roots=self.config.file_roots,
                       default_runtime_limit_s=self.config.runtime_limit_s, s3_stores=self.config.s3_stores,
                       http_allow=self.config.http_allow)

    def _lease(self) -> dict:
        return {"owner": self.poller_id, "expires_us": now_us() + int(self.config.lease_s * 1e6)}


def _lease_expired(record: TaskRecord) -> bool:
    return record.lease is None or record.lease.get("expires_us", 0) < now_us()


class _EngineCheck:
    """Whether the backend's engine answers, asked once a cycle and only once a task could start."""

    def __init__(self, backend: Backend):
        self._backend = backend
        self._asked = False
        self._problem: str | None = None

    def problem(self) -> str | None:
        if not self._asked:
            self._problem, self._asked = self._backend.engine_problem(), True
        return self._problem
