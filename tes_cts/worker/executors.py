"""Runs a task's executors in order, each in its own container, all sharing the task's mounts.

An executor's stdout/stderr stream to `<run_dir>/logs/executor-{i}.stdout|stderr`. When the
executor names `stdout`/`stderr` paths, the finished log is also copied there (through the
FileMapper), where later executors and the outputs read it.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..clock import now_us, rfc3339
from ..durations import describe_duration
from ..jobfiles import (
    CANCELED,
    COMPLETE,
    EXECUTOR_ERROR,
    EXECUTOR_STREAMS,
    RUNNING,
    SYSTEM_ERROR,
    Job,
    Progress,
    executor_log,
    write_progress,
)
from . import task_result
from .disk import DiskLimit, disk_limit_bytes
from .paths import FileMapper, Mount, PathEscape
from .runtime import (
    NOT_RUN_EXIT_CODE,
    ContainerNotStarted,
    ContainerRuntime,
    ContainerSpec,
    ImageUnavailable,
    RunningContainer,
    RuntimeUnavailable,
    attempt_labels,
)

PULL_TIMEOUT_S = 60.0
_POLL_S = 0.05
NO_NETWORK = "none"
# Said once when an executor exits non-zero without a network: the tool's own message is most
# likely a connection error that names nothing of this server.
NO_NETWORK_NOTE = ("the containers ran without a network (setting containers.network = \"none\", env "
                   "TES_CTS_CONTAINERS__NETWORK): an executor that needs one fails, usually with a connection error")


@dataclass
class _Failure:
    outcome: str                               # EXECUTOR_ERROR, SYSTEM_ERROR or CANCELED
    reason: str


class TaskExecutors:
    """Runs the executors of one job. Afterwards (also after an exception: they then hold what
    had happened so far) `logs` are the tesExecutorLog dicts, `outcome` is COMPLETE,
    EXECUTOR_ERROR, SYSTEM_ERROR or CANCELED with its one-line `reason`, `notes` are lines
    for the system logs and `metadata` what the executors' result files said (task_result.py)."""

    def __init__(self, job: Job, mapper: FileMapper, mounts: list[Mount], runtime: ContainerRuntime,
                 cancel: threading.Event):
        self.job, self.mapper, self.mounts, self.runtime, self.cancel = job, mapper, mounts, runtime, cancel
        self.logs: list[dict] = []
        self.outcome = COMPLETE
        self.reason = ""
        self.notes: list[str] = []
        self.metadata: dict[str, str] = {}
        self._budget_s = job.runtime_limit_s   # container time left under the runtime limit
        self._a_container_failed = False       # one ran and exited non-zero
        self._images_present: set[str] = set()
        limit = disk_limit_bytes(job)
        self._disk = DiskLimit(job.run_dir, limit) if limit else None

    def run(self) -> None:
        try:
            self._run_all()
        finally:
            if self._a_container_failed and self.job.containers.network == NO_NETWORK:
                self.notes.append(NO_NETWORK_NOTE)

    def _run_all(self) -> None:
        for index, executor in enumerate(self.job.task["executors"]):
            failure = self._before_start()
            if failure is None:
                write_progress(self.job.run_dir, Progress(RUNNING, index, rfc3339(now_us())))
                failure = self._run_one(index, executor)
            if failure and failure.outcome == EXECUTOR_ERROR and executor.get("ignore_error"):
                self.notes.append(f"{failure.reason} (ignore_error: continuing)")
            elif failure:
                self.outcome, self.reason = failure.outcome, failure.reason
                return

    def _before_start(self) -> _Failure | None:
        if self.cancel.is_set():
            return _Failure(CANCELED, "canceled")
        if self._budget_s is not None and self._budget_s <= 0:
            return self._over_limit()
        return None

    def _run_one(self, index: int, executor: dict) -> _Failure | None:
        stdout_log, stderr_log = (executor_log(self.job.run_dir, index, stream) for stream in EXECUTOR_STREAMS)
        failure = self._ensure_image(executor["image"]) or self._check_stdin(index, executor.get("stdin"))
        if failure:
            return self._not_run(now_us(), failure, stdout_log, stderr_log)

        start = now_us()
        result_mount = task_result.result_mount(self.job.run_dir, index)
        try:
            # Unbuffered: a write that fails (a full disk) fails in the engine's log copy, not
            # again at the close.
            with open(stdout_log, "wb", buffering=0) as out, open(stderr_log, "wb", buffering=0) as err:
                container = self.runtime.start(self._spec(index, executor, result_mount), out, err)
                exit_code, failure = self._wait(index, container)
        except ContainerNotStarted as exc:
            failure = _Failure(SYSTEM_ERROR, f"executor {index}: the container could not start: {exc}")
            return self._not_run(start, failure, stdout_log, stderr_log)
        except RuntimeUnavailable as exc:
            self._record(start, NOT_RUN_EXIT_CODE, stdout_log, stderr_log)
            return _Failure(SYSTEM_ERROR, f"executor {index}: the container engine failed while the container ran: {exc}")
        self._record(start, exit_code, stdout_log, stderr_log)
        said, problems = task_result.read_task_result(result_mount, index)
        self.metadata.update(said)
        self.notes += problems
        lost = container.lost_output()
        if lost:
            self.notes.append(f"executor {index}: {lost}")
        if failure:
            return failure
        if exit_code != 0:
            self._a_container_failed = True
        failure = self._copy_to_task_paths(index, executor, stdout_log, stderr_log)
        if failure is None and exit_code != 0:
            failure = _Failure(EXECUTOR_ERROR, f"executor {index} exited with code {exit_code}")
        if failure is None and lost:  # a log cut short must not pass for the whole one
            failure = _Failure(SYSTEM_ERROR, f"executor {index}: {lost}")
        return failure

    def _not_run(self, start_us: int, failure: _Failure, stdout_log: Path, stderr_log: Path) -> _Failure:
        """The executor log of a container that did not run: the reason is its stderr."""
        stdout_log.write_bytes(b"")
        stderr_log.write_text(failure.reason + "\n")
        self._record(start_us, NOT_RUN_EXIT_CODE, stdout_log, stderr_log)
        return failure

    def _ensure_image(self, image: str) -> _Failure | None:
        if image in self._images_present:
            return None
        try:
            present = self.runtime.image_present(image)
        except RuntimeUnavailable as exc:
            return _Failure(SYSTEM_ERROR, f"container engine unavailable: {exc}")
        if not present and not self.job.containers.pull:
            return _Failure(SYSTEM_ERROR, f"image {image} not found locally and pulling is disabled (setting containers.pull)")
        if not present:
            try:
                self.runtime.pull(image, PULL_TIMEOUT_S)
            except (ImageUnavailable, RuntimeUnavailable) as exc:
                return _Failure(SYSTEM_ERROR, f"image {image} not found locally and could not be pulled: {exc}")
        self._images_present.add(image)
        return None

    def _check_stdin(self, index: int, path: str | None) -> _Failure | None:
        if path is None:
            return None
        try:
            if self.mapper.host_path(path).is_file():
                return None
        except PathEscape as exc:
            return _Failure(EXECUTOR_ERROR, f"executor {index}: stdin {path}: {exc}")
        return _Failure(EXECUTOR_ERROR,
                        f"executor {index}: stdin {path} does not exist (not an input, nor written by an earlier executor)")

    def _spec(self, index: int, executor: dict, result_mount: Mount) -> ContainerSpec:
        resources = self.job.task.get("resources") or {}
        return ContainerSpec(
            name=f"{self.job.container_prefix}-{index}",
            image=executor["image"],
            command=tuple(executor["command"]),
            labels=attempt_labels(self.job.task_id, self.job.attempt),
            mounts=(*self.mounts, result_mount),
            workdir=executor.get("workdir"),
            env={**(executor.get("env") or {}), task_result.VARIABLE: task_result.CONTAINER_PATH},
            stdin=self.mapper.host_path(executor["stdin"]) if executor.get("stdin") is not None else None,
            cpu_cores=resources.get("cpu_cores"),
            ram_gb=resources.get("ram_gb"),
        )

    def _wait(self, index: int, container: RunningContainer) -> tuple[int, _Failure | None]:
        """The container's exit code once it ended; it is killed on cancel, at the runtime limit
        or over the disk limit, with the failure that says why."""
        started = time.monotonic()
        try:
            while True:
                remaining = None if self._budget_s is None else self._budget_s - (time.monotonic() - started)
                if self.cancel.is_set():
                    return container.kill(), _Failure(CANCELED, "canceled")
                if remaining is not None and remaining <= 0:
                    return container.kill(), self._over_limit()
                if self._disk is not None and (over := self._disk.exceeded(index, container.written_bytes)):
                    return container.kill(), _Failure(SYSTEM_ERROR, over)
                exit_code = container.wait(_POLL_S if remaining is None else min(_POLL_S, remaining))
                if exit_code is not None:
                    return exit_code, None
        finally:
            if self._budget_s is not None:
                self._budget_s -= time.monotonic() - started

    def _over_limit(self) -> _Failure:
        return _Failure(SYSTEM_ERROR, f"exceeded runtime limit of {describe_duration(self.job.runtime_limit_s)}")

    def _copy_to_task_paths(self, index: int, executor: dict, stdout_log: Path, stderr_log: Path) -> _Failure | None:
        for key, log in (("stdout", stdout_log), ("stderr", stderr_log)):
            path = executor.get(key)
            if not path:
                continue
            try:
                host = self.mapper.host_path(path)
                host.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, host)
            except PathEscape as exc:
                return _Failure(EXECUTOR_ERROR, f"executor {index}: {key} {path}: {exc}")
            except OSError as exc:
                return _Failure(SYSTEM_ERROR, f"executor {index}: could not write {key} to {path}: {exc.strerror or exc}")
        return None

    def _record(self, start_us: int, exit_code: int, stdout_log: Path, stderr_log: Path) -> None:
        limit = self.job.containers.log_tail_bytes
        self.logs.append({
            "start_time": rfc3339(start_us),
            "end_time": rfc3339(now_us()),
            "exit_code": exit_code,
            "stdout": _tail(stdout_log, limit),
            "stderr": _tail(stderr_log, limit),
        })


def _tail(path: Path, limit: int) -> str:
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - limit))
        return handle.read().decode("utf-8", errors="replace")
