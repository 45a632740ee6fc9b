"""What a job ad says about an attempt, as the facts the poller decides on.

Only facts: held jobs are never reported as running, a run the pool stopped (eviction) is reported
as such even when HTCondor already started it again, and a removal is told apart by who did it.
"""

from __future__ import annotations

import json
from pathlib import Path

import classad2

from ..clock import now_us, rfc3339
from ..durations import describe_duration
from ..jobfiles import RESULT_FILE, RUNNING, SYSTEM_ERROR, Progress, Result
from .base import Held, JobStatus, Waiting
from .htcondor_description import RUNTIME_LIMIT_ATTRIBUTE, WORKER_ERR

# htcondor2.JobStatus values, as job ads hold them.
IDLE, RUNNING_STATUS, REMOVED, COMPLETED, HELD, TRANSFERRING_OUTPUT, SUSPENDED = range(1, 8)

# Every attribute the poll reads; queries ask for these only.
PROJECTION = [
    "ClusterId", "ProcId", "JobStatus", RUNTIME_LIMIT_ATTRIBUTE,
    "NumJobStarts", "RemoteHost", "LastRemoteHost", "VacateReason",
    "HoldReason", "HoldReasonCode", "HoldReasonSubCode", "RemoveReason",
    "ExitCode", "ExitBySignal", "ExitSignal",
    "LastRejMatchReason", "RequestCpus", "RequestMemory", "RequestDisk",
]

# The reason this service gives HTCondor when it removes a job.
REMOVED_BY_SERVICE = "removed by tes-cts"
# The negotiator's word for "no machine of the pool matches the job", busy or not.
NO_MATCH = "no match found"

# HoldReasonCodes of faults a new attempt on another machine may not meet: the starter could not
# start the worker (6), the job's standard streams (7-10), file transfer (11-13, 18), the initial
# directory (14), a machine's hook or policy (19, 21, 48), the job event log (22), the user
# account on the machine (23), no compatible shadow (24), a container runtime test (45).
TRANSIENT_HOLD_CODES = (6, 7, 8, 9, 10, 11, 12, 13, 14, 18, 19, 21, 22, 23, 24, 45, 48)


def job_id(ad) -> str:
    return f"{ad['ClusterId']}.{ad['ProcId']}"


def queued_status(ad, run_dir: str, transient_hold_codes: frozenset[int]) -> JobStatus:
    """An attempt whose job is in the schedd's queue."""
    status = _get(ad, "JobStatus")
    starts = _get(ad, "NumJobStarts") or 0
    if status == IDLE:
        return JobStatus(evicted=_eviction(ad)) if starts > 0 else JobStatus(waiting=_waiting(ad))
    if status in (RUNNING_STATUS, TRANSFERRING_OUTPUT, SUSPENDED):
        if starts > 1:  # HTCondor restarted it after an eviction this service did not see
            return JobStatus(evicted=_eviction(ad) + "; HTCondor had started it again")
        return JobStatus(progress=Progress(step=RUNNING), host=_get(ad, "RemoteHost"))
    if status == HELD:
        code = _get(ad, "HoldReasonCode")
        reason = (f"HTCondor held the job: {_get(ad, 'HoldReason') or 'no reason given'} "
                  f"(HoldReasonCode {code}, subcode {_get(ad, 'HoldReasonSubCode')})")
        return JobStatus(held=Held(reason=reason, transient=code in transient_hold_codes))
    return departed_status(ad, run_dir)


def departed_status(ad, run_dir: str) -> JobStatus:
    """An attempt whose job has finished or was removed (in the queue still, or in the history)."""
    status = _get(ad, "JobStatus")
    if status == REMOVED:
        return _removal(ad)
    if status == COMPLETED:
        result = read_result(run_dir)
        if result is not None:
            return JobStatus(result=result, host=_get(ad, "LastRemoteHost"))
        if _get(ad, "ExitBySignal"):
            how = f"was killed by signal {_get(ad, 'ExitSignal')}"
        else:
            how = f"exited with code {_get(ad, 'ExitCode')}"
        return JobStatus(lost=f"the worker {how} without returning {RESULT_FILE} "
                              f"(its stderr is {Path(run_dir) / WORKER_ERR})")
    return JobStatus(lost=f"the job left the HTCondor queue in status {status} without a result")


def read_result(run_dir: str) -> Result | None:
    path = Path(run_dir) / RESULT_FILE
    try:
        return Result(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        now = rfc3339(now_us())
        return Result(outcome=SYSTEM_ERROR, reason=f"the returned {path} cannot be read: {exc}",
                      start_time=now, end_time=now)


def _removal(ad) -> JobStatus:
    reason = _get(ad, "RemoveReason") or ""
    if reason.startswith(REMOVED_BY_SERVICE):
        # Removed by this service for an attempt the task still names: a cancel or retry whose
        # record did not land; the poller retries or fails it.
        return JobStatus(lost=f"the job was {reason}")
    if "PeriodicRemove" in reason and _get(ad, RUNTIME_LIMIT_ATTRIBUTE):
        limit = describe_duration(_get(ad, RUNTIME_LIMIT_ATTRIBUTE))
        return JobStatus(removed=f"exceeded runtime limit of {limit}; HTCondor removed the job")
    return JobStatus(removed=f"removed from the HTCondor queue by someone else: {reason or 'no reason given'}")


def _eviction(ad) -> str:
    where = _get(ad, "LastRemoteHost") or _get(ad, "RemoteHost") or "its machine"
    return f"HTCondor stopped the job on {where}: {_get(ad, 'VacateReason') or 'evicted'}"


def _waiting(ad) -> Waiting:
    rejected = (_get(ad, "LastRejMatchReason") or "").strip()
    if rejected.startswith(NO_MATCH):
        cpus = _get(ad, "RequestCpus")
        asks = [f"{cpus} CPU{'' if cpus == 1 else 's'}"]
        if _get(ad, "RequestMemory"):
            asks.append(f"{_get(ad, 'RequestMemory')} MiB of memory")
        if _get(ad, "RequestDisk"):
            asks.append(f"{_get(ad, 'RequestDisk')} KiB of disk")
        return Waiting(
            reason=f"no machine of the HTCondor pool matches the job ({', '.join(asks)} and its requirements)",
            unmatched_since_us=now_us())
    if rejected:
        return Waiting(reason=f"idle in the HTCondor queue: {rejected}")
    return Waiting(reason="idle in the HTCondor queue, waiting to be matched to a machine")


def _get(ad, name: str):
    """The value of an attribute, None if the ad lacks it or it is undefined."""
    try:
        value = ad.eval(name)
    except KeyError:
        return None
    if isinstance(value, classad2.Value) or not isinstance(value, (str, int, float, bool)):
        return None  # undefined, an error, or a list or ad this module never asks for
    return value
