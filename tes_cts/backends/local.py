"""The local backend: each job is a `tes-cts worker` process of its own on this host.

Workers run in their own session, so restarting `serve` or the poller leaves them running; the
run directory holds everything needed to find them again (worker.json: pid and process start
time, so a reused pid is never mistaken for the worker).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..jobfiles import JOB_FILE, ContainerSettings, Job, read_progress, read_result, write_json_atomically
from ..worker.runtime import runtime_for
from .base import Backend, Finished, JobRef, JobStatus, Lost, Running

WORKER_FILE = "worker.json"
WORKER_LOG = "worker.log"
# The job file's path is appended. `python -m tes_cts.worker` imports only what a worker uses.
WORKER_COMMAND = (sys.executable, "-m", "tes_cts.worker")
# A canceled worker gets this long to remove its containers before it is killed.
CANCEL_GRACE_S = 5.0


@dataclass(frozen=True)
class Reservation:
    cpu_cores: int
    ram_gb: float


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, work_dir: str | os.PathLike, cpu_slots: int, ram_gb: float, containers: ContainerSettings,
                 worker_command: tuple[str, ...] = WORKER_COMMAND, worker_environment: dict[str, str] | None = None):
        self.runs = Path(work_dir).resolve() / "runs"
        self.worker_command = worker_command
        # Added to the environment of every worker (the S3 secrets): never written to disk.
        self.worker_environment = dict(worker_environment or {})
        self.cpu_slots = cpu_slots
        self.ram_gb = ram_gb
        self.containers = containers
        self.host = socket.gethostname()
        self._reserved: dict[str, Reservation] = {}        # backend job id -> what it holds
        self._children: dict[int, subprocess.Popen] = {}    # workers this process started

    def run_dir(self, task_id: str, attempt: int) -> str:
        return str(self.runs / task_id / str(attempt))

    def never_fits(self, job: Job) -> str | None:
        wanted = reservation(job)
        if wanted.cpu_cores > self.cpu_slots:
            return (f"the task asks for {wanted.cpu_cores} CPU cores but this host offers "
                    f"{self.cpu_slots} (setting local.cpu_slots)")
        if wanted.ram_gb > self.ram_gb:
            return (f"the task asks for {wanted.ram_gb:g} GB of RAM but this host offers "
                    f"{self.ram_gb:g} (setting local.ram_gb)")
        return None

    def admits(self, job: Job) -> bool:
        wanted = reservation(job)
        used_cpu = sum(r.cpu_cores for r in self._reserved.values())
        used_ram = sum(r.ram_gb for r in self._reserved.values())
        return used_cpu + wanted.cpu_cores <= self.cpu_slots and used_ram + wanted.ram_gb <= self.ram_gb

    def engine_problem(self) -> str | None:
        return runtime_for(self.containers).engine_problem()

    def submit(self, job: Job, owner: str = "") -> str:
        run_dir = Path(job.run_dir)
        existing = _read_worker(run_dir)
        if existing is not None:  # resubmitted after a poller died between submit and record
            self._reserved[existing.job_id] = reservation(job)
            return existing.job_id
        run_dir.mkdir(parents=True, exist_ok=True)
        job_file = job.write()
        with open(run_dir / WORKER_LOG, "ab") as log:
            process = subprocess.Popen(
                [*self.worker_command, str(job_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, cwd=run_dir,
                env={**os.environ, **self.worker_environment},
            )
        self._children[process.pid] = process
        worker = _WorkerProcess(pid=process.pid, start_ticks=_start_ticks(process.pid), host=self.host)
        write_json_atomically(run_dir / WORKER_FILE, worker.__dict__)
        self._reserved[worker.job_id] = reservation(job)
        return worker.job_id

    def poll(self, jobs: list[JobRef]) -> dict[str, JobStatus]:
        self._reap()
        statuses = {ref.backend_job_id: self._status(ref) for ref in jobs}
        # Reservations follow what the polls show: a finished or lost job frees its share, a
        # running one a restarted poller did not submit itself is counted. Jobs not in this
        # call (the poller polls in several batches) keep theirs.
        for ref in jobs:
            status = statuses[ref.backend_job_id]
            if isinstance(status, (Finished, Lost)):
                self._reserved.pop(ref.backend_job_id, None)
            elif ref.backend_job_id not in self._reserved:
                self._reserved[ref.backend_job_id] = _reservation_of(ref)
        return statuses

    def cancel(self, job: JobRef) -> None:
        worker = _read_worker(Path(job.run_dir))
        if worker is not None and worker.alive():
            _signal_group(worker.pid, signal.SIGTERM)
            deadline = time.monotonic() + CANCEL_GRACE_S
            while worker.alive() and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.1)
            if worker.alive():
                _signal_group(worker.pid, signal.SIGKILL)
        self._reap()
        runtime_for(self.containers).kill_all(job.task_id, job.attempt)
        self._reserved.pop(job.backend_job_id, None)

    def _status(self, ref: JobRef) -> JobStatus:
        """The one fact that decides, in the order of `base`: a result, whatever the worker is
        doing; a worker that never started or died without one is lost; else it runs."""
        run_dir = Path(ref.run_dir)
        result = read_result(run_dir)
        if result is not None:
            return Finished(result, host=self.host)
        worker = _read_worker(run_dir)
        if worker is None:
            return Lost("no worker process was started for this attempt")
        if worker.alive():
            return Running(read_progress(run_dir), host=self.host)
        result = read_result(run_dir)  # it may have finished between the two looks
        if result is not None:
            return Finished(result, host=self.host)
        return Lost(f"worker process {worker.pid} died without writing a result")

    def _reap(self) -> None:
        for pid, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[pid]


@dataclass(frozen=True)
class _WorkerProcess:
    pid: int
    start_ticks: int
    host: str

    @property
    def job_id(self) -> str:
        return f"{self.host}/{self.pid}"

    def alive(self) -> bool:
        stat = _proc_stat(self.pid)
        return stat is not None and stat[0] != "Z" and int(stat[19]) == self.start_ticks


def reservation(job: Job) -> Reservation:
    resources = job.task.get("resources") or {}
    return Reservation(cpu_cores=int(resources.get("cpu_cores") or 1), ram_gb=float(resources.get("ram_gb") or 0))


def _reservation_of(ref: JobRef) -> Reservation:
    try:
        return reservation(Job.read(Path(ref.run_dir) / JOB_FILE))
    except (OSError, ValueError, TypeError):
        return Reservation(cpu_cores=1, ram_gb=0)


def _read_worker(run_dir: Path) -> _WorkerProcess | None:
    try:
        return _WorkerProcess(**json.loads((run_dir / WORKER_FILE).read_text()))
    except FileNotFoundError:
        return None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]; None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def _start_ticks(pid: int) -> int:
    stat = _proc_stat(pid)
    return int(stat[19]) if stat else 0


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
