"""What the poller reads of the task database: the tasks in a state, in batches, oldest first,
and the job a task's current attempt names."""

from __future__ import annotations

from typing import Iterator

from ..backends.base import Backend, JobRef
from ..database.base import TaskDatabase
from ..model.query import Cursor, TaskQuery
from ..model.record import TaskRecord
from ..model.states import TesState
from ..tasks.attempts import BACKEND_JOB_ID_KEY, current_attempt


def batches(database: TaskDatabase, state: TesState, size: int) -> Iterator[list[TaskRecord]]:
    after = None
    while True:
        batch = database.query(TaskQuery(limit=size, state=state, after=after, oldest_first=True))
        if batch:
            yield batch
        if len(batch) < size:
            return
        after = Cursor(batch[-1].created_us, batch[-1].id)


def job_ref(record: TaskRecord, backend: Backend) -> JobRef | None:
    """The job of the task's current attempt, None if it has not been submitted."""
    if not record.logs:
        return None
    job_id = (record.logs[-1].get("metadata") or {}).get(BACKEND_JOB_ID_KEY)
    if not job_id:
        return None
    attempt = current_attempt(record)
    return JobRef(record.id, attempt, job_id, backend.run_dir(record.id, attempt))
