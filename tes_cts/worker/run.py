"""One attempt of one task, start to finish: stage inputs, run the executors, stage outputs, and
always leave a Result, whatever fails on the way.

An executor's failure is the task's outcome: faults found after it (outputs missing, an upload
failing) only add lines to the system logs, since retrying the attempt would fail the same way.
An attempt that fails while the file system of its run directory is full is a SYSTEM_ERROR that
says so, whatever failed first, and its files but the logs are removed at once, so that the
service and the other tasks get the space back (see disk.py).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from ..clock import now_us, rfc3339
from ..jobfiles import (
    COMPLETE,
    EXECUTOR_ERROR,
    LOGS_DIR,
    MOUNTS_DIR,
    STAGING_IN,
    STAGING_OUT,
    SYSTEM_ERROR,
    Job,
    Progress,
    Result,
    reserve_result_space,
    write_progress,
    write_result,
)
from ..storage.config import StorageConfig, stores_from_job
from ..wakeup import notify
from .disk import file_system_full
from .executors import TaskExecutors
from .measurements import StagingMeter
from .paths import FileMapper
from .runtime import ContainerRuntime, RuntimeUnavailable, runtime_for
from .staging import StagingError, stage_inputs, stage_outputs


def run_job(job: Job, cancel: threading.Event | None = None) -> Result:
    """Run the job; `cancel`, once set, stops it (the result is then CANCELED)."""
    result = Result(outcome=COMPLETE, reason="", start_time=rfc3339(now_us()), end_time="",
                    metadata={"host": socket.gethostname()})
    runtime = None
    meter = StagingMeter()
    try:
        runtime = runtime_for(job.containers)
        _run(job, cancel or threading.Event(), runtime, result, meter)
    except Exception as exc:  # a worker must leave a result whatever happens
        result.outcome, result.reason = SYSTEM_ERROR, f"worker failed: {type(exc).__name__}: {exc}"
    finally:
        if runtime is not None:
            _remove_containers(job, runtime, result)
    result.measurements = meter.measurements()
    if result.outcome in (EXECUTOR_ERROR, SYSTEM_ERROR):
        _blame_a_full_disk(job, result)
    if result.outcome != COMPLETE:
        result.system_logs.append(result.reason)
    result.end_time = rfc3339(now_us())
    return result


def _blame_a_full_disk(job: Job, result: Result) -> None:
    """A failure on a full disk is the disk's: a SYSTEM_ERROR saying so, which is not retried
    (the poller retries only attempts that left no result; no task starts while the disk is low)."""
    full = file_system_full(job.run_dir)
    if full is None:
        return
    result.outcome, result.reason = SYSTEM_ERROR, f"{full}: {result.reason}"
    shutil.rmtree(Path(job.run_dir) / MOUNTS_DIR, ignore_errors=True)
    result.system_logs.append("this attempt's inputs, volumes, work dirs and outputs were removed to free the disk; "
                              "its logs are kept")


def _remove_containers(job: Job, runtime: ContainerRuntime, result: Result) -> None:
    try:
        runtime.kill_all(job.task_id, job.attempt)
    except (RuntimeUnavailable, OSError) as exc:
        result.system_logs.append(f"could not remove the attempt's containers: {exc}")


def _run(job: Job, cancel: threading.Event, runtime: ContainerRuntime, result: Result, meter: StagingMeter) -> None:
    """The steps of one attempt; each records its failure in `result` and says whether to go on."""
    mapper = FileMapper(job.run_dir)
    (Path(job.run_dir) / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    if not _clear_earlier_containers(job, runtime, result):
        return
    _progress(job, STAGING_IN)
    storage = worker_storage_config(job)
    if not (_stage_in(job, mapper, storage, result, meter) and _execute(job, mapper, runtime, cancel, result)):
        return
    _progress(job, STAGING_OUT)
    _stage_out(job, mapper, storage, result, meter)


def _clear_earlier_containers(job: Job, runtime: ContainerRuntime, result: Result) -> bool:
    """Containers left by an earlier run of this same attempt (HTCondor reruns an evicted job from
    the same job.json) would hold the names; this also checks the engine before staging."""
    try:
        runtime.kill_all(job.task_id, job.attempt)
    except RuntimeUnavailable as exc:
        result.outcome, result.reason = SYSTEM_ERROR, f"container engine unavailable: {exc}"
        return False
    return True


def _stage_in(job: Job, mapper: FileMapper, storage: StorageConfig, result: Result, meter: StagingMeter) -> bool:
    try:
        result.system_logs += stage_inputs(job, mapper, storage, job.verified_inputs, meter)
    except StagingError as exc:
        result.outcome, result.reason = SYSTEM_ERROR, str(exc)
        return False
    return True


def _execute(job: Job, mapper: FileMapper, runtime: ContainerRuntime, cancel: threading.Event, result: Result) -> bool:
    """Run the executors; whether their outputs are to be uploaded (not after a cancel, nor after
    a fault of this attempt: its partial outputs are not kept)."""
    mounts = mapper.mounts(job.task)
    mapper.prepare(mounts)
    executors = TaskExecutors(job, mapper, mounts, runtime, cancel)
    try:
        executors.run()
    finally:
        result.executor_logs = executors.logs
        result.system_logs += executors.notes
        result.metadata.update(executors.metadata)
    result.outcome, result.reason = executors.outcome, executors.reason
    return result.outcome in (COMPLETE, EXECUTOR_ERROR)


def _stage_out(job: Job, mapper: FileMapper, storage: StorageConfig, result: Result, meter: StagingMeter) -> None:
    try:
        staged = stage_outputs(job, mapper, storage, meter)
    except StagingError as exc:
        _fault(result, str(exc))
        return
    result.outputs = staged.outputs
    result.system_logs += staged.system_logs
    if staged.missing:
        result.system_logs += staged.missing[1:]
        more = f" (and {len(staged.missing) - 1} more)" if len(staged.missing) > 1 else ""
        _fault(result, staged.missing[0] + more)


def _fault(result: Result, reason: str) -> None:
    """A system fault after the executors: the outcome unless an executor already failed."""
    if result.outcome == EXECUTOR_ERROR:
        result.system_logs.append(reason)
    else:
        result.outcome, result.reason = SYSTEM_ERROR, reason


def _progress(job: Job, step: str) -> None:
    write_progress(job.run_dir, Progress(step, None, rfc3339(now_us())))


def work(job_file: str) -> int:
    """`tes-cts worker JOB_FILE`: run the job and write its result.json; the exit status is 0
    whenever a result was written, whatever the task's outcome."""
    cancel = threading.Event()
    with _cancel_on_signals(cancel):
        try:
            job = Job.read(job_file)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            # job.json lives in the run directory: say there why nothing ran.
            run_dir = Path(job_file).resolve().parent
            now = rfc3339(now_us())
            reason = f"could not read job file {job_file}: {type(exc).__name__}: {exc}"
            return _write(run_dir, Result(SYSTEM_ERROR, reason, now, now, system_logs=[reason]))
        reserve_result_space(job.run_dir)
        result = run_job(job, cancel)
    written = _write(Path(job.run_dir), result)
    if job.wake_path:
        notify(job.wake_path)  # the poller records the result now, not at the end of its interval
    return written


