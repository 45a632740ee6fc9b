"""Every change the poller makes to a task, by name.

A `Move` says the phase it leads to, the reason the task's history records, and what it sets on
the record; an `Update` sets something without a phase change (a lease, a note). `apply` stores
any number of them, in order, by one compare-and-set (`tasks.lifecycle`). What a change sets is
a named function below, bound to its values, so a move reads as what it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ..clock import now_us, rfc3339
from ..database.base import TaskDatabase
from ..jobfiles import Result
from ..model.record import TaskRecord
from ..model.states import Phase
from ..tasks.attempts import (
    BACKEND_JOB_ID_KEY,
    EXECUTOR_KEY,
    RUNNING_SINCE_KEY,
    STARTED_US_KEY,
    add_system_log,
    attempt_log,
    begin_wait,
    end_wait,
    fill_log,
)
from ..tasks.lifecycle import Change, move_through

CANCELED_LINE = "canceled by the user"


@dataclass(frozen=True)
class Move:
    """To `phase`, for `reason`, setting what `sets` sets."""

    phase: Phase
    reason: str
    sets: Change | None = None


@dataclass(frozen=True)
class Update:
    """No phase change: only what `sets` sets."""

    sets: Change


def apply(database: TaskDatabase, record: TaskRecord, *changes: Move | Update) -> TaskRecord | None:
    """Store `changes` as one write; the stored record, or None if the task changed since
    `record` was read."""
    return move_through(database, record, [
        (change.phase, change.reason, change.sets) if isinstance(change, Move) else (None, "", change.sets)
        for change in changes])


# --- a queued task --------------------------------------------------------------------------------


def wait_noted(kind: str, waited_for: str, note: str) -> Update:
    """The task is not dispatched yet: why (once), and since when it waits for `waited_for`."""
    return Update(partial(begin_wait, kind=kind, waited_for=waited_for, note=note))


def failed_before_start(reason: str, *lines: str) -> Move:
    """The task can never run (it asks for too much, the engine stayed away, an input is bad):
    `lines` (the reason itself if none) go to its system logs; no attempt began, none ends."""
    return Move(Phase.SYSTEM_ERROR, reason, partial(_add_system_logs, lines=lines or (reason,)))


def claimed(attempt: int, poller_id: str, backend_kind: str, lease: dict) -> Move:
    return Move(Phase.PREFLIGHT, f"attempt {attempt} claimed by poller {poller_id}",
                partial(_claim, attempt=attempt, backend_kind=backend_kind, lease=lease))


def claim_taken_over(lease: dict) -> Update:
    return Update(partial(_set_lease, lease=lease))


def inputs_verified(verified: dict) -> Update:
    """What preflight saw of the inputs, which every attempt's worker checks against."""
    return Update(partial(_set_verified_inputs, verified=verified))


def input_check_failed(problems: list[str]) -> Move:
    return failed_before_start("input check failed: " + "; ".join(problems), *problems)


def not_submitted(problem: object) -> Move:
    return Move(Phase.CREATED, f"not submitted, will retry: {problem}", partial(_set_lease, lease=None))


def submitted(attempt: int, backend_kind: str, job_id: str) -> Move:
    return Move(Phase.SUBMITTED, f"submitted to the {backend_kind} backend as job {job_id}",
                partial(_record_submission, attempt=attempt, job_id=job_id))


# --- a task a backend holds -----------------------------------------------------------------------


def worker_started() -> Move:
    return Move(Phase.STAGING_IN, "worker started: staging inputs", _start_runtime_clock)


def running_executor(index: int) -> Move:
    return Move(Phase.RUNNING, f"running executor {index}", partial(_set_executor, index=index))


def staging_outputs() -> Move:
    return Move(Phase.STAGING_OUT, "executors finished: staging outputs")


def step_into(phase: Phase) -> Move:
    """The move into the worker's step `phase` from the step before it."""
    match phase:
        case Phase.STAGING_IN:
            return worker_started()
        case Phase.RUNNING:
            return running_executor(0)
        case Phase.STAGING_OUT:
            return staging_outputs()
    raise ValueError(f"{phase} is not a step of a worker")


def noted(line: str) -> Update:
    return Update(partial(add_system_log, line=line))


def finished(result: Result, host: str | None) -> Move:
    """The worker's result decides: COMPLETE, EXECUTOR_ERROR or SYSTEM_ERROR, with its logs."""
    return Move(Phase(result.outcome), result.reason, partial(_record_result, result=result, host=host))


def attempt_failed(attempt: int, max_attempts: int, reason: str) -> Move:
    """A system fault, not the task's doing: a new attempt, or SYSTEM_ERROR at the limit."""
    ends = partial(_end_attempt, line=f"attempt {attempt} failed: {reason}")
    if attempt < max_attempts:
        return Move(Phase.CREATED,
                    f"attempt {attempt} failed: {reason}; retrying as attempt {attempt + 1} of {max_attempts}", ends)
    return Move(Phase.SYSTEM_ERROR, f"{reason} (gave up after {attempt} attempts)", ends)


def system_error(reason: str, note: str | None = None) -> Move:
    """A fault a new attempt would meet again: the attempt ends with `note` (else the reason)."""
    return Move(Phase.SYSTEM_ERROR, reason, partial(_end_attempt, line=note or reason))


def canceled(job_stopped: bool, result: Result | None, host: str | None) -> Move:
    reason = f"{CANCELED_LINE}; worker and containers stopped" if job_stopped else CANCELED_LINE
    return Move(Phase.CANCELED, reason, partial(_record_cancel, result=result, host=host))


# --- what the changes set -------------------------------------------------------------------------


def _add_system_logs(record: TaskRecord, *, lines: tuple[str, ...]) -> None:
    for line in lines:
        add_system_log(record, line)


def _claim(record: TaskRecord, *, attempt: int, backend_kind: str, lease: dict) -> None:
    end_wait(record)  # before the entry of a retry exists: said where the wait was noted
    entry = attempt_log(record, attempt)
    entry.setdefault("metadata", {}).update({"backend": backend_kind, "attempt": str(attempt)})
    record.lease = lease


def _set_lease(record: TaskRecord, *, lease: dict | None) -> None:
    record.lease = lease


def _set_verified_inputs(record: TaskRecord, *, verified: dict) -> None:
    record.verified_inputs = verified


def _record_submission(record: TaskRecord, *, attempt: int, job_id: str) -> None:
    entry, started_us = record.logs[attempt - 1], now_us()
    entry["start_time"] = rfc3339(started_us)
    entry[STARTED_US_KEY] = started_us
    entry["metadata"].update({BACKEND_JOB_ID_KEY: job_id})
    record.lease = None


def _start_runtime_clock(record: TaskRecord) -> None:
    record.logs[-1][RUNNING_SINCE_KEY] = now_us()


def _set_executor(record: TaskRecord, *, index: int) -> None:
    record.logs[-1][EXECUTOR_KEY] = index


def _record_result(record: TaskRecord, *, result: Result, host: str | None) -> None:
    fill_log(record.logs[-1], result, host)


def _end_attempt(record: TaskRecord, *, line: str) -> None:
    record.logs[-1].setdefault("end_time", rfc3339(now_us()))
    add_system_log(record, line)


def _record_cancel(record: TaskRecord, *, result: Result | None, host: str | None) -> None:
    if record.logs:  # a task canceled before any attempt has no entry to end
        if result is not None:
            fill_log(record.logs[-1], result, host)
        _end_attempt(record, line=CANCELED_LINE)
