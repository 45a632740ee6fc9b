"""What a job ad says about an attempt, as the facts the poller decides on.

One fact per job (`base.JobStatus`): held jobs are never reported as running, a run the pool
stopped (eviction) is reported as such even when HTCondor already started it again, and a removal
is told apart by who did it.
"""

from __future__ import annotations

from pathlib import Path

import classad2

from ..clock import now_us
from ..durations import describe_duration
from ..jobfiles import RESULT_FILE, RUNNING, Progress, read_result_or_failure
from .base import Evicted, Finished, Held, JobStatus, Lost, Removed, Running, Waiting
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


def job_id(ad) -> str:
    return f"{ad['ClusterId']}.{ad['ProcId']}"


def queued_status(ad, run_dir: str, transient_hold_codes: frozenset[int]) -> JobStatus:
    """An attempt whose job is in the schedd's queue. The job's status decides alone (a result
    is read only once the job has left the queue), and an eviction beats what the job does now."""
    status = _get(ad, "JobStatus")
    starts = _get(ad, "NumJobStarts") or 0
    if status == IDLE:
        return Evicted(_eviction(ad)) if starts > 0 else _waiting(ad)
    if status in (RUNNING_STATUS, TRANSFERRING_OUTPUT, SUSPENDED):
        if starts > 1:  # HTCondor restarted it after an eviction this service did not see
            return Evicted(_eviction(ad) + "; HTCondor had started it again")
        return Running(Progress(step=RUNNING), host=_get(ad, "RemoteHost"))
    if status == HELD:
        return _hold(ad, transient_hold_codes)
    return departed_status(ad, run_dir)


def departed_status(ad, run_dir: str) -> JobStatus:
    """An attempt whose job has finished or was removed (in the queue still, or in the history):
    a result back beats a worker that exited without one."""
    status = _get(ad, "JobStatus")
    if status == REMOVED:
        return _removal(ad)
    if status == COMPLETED:
        result = read_result_or_failure(run_dir)
        if result is not None:
            return Finished(result, host=_get(ad, "LastRemoteHost"))
        if _get(ad, "ExitBySignal"):
            how = f"was killed by signal {_get(ad, 'ExitSignal')}"
        else:
            how = f"exited with code {_get(ad, 'ExitCode')}"
        return Lost(f"the worker {how} without returning {RESULT_FILE} (its stderr is {Path(run_dir) / WORKER_ERR})")
    return Lost(f"the job left the HTCondor queue in status {status} without a result")


def _hold(ad, transient_hold_codes: frozenset[int]) -> Held:
    code = _get(ad, "HoldReasonCode")
    reason = (f"HTCondor held the job: {_get(ad, 'HoldReason') or 'no reason given'} "
              f"(HoldReasonCode {code}, subcode {_get(ad, 'HoldReasonSubCode')})")
    return Held(reason=reason, transient=code in transient_hold_codes)


def _removal(ad) -> Lost | Removed:
    reason = _get(ad, "RemoveReason") or ""
    if reason.startswith(REMOVED_BY_SERVICE):
        # Removed by this service for an attempt the task still names: a cancel or retry whose
        # record did not land; the poller retries or fails it.
        return Lost(f"the job was {reason}")
    if "PeriodicRemove" in reason and _get(ad, RUNTIME_LIMIT_ATTRIBUTE):
        limit = describe_duration(_get(ad, RUNTIME_LIMIT_ATTRIBUTE))
        return Removed(f"exceeded runtime limit of {limit}; HTCondor removed the job")
    return Removed(f"removed from the HTCondor queue by someone else: {reason or 'no reason given'}")


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
