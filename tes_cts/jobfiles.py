"""The files a worker and its backend exchange in the attempt's run directory.

    <run_dir>/job.json       written by the backend before the worker starts (Job)
    <run_dir>/progress.json  rewritten by the worker at each step (Progress)
    <run_dir>/result.json    written once by the worker at the end (Result), into the space
                             it reserved at its start (.result.json.reserved)
    <run_dir>/logs/          full stdout/stderr of every executor
    <run_dir>/mounts/        host side of every container path (see paths.FileMapper)

Every file is written to a temporary name and renamed, so a reader sees all of it or nothing.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .clock import now_us, rfc3339
from .model.states import Phase

JOB_FILE = "job.json"
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
RESULT_RESERVE_FILE = ".result.json.reserved"
RESULT_RESERVE_BYTES = 512 * 1024
LOGS_DIR = "logs"
MOUNTS_DIR = "mounts"
RUNS_DIR = "runs"                              # under the work dir: runs/<task>/<attempt> is a run_dir
EXECUTOR_STREAMS = ("stdout", "stderr")        # the two logs of each executor, by their file suffix

# Worker progress steps, in order, and result outcomes: each is the task phase it reports, so the
# poller reads a file's step or outcome as a Phase.
STAGING_IN = Phase.STAGING_IN
RUNNING = Phase.RUNNING
STAGING_OUT = Phase.STAGING_OUT

COMPLETE = Phase.COMPLETE
EXECUTOR_ERROR = Phase.EXECUTOR_ERROR
SYSTEM_ERROR = Phase.SYSTEM_ERROR
CANCELED = Phase.CANCELED


@dataclass(frozen=True)
class ContainerSettings:
    # The service builds these from the containers.* settings (wiring.container_settings); these
    # defaults are those settings' defaults (settings.py reads them from here).
    runtime: str = "docker"                    # "docker" or "podman"
    network: str = "none"                      # --network value
    no_new_privileges: bool = True
    cap_drop: tuple[str, ...] = ()             # capabilities dropped in every container
    pull: bool = True                          # try to pull an image that is not present
    extra_args: tuple[str, ...] = ()           # appended to `podman run`, e.g. --runtime runc (not for docker)
    log_tail_bytes: int = 64 * 1024            # stdout/stderr tail kept in the executor log
    default_disk_gb: float = 0.0               # a task's disk limit when it sets no disk_gb (0: none)


@dataclass(frozen=True)
class Job:
    task_id: str
    attempt: int                               # 1 for the first attempt
    task: dict                                 # the TES task as accepted
    run_dir: str                               # absolute path of this attempt's directory
    containers: ContainerSettings = field(default_factory=ContainerSettings)
    file_roots: tuple[str, ...] = ()
    runtime_limit_s: float | None = None       # whole-task limit, from backend_parameters or settings
    verified_inputs: dict = field(default_factory=dict)  # what preflight recorded (storage.config.VerifiedInputs)
    s3_stores: list = field(default_factory=list)  # storage.config.public_stores: no secrets
    http_allow: tuple[str, ...] = ()           # storage.http_allow: what http(s) inputs may reach
    wake_path: str | None = None               # the poller's FIFO, notified once result.json is written (wakeup.py)

    @property
    def container_prefix(self) -> str:
        """Every container of this attempt is named with this prefix, so it can be found and killed."""
        return f"tes-cts-{self.task_id}-{self.attempt}"

    def write(self) -> Path:
        path = Path(self.run_dir) / JOB_FILE
        write_json_atomically(path, asdict(self))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> Job:
        raw = json.loads(Path(path).read_text())
        containers = raw.pop("containers", {})
        containers["cap_drop"] = tuple(containers.get("cap_drop", ()))
        containers["extra_args"] = tuple(containers.get("extra_args", ()))
        raw["file_roots"] = tuple(raw.get("file_roots", ()))
        raw["http_allow"] = tuple(raw.get("http_allow", ()))
        return cls(containers=ContainerSettings(**containers), **raw)


@dataclass
class Progress:
    step: str                                  # STAGING_IN, RUNNING or STAGING_OUT
    executor: int | None = None                # index of the running executor
    time: str = ""


@dataclass
class Result:
    outcome: str                               # COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR or CANCELED
    reason: str                                # one line, human-readable: why this outcome
    start_time: str
    end_time: str
    executor_logs: list[dict] = field(default_factory=list)   # tesExecutorLog dicts
    outputs: list[dict] = field(default_factory=list)         # tesOutputFileLog dicts (size_bytes int)
    system_logs: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)    # e.g. host
    # What the worker measured, for the service's metrics, never shown in the task (the worker
    # counts nothing itself; the poller counts these once it records the result):
    # {"staging": [{"scheme", "direction", "bytes", "seconds"}],   direction: input or output
    #  "checksum_mismatches": [{"scheme", "direction", "count"}]}
    measurements: dict = field(default_factory=dict)


def runs_of(work_dir: str | os.PathLike) -> Path:
    """Where every attempt's run directory is, for the backends that make them and the API that
    reads their logs."""
    return Path(work_dir).resolve() / RUNS_DIR


def run_dir_in(runs: Path, task_id: str, attempt: int) -> Path:
    """The run directory of `attempt` (1 for the first) of the task: the one rule of where it is."""
    return runs / task_id / str(attempt)


def executor_log(run_dir: str | os.PathLike, index: int, stream: str) -> Path:
    """The file executor `index` writes its `stream` (one of EXECUTOR_STREAMS) to as it runs."""
    return Path(run_dir) / LOGS_DIR / f"executor-{index}.{stream}"


def write_json_atomically(path: Path, value, durable: bool = True) -> None:
    """Whole or not at all for a reader; `durable` also survives a crash of the machine."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w") as handle:
            json.dump(value, handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_progress(run_dir: str | os.PathLike, progress: Progress) -> None:
    # A hint the poller reads while the worker runs, written up to three times in each task's
    # critical path: not worth an fsync (after a crash of the machine the worker is gone anyway),
    # nor the task's failure when it cannot be written (a full disk): the result says the rest.
    with suppress(OSError):
        write_json_atomically(Path(run_dir) / PROGRESS_FILE, asdict(progress), durable=False)


def reserve_result_space(run_dir: str | os.PathLike) -> bool:
    """Take the blocks result.json will be written into while the disk still has them, so that
    a task which fills the disk still ends with a result that says so; whether it could."""
    path = Path(run_dir) / RESULT_RESERVE_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            os.posix_fallocate(fd, 0, RESULT_RESERVE_BYTES)
        finally:
            os.close(fd)
    except OSError:
        with suppress(OSError):
            path.unlink()
        return False
    return True


def write_result(run_dir: str | os.PathLike, result: Result) -> None:
    """result.json, durably: into the space the worker reserved when it fits there (so a full
    disk cannot refuse it), else as a new file. Raises OSError (ENOSPC: a shorter result may fit
    the reserve)."""
    run_dir = Path(run_dir)
    text = json.dumps(asdict(result)).encode()
    reserved = run_dir / RESULT_RESERVE_FILE
    if len(text) <= RESULT_RESERVE_BYTES and reserved.exists():
        with open(reserved, "r+b") as handle:
            handle.write(text)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(reserved, run_dir / RESULT_FILE)
        return
    write_json_atomically(run_dir / RESULT_FILE, asdict(result))
    with suppress(FileNotFoundError):
        reserved.unlink()


def read_progress(run_dir: str | os.PathLike) -> Progress | None:
    """The worker's last step; None before its first, or if a crash of the machine left the file
    unreadable (it is not fsynced)."""
    try:
        return Progress(**json.loads((Path(run_dir) / PROGRESS_FILE).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def read_result(run_dir: str | os.PathLike) -> Result | None:
    """The worker's result, None before it has written one. A file this host's worker wrote
    atomically is whole, so one that cannot be read raises."""
    path = Path(run_dir) / RESULT_FILE
    return Result(**json.loads(path.read_text())) if path.exists() else None


def read_result_or_failure(run_dir: str | os.PathLike) -> Result | None:
    """`read_result` for a result.json that came back from another machine (and may have been
    damaged on the way): one that cannot be read is a SYSTEM_ERROR result saying why."""
    try:
        return read_result(run_dir)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        now = rfc3339(now_us())
        return Result(outcome=SYSTEM_ERROR, reason=f"the returned {Path(run_dir) / RESULT_FILE} cannot be read: {exc}",
                      start_time=now, end_time=now)
