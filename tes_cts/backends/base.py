"""The `Backend` contract: submit a job, report facts about jobs, cancel a job.

A backend never decides a task's state: it reports one fact per job (`JobStatus`: it runs, it
finished, it waits, it is held, evicted, removed or lost, or there is no news) and the poller
decides.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ..jobfiles import Job, Progress, Result


class BackendUnavailable(Exception):
    """The backend cannot take or report on work right now (engine down, pool unreachable).
    Nothing was submitted; the task stays where it is and the reason is shown."""


@dataclass(frozen=True)
class JobRef:
    """What the poller keeps about a submitted attempt (in the task log's metadata)."""

    task_id: str
    attempt: int
    backend_job_id: str
    run_dir: str


# --- the facts: a backend reports exactly one per job -------------------------------------------
# When a backend sees several at once, it reports the one that decides most, in this order: a
# result, a job lost, an eviction, a hold, a removal, a wait, progress. Each backend encodes the
# order where it builds its status.


@dataclass(frozen=True)
class Finished:
    """The worker has finished and its result.json is back."""

    result: Result
    host: str | None = None


@dataclass(frozen=True)
class Lost:
    """The job is gone without a result: why."""

    reason: str


@dataclass(frozen=True)
class Evicted:
    """The backend stopped this run to run it again elsewhere: why."""

    reason: str


@dataclass(frozen=True)
class Held:
    """The backend stopped the job and keeps it until someone acts."""

    reason: str
    transient: bool                         # a fault of the machine or the transfer: a new attempt may succeed


@dataclass(frozen=True)
class Removed:
    """Taken out of the backend by someone else (an admin, a pool policy): why."""

    reason: str


@dataclass(frozen=True)
class Waiting:
    """The job is queued in the backend and has not started."""

    reason: str                             # why it waits, in words
    unmatched_since_us: int | None = None   # since when no machine at all could run it as asked


@dataclass(frozen=True)
class Running:
    """The job runs; `progress` is the latest step its worker reported, if any."""

    progress: Progress | None = None
    host: str | None = None


@dataclass(frozen=True)
class NoNews:
    """Nothing is known of the job this time (the backend could not be asked, or is still
    waiting to make sure the job is gone)."""


JobStatus = Finished | Lost | Evicted | Held | Removed | Waiting | Running | NoNews


class Backend(ABC):
    kind: str
    runs: Path                         # <work_dir>/runs: every attempt's directory is runs/<task>/<attempt>

    @abstractmethod
    def run_dir(self, task_id: str, attempt: int) -> str:
        """Where this attempt's job, progress and result files live (absolute path)."""

    @abstractmethod
    def never_fits(self, job: Job) -> str | None:
        """Why the job could never run here (asks for more than the backend has), or None."""

    @abstractmethod
    def admits(self, job: Job) -> bool:
        """Whether the job can start now (resources free); False keeps the task QUEUED."""

    def has_free_slot(self) -> bool:
        """Whether a task asking for the least (one core) could start now: while not, a task
        already told it waits for a slot is passed over without a closer look."""
        return True

    @abstractmethod
    def engine_problem(self) -> str | None:
        """Why nothing can be submitted right now (engine down, disk nearly full), or None."""

    @abstractmethod
    def submit(self, job: Job, owner: str = "") -> str:
        """Start the job on behalf of the task's owner (for the backend's accounting); returns the
        backend's job id. Raises BackendUnavailable."""

    @abstractmethod
    def poll(self, jobs: list[JobRef]) -> dict[str, JobStatus]:
        """Status of every given job in one pass, keyed by backend_job_id. The poller passes every
        job it follows in one call per cycle."""

    @abstractmethod
    def cancel(self, job: JobRef) -> None:
        """Stop the job and everything it started (containers included). Idempotent. Raises
        BackendUnavailable when the backend cannot be reached (the poller tries again later)."""
