"""From a TES task to the job one attempt runs: the `jobfiles.Job` its worker reads."""

from __future__ import annotations

from ..durations import parse_duration
from ..jobfiles import ContainerSettings, Job
from ..model.record import TaskRecord

RUNTIME_PARAMETER = "runtime"


def job_for(record: TaskRecord, attempt: int, run_dir: str, *, containers: ContainerSettings,
            file_roots: tuple[str, ...], default_runtime_limit_s: float | None, s3_stores: tuple[dict, ...],
            http_allow: tuple[str, ...] = ()) -> Job:
    """The job of `attempt` of the task, run in `run_dir`, with the service's settings."""
    return Job(
        task_id=record.id, attempt=attempt, task=record.task, run_dir=run_dir,
        containers=containers, file_roots=file_roots, http_allow=http_allow,
        runtime_limit_s=runtime_limit_s(record, default_runtime_limit_s),
        verified_inputs=record.verified_inputs,
        s3_stores=list(s3_stores),
    )


def runtime_limit_s(record: TaskRecord, default: float | None) -> float | None:
    """The task's backend parameter `runtime`, else `default` (None: no limit)."""
    given = ((record.task.get("resources") or {}).get("backend_parameters") or {}).get(RUNTIME_PARAMETER)
    return parse_duration(given) if given else default
