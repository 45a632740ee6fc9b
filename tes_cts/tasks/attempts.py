"""Attempts and their TES log entries: `logs[n-1]` belongs to attempt n.

An entry without `start_time` is pending: it carries what was said before the attempt began
(dropped backend_parameters, "waiting for the container engine") and becomes the next attempt's.
Keys starting with `_` are the server's own bookkeeping; views never show them.
"""

from __future__ import annotations

from ..clock import now_us
from ..durations import describe_duration
from ..jobfiles import Result
from ..model.record import TaskRecord

BACKEND_JOB_ID_KEY = "backend_job_id"  # in the entry's metadata, once the attempt is submitted
EXECUTOR_KEY = "_executor"  # index of the executor the worker last reported running
# When the attempt was submitted, and when its worker started (a job may wait in a backend's
# queue long after submission): the runtime limit counts from the start, else the submission.
STARTED_US_KEY = "_started_us"
RUNNING_SINCE_KEY = "_running_us"
# tesOutputFileLog has no checksum field and strict clients refuse unknown keys, so each output's
# CRC64NVME goes into the log entry's metadata under this key prefix followed by the output URL.
OUTPUT_CHECKSUM_KEY = "crc64nvme:"
# The wait a queued task's "waiting: ..." note began: {"kind", "since_us", "waited_for"}, so
# that the claim can say the wait is over and how long it lasted.
WAIT_KEY = "_wait"


def next_attempt(record: TaskRecord) -> int:
    if record.logs and "start_time" not in record.logs[-1]:
        return len(record.logs)
    return len(record.logs) + 1


def attempt_log(record: TaskRecord, attempt: int) -> dict:
    """The log entry of `attempt`, created (with its pending predecessors' notes kept) if new."""
    while len(record.logs) < attempt:
        record.logs.append({"logs": [], "outputs": [], "system_logs": []})
    return record.logs[attempt - 1]


def current_attempt(record: TaskRecord) -> int:
    return len(record.logs)


def add_system_log(record: TaskRecord, line: str) -> None:
    _notes_entry(record).setdefault("system_logs", []).append(line)


def last_system_log(record: TaskRecord) -> str | None:
    lines = record.logs[-1].get("system_logs") if record.logs else None
    return lines[-1] if lines else None


def begin_wait(record: TaskRecord, kind: str, waited_for: str, note: str) -> None:
    """Add `note` ("waiting: ...") and remember since when the task waits for `waited_for`.
    A wait of the same kind goes on (its note may change); another kind ends it first."""
    entry = _notes_entry(record)
    if entry.get(WAIT_KEY, {}).get("kind") not in (None, kind):
        end_wait(record)
    wait = entry.setdefault(WAIT_KEY, {"kind": kind, "since_us": now_us()})
    wait["waited_for"] = waited_for
    add_system_log(record, note)


def end_wait(record: TaskRecord) -> None:
    """Say that the task waits no longer, so that its "waiting: ..." note does not read as a
    current problem once the task runs."""
    wait = record.logs[-1].pop(WAIT_KEY, None) if record.logs else None
    if wait:
        waited_s = round((now_us() - wait["since_us"]) / 1e6, 1)
        add_system_log(record, f"waited {describe_duration(waited_s)} for {wait['waited_for']}")


def fill_log(entry: dict, result: Result, host: str | None) -> None:
    """What the worker's result tells of its attempt: executor logs, outputs and their
    checksums, system logs, metadata, and the host it ran on."""
    entry["end_time"] = result.end_time
    entry["logs"] = result.executor_logs
    entry["outputs"] = result.outputs
    entry.setdefault("system_logs", []).extend(result.system_logs)
    metadata = entry.setdefault("metadata", {})
    metadata.update({k: str(v) for k, v in result.metadata.items()})
    metadata.update({OUTPUT_CHECKSUM_KEY + o["url"]: o["crc64nvme"] for o in result.outputs if o.get("crc64nvme")})
    if host and "host" not in metadata:
        metadata["host"] = host


def runtime_started_us(entry: dict) -> int | None:
    """When the attempt's runtime limit began to count: its worker's start, else its submission."""
    return entry.get(RUNNING_SINCE_KEY, entry.get(STARTED_US_KEY))


def _notes_entry(record: TaskRecord) -> dict:
    """Where lines go: the latest entry (a pending one before the attempt starts)."""
    return record.logs[-1] if record.logs else attempt_log(record, 1)
