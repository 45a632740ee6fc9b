"""Attempts and their TES log entries: `logs[n-1]` belongs to attempt n.

An entry without `start_time` is pending: it carries what was said before the attempt began
(dropped backend_parameters, "waiting for the container engine") and becomes the next attempt's.
Keys starting with `_` are the server's own bookkeeping; views never show them.
"""

from __future__ import annotations

from .record import TaskRecord

EXECUTOR_KEY = "_executor"  # index of the executor the worker last reported running


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
    log = record.logs[-1] if record.logs else attempt_log(record, 1)
    log.setdefault("system_logs", []).append(line)


def last_system_log(record: TaskRecord) -> str | None:
    lines = record.logs[-1].get("system_logs") if record.logs else None
    return lines[-1] if lines else None
