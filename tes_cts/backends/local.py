"""The local backend: each job is a worker process of its own on this host, forked by the worker
launcher (`worker/launcher.py`) this backend starts at its first submit.

Workers run in their own session, so restarting `serve`, the poller or the launcher leaves them
running; the run directory holds everything needed to find them again (worker.json: pid and
process start time, so a reused pid is never mistaken for the worker).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..jobfiles import (
    JOB_FILE,
    ContainerSettings,
    Job,
    read_progress,
    read_result,
    run_dir_in,
    runs_of,
    write_json_atomically,
)
from ..worker.launcher import LaunchRequest, proc_stat
from ..worker.runtime import runtime_for
from .base import Backend, BackendUnavailable, Finished, JobRef, JobStatus, Lost, Running

WORKER_FILE = "worker.json"
WORKER_LOG = "worker.log"
LAUNCHER_COMMAND = (sys.executable, "-m", "tes_cts.worker.launcher")
# What a worker inherits of the service's environment: what it needs to run Python, reach the
# engine, pull images and reach the stores; never the TES_CTS_* settings (auth hashes, token
# digests) or anything else. Its S3 secrets come apart, as worker_environment.
INHERITED_VARIABLES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
    "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG",
    "CONTAINER_HOST", "CONTAINERS_CONF", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
})
INHERITED_PREFIXES = ("LC_", "AWS_")       # the locale; S3 credentials and endpoints the aws way
# A canceled worker gets this long to remove its containers before it is killed.
CANCEL_GRACE_S = 5.0
# An engine that answered is not asked again for this long: a burst dispatches a task every few
# hundred ms, and an engine that fails just after it answered meets the worker either way.
ENGINE_ANSWER_KEPT_S = 1.0


@dataclass(frozen=True)
class Reservation:
    cpu_cores: int
    ram_gb: float


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, work_dir: str | os.PathLike, cpu_slots: int, ram_gb: float, containers: ContainerSettings,
                 worker_command: tuple[str, ...] = (), worker_environment: dict[str, str] | None = None,
                 wake_path: str | None = None, min_free_gb: float = 0.0, watched_paths: tuple[str, ...] = ()):
        """`worker_command`, when given, is run (with the job file appended) instead of the
        built-in worker; `wake_path` is the poller's FIFO, which each worker notifies once its
        result is written (wakeup.py). No task starts while the file system of the work dir or
        of one of `watched_paths` (the task store's) has less than `min_free_gb` free."""
        self.runs = runs_of(work_dir)
        self.worker_command = tuple(worker_command)
        # Added to the environment of every worker (the S3 secrets): never written to disk.
        self.worker_environment = dict(worker_environment or {})
        self.wake_path = wake_path
        self.cpu_slots = cpu_slots
        self.ram_gb = ram_gb
        self.runtime = runtime_for(containers)             # one engine client for every check and cancel
        self.min_free_gb = min_free_gb
        self.watched_paths = tuple(dict.fromkeys((str(Path(work_dir).resolve()), *watched_paths)))
        self.host = socket.gethostname()
        self._reserved: dict[str, Reservation] = {}        # backend job id -> what it holds
        self._launcher: _Launcher | None = None
        self._engine_answered_at = -ENGINE_ANSWER_KEPT_S  # time.monotonic() of its last answer

    def run_dir(self, task_id: str, attempt: int) -> str:
        return str(run_dir_in(self.runs, task_id, attempt))

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

    def has_free_slot(self) -> bool:
        return sum(r.cpu_cores for r in self._reserved.values()) < self.cpu_slots

    def engine_problem(self) -> str | None:
        low = self._low_disk()
        if low:
            return low
        if time.monotonic() - self._engine_answered_at < ENGINE_ANSWER_KEPT_S:
            return None
        problem = self.runtime.engine_problem()
        if problem is None:
            self._engine_answered_at = time.monotonic()
        return problem

    def _low_disk(self) -> str | None:
        """Why no task may start for lack of space, or None: a task fills its run directory,
        and the service must keep room for its store and its logs."""
        for path in self.watched_paths:
            stats = os.statvfs(_nearest_existing(path))  # a directory not made yet will be made there
            free_gb = stats.f_bavail * stats.f_frsize / 1e9
            if free_gb < self.min_free_gb:
                return (f"only {free_gb:.2f} GB free on the file system of {path}; tasks start again above "
                        f"{self.min_free_gb:g} GB (setting local.min_free_gb)")
        return None

    def submit(self, job: Job, owner: str = "") -> str:
        run_dir = Path(job.run_dir)
        existing = _read_worker(run_dir)
        if existing is not None:  # resubmitted after a poller died between submit and record
            self._reserved[existing.job_id] = reservation(job)
            return existing.job_id
        run_dir.mkdir(parents=True, exist_ok=True)
        job_file = replace(job, wake_path=self.wake_path).write()
        started = self._launch(LaunchRequest(job_file=str(job_file), run_dir=str(run_dir),
                                             log=str(run_dir / WORKER_LOG), argv=self.worker_command))
        worker = _WorkerProcess(pid=started["pid"], start_ticks=started["start_ticks"], host=self.host)
        write_json_atomically(run_dir / WORKER_FILE, worker.__dict__)
        self._reserved[worker.job_id] = reservation(job)
        return worker.job_id

    def close(self) -> None:
        """Stop the launcher (the workers it started run on); the next submit starts another."""
        if self._launcher is not None:
            self._launcher.close()
            self._launcher = None

    def _launch(self, request: LaunchRequest) -> dict:
        """The started worker's pid and start ticks. A launcher that is gone is replaced; one that
        dies during the request is replaced once more (the second loss is BackendUnavailable)."""
        try:
            reply = self._running_launcher().launch(request)
        except LauncherGone:
            self.close()
            reply = self._running_launcher().launch(request)
        if "error" in reply:
            raise BackendUnavailable(f"the worker launcher could not start a worker: {reply['error']}")
        return reply

    def _running_launcher(self) -> _Launcher:
        if self._launcher is None or not self._launcher.alive():
            self.close()
            self._launcher = _Launcher({**inherited_environment(os.environ), **self.worker_environment})
        return self._launcher

    def poll(self, jobs: list[JobRef]) -> dict[str, JobStatus]:
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
                time.sleep(0.1)
            if worker.alive():
                _signal_group(worker.pid, signal.SIGKILL)
        self.runtime.kill_all(job.task_id, job.attempt)
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
        low = self._low_disk()  # the likeliest reason a worker cannot write its result
        return Lost(f"worker process {worker.pid} died without writing a result" + (f"; {low}" if low else ""))


class LauncherGone(BackendUnavailable):
    """The launcher died before it replied."""


class _Launcher:
    """The launcher process: a child of this one, in a session of its own (a signal to the
    poller's group leaves it alone: it exits when this process closes its stdin or dies)."""

    def __init__(self, environment: dict[str, str]):
        self.process = subprocess.Popen(LAUNCHER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=environment, start_new_session=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def launch(self, request: LaunchRequest) -> dict:
        try:
            self.process.stdin.write(request.line())
            self.process.stdin.flush()
            reply = self.process.stdout.readline()
        except BrokenPipeError:
            reply = b""
        if not reply:
            raise LauncherGone(f"the worker launcher (pid {self.process.pid}) died")
        return json.loads(reply)

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except BrokenPipeError:  # flushing to a launcher that is gone
                pass
        self.process.wait()


@dataclass(frozen=True)
class _WorkerProcess:
    pid: int
    start_ticks: int
    host: str

    @property
    def job_id(self) -> str:
        return f"{self.host}/{self.pid}"

    def alive(self) -> bool:
        stat = proc_stat(self.pid)
        return stat is not None and stat[0] != "Z" and int(stat[19]) == self.start_ticks


def inherited_environment(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """What of `environ` a worker sees (INHERITED_VARIABLES and INHERITED_PREFIXES)."""
    return {name: value for name, value in environ.items()
            if name in INHERITED_VARIABLES or name.startswith(INHERITED_PREFIXES)}


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


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