def _write(run_dir: Path, result: Result) -> int:
    try:
        try:
            write_result(run_dir, result)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            write_result(run_dir, _shortened(result, exc))
    except OSError as exc:
        print(f"tes-cts worker: could not write {run_dir}/result.json: {exc}", file=sys.stderr)
        return 1
    print(f"tes-cts worker: {result.outcome}{': ' + result.reason if result.reason else ''}", file=sys.stderr)
    return 0


def _shortened(result: Result, exc: OSError) -> Result:
    """The result without what makes it long (the executors' output tails, the outputs, the
    system logs but the reason), for a disk that takes no more than the reserved space."""
    reason = f"{result.reason} (the whole result could not be written: {exc.strerror})"
    logs = [{**log, "stdout": "", "stderr": ""} for log in result.executor_logs]
    return Result(result.outcome if result.outcome != COMPLETE else SYSTEM_ERROR, reason, result.start_time,
                  result.end_time, executor_logs=logs, system_logs=[reason], metadata=result.metadata,
                  measurements=result.measurements)


@contextmanager
def _cancel_on_signals(cancel: threading.Event):
    """SIGTERM and SIGINT set `cancel` instead of ending the process, so the worker can stop its
    container and still record the executor log and a CANCELED result."""
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.signal(number, lambda *_: cancel.set()) for number in handled}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def worker_storage_config(job: Job) -> StorageConfig:
    """File roots and S3 stores from the job file, each store's secret from the environment the
    backend gave this process."""
    return StorageConfig(file_roots=job.file_roots, s3_stores=stores_from_job(job.s3_stores, dict(os.environ)),
                         http_allow=job.http_allow)
