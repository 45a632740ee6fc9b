"""The record's side of reading a full executor log (executor_logs.py reads the file): which logs
a task has to ask for, and, when one cannot be read, why, in words a caller can act on.

Attempts are numbered from 0 as the task's `logs` are; the run directory of `logs[n]` is that of
attempt n + 1 (attempts.py). Executors are numbered from 0 as the task's `executors` are.
"""

from __future__ import annotations

from ..jobfiles import EXECUTOR_STREAMS
from ..model.record import TaskRecord
from ..model.states import TERMINAL_PHASES
from .executor_logs import Absence


class ExecutorLogNotFound(Exception):
    """The task is the caller's, but this log cannot be read (a 404): the message says why."""


def run_attempt(record: TaskRecord, attempt: int, executor: int, stream: str) -> int:
    """The number of the run directory that holds the log `stream` of `executor` in `attempt` (from 0),
    once the task is seen to have them. Raises ExecutorLogNotFound."""
    if stream not in EXECUTOR_STREAMS:
        raise ExecutorLogNotFound(f"no log {stream!r}: an executor's logs are {' and '.join(EXECUTOR_STREAMS)}")
    if attempt >= len(record.logs):
        raise ExecutorLogNotFound(f"task {record.id} has {len(record.logs)} attempt(s): no attempt {attempt}")
    executors = len(record.task.get("executors") or ())
    if executor >= executors:
        raise ExecutorLogNotFound(f"task {record.id} has {executors} executor(s): no executor {executor}")
    if "start_time" not in record.logs[attempt]:  # a pending entry: its job is not submitted yet
        raise ExecutorLogNotFound(f"attempt {attempt} of task {record.id} has not started: it has no logs yet")
    return attempt + 1


def absence_detail(record: TaskRecord, attempt: int, executor: int, stream: str, absence: Absence) -> str:
    """Why the log is not there, from what the record says of the task and the attempt."""
    which = f"the {stream} of executor {executor} in attempt {attempt} of task {record.id}"
    task_ended = record.phase in TERMINAL_PHASES
    attempt_ended = task_ended or attempt + 1 < len(record.logs)
    if absence is Absence.NOT_A_FILE:
        return f"{which} cannot be read: its path in the run directory is not a plain file"
    if absence is Absence.NO_RUN_DIR and task_ended:
        return (f"{which} is gone: the run directories of finished tasks are removed after the retention "
                "period (poller.run_retention); the FULL view keeps its tail")
    if absence is Absence.NO_RUN_DIR and attempt_ended:
        return f"{which} is not there: the attempt left no run directory"
    if attempt_ended:
        return f"{which} was never written: the executor did not run in that attempt"
    return (f"{which} is not written yet: the executor has not started (a backend that runs it on another "
            "machine, such as HTCondor, brings its logs back when the attempt ends)")
