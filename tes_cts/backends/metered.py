"""A backend whose calls out to its engine (submit, poll, cancel, the engine check) are counted
for the metrics, by backend kind and operation: one wrapper around any backend, put around the
poller's by the composition root, so that no backend counts for itself."""

from __future__ import annotations

from typing import Callable, TypeVar

from ..jobfiles import Job
from ..metrics import record as metrics
from .base import Backend, JobRef, JobStatus

T = TypeVar("T")


class MeteredBackend(Backend):
    def __init__(self, backend: Backend):
        self.backend = backend
        self.kind = backend.kind
        self.runs = backend.runs

    def __getattr__(self, name: str):
        """What a backend offers beyond the contract (the local one's `close`) is its own."""
        return getattr(self.backend, name)

    def run_dir(self, task_id: str, attempt: int) -> str:
        return self.backend.run_dir(task_id, attempt)

    def never_fits(self, job: Job) -> str | None:
        return self.backend.never_fits(job)

    def admits(self, job: Job) -> bool:
        return self.backend.admits(job)

    def has_free_slot(self) -> bool:
        return self.backend.has_free_slot()

    def engine_problem(self) -> str | None:
        """Counted as failed when it finds a problem: nothing can be submitted then."""
        return self._counted("engine_check", self.backend.engine_problem, failed_if=lambda problem: problem is not None)

    def submit(self, job: Job, owner: str = "") -> str:
        return self._counted("submit", self.backend.submit, job, owner)

    def poll(self, jobs: list[JobRef]) -> dict[str, JobStatus]:
        return self._counted("poll", self.backend.poll, jobs)

    def cancel(self, job: JobRef) -> None:
        return self._counted("cancel", self.backend.cancel, job)

    def _counted(self, operation: str, call: Callable[..., T], *args, failed_if: Callable[[T], bool] = lambda _: False) -> T:
        try:
            answer = call(*args)
        except Exception:
            metrics.backend_call(self.kind, operation, failed=True)
            raise
        metrics.backend_call(self.kind, operation, failed=failed_if(answer))
        return answer
