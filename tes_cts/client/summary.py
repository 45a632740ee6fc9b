"""Tasks as people read them: one task's summary (`task get`) and a table of tasks (`task list`).

Times, exit codes and outputs come from the task's last attempt (`logs[-1]`): that is the one
whose outcome is the task's. Executors and attempts are numbered from 0, as `task logs
--executor/--attempt` take them."""

from __future__ import annotations

import shlex
from typing import Iterable

from .api import TERMINAL_STATES, last_attempt, output_checksum

MISSING = "-"
RESULT_KEY_PREFIX = "result."  # what the worker records of a task's result file (worker/task_result.py)


def task_summary(task: dict) -> str:
    """The task as labelled lines: what it is, how far it got, then its executors, outputs and
    system logs (the sections the view has)."""
    attempts = task.get("logs") or []
    last = last_attempt(task)
    lines = _labelled([
        ("id", task.get("id")),
        ("name", task.get("name")),
        ("state", task.get("state") or "UNKNOWN"),
        ("tags", _tags_text(task.get("tags") or {})),
        ("created", task.get("creation_time")),
        ("started", last.get("start_time")),
        ("ended", last.get("end_time")),
        ("attempts", f"{len(attempts)} (times, exit codes and outputs of the last)" if len(attempts) > 1 else None),
    ])
    finished = task.get("state") in TERMINAL_STATES
    lines += _section("executors", _executor_lines(task.get("executors") or [], last.get("logs") or [], finished))
    lines += _section("outputs", _output_lines(last))
    lines += _section("result", _result_lines(last))
    lines += _system_log_lines(attempts)
    return "\n".join(lines)


def task_table(tasks: Iterable[dict]) -> str:
    """One row per task under a header, columns aligned; the name last, since it may hold spaces."""
    rows = [("ID", "STATE", "CREATED", "NAME")]
    rows += [(task.get("id") or MISSING, task.get("state") or MISSING, task.get("creation_time") or MISSING,
              task.get("name") or MISSING) for task in tasks]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[-1]])
                     for row in rows)


def _labelled(fields: list[tuple[str, str | None]]) -> list[str]:
    present = [(label, value) for label, value in fields if value]
    width = max(len(label) for label, _ in present) + 1
    return [f"{label + ':':<{width}} {value}" for label, value in present]


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"{title}:", *(f"  {line}" for line in lines)] if lines else []


def _tags_text(tags: dict) -> str:
    return " ".join(f"{key}={value}" if value else key for key, value in tags.items())


def _executor_lines(executors: list[dict], executor_logs: list[dict], finished: bool) -> list[str]:
    lines = []
    for index, executor in enumerate(executors):
        log = executor_logs[index] if index < len(executor_logs) else {}
        if "exit_code" in log:
            outcome = f"exit code {log['exit_code']}"
        else:
            outcome = "not run" if finished else "no exit code yet"
        command = shlex.join(str(word) for word in executor.get("command") or [])
        lines.append(f"[{index}] {outcome}  {executor.get('image') or MISSING}  {command}")
    return lines


def _output_lines(attempt: dict) -> list[str]:
    lines = []
    for output in attempt.get("outputs") or []:
        where = f"{output.get('path') or MISSING} -> {output.get('url') or MISSING}"
        line = f"{where}  {output.get('size_bytes', '?')} bytes"
        crc = output_checksum(attempt, str(output.get("url")))
        lines.append(f"{line}  CRC64NVME {crc}" if crc else line)
    return lines


def _result_lines(attempt: dict) -> list[str]:
    """What the task reported of itself (TES_RESULT_FILE): the `result.*` metadata."""
    return [f"{key.removeprefix(RESULT_KEY_PREFIX)}: {value}" for key, value in (attempt.get("metadata") or {}).items()
            if key.startswith(RESULT_KEY_PREFIX)]


def _system_log_lines(attempts: list[dict]) -> list[str]:
    """One section per attempt that has system logs; named by attempt only when there are several."""
    lines = []
    for index, attempt in enumerate(attempts):
        title = "system logs" if len(attempts) == 1 else f"system logs, attempt {index}"
        lines += _section(title, [str(line) for line in attempt.get("system_logs") or []])
    return lines
