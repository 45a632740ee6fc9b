"""The HTCondor backend: each task attempt is one HTCondor job running the worker on an execute
node, through the htcondor2 bindings (never the condor_* tools).

A poll costs one schedd query for every job of the service, whatever their number, plus one
history lookup for the jobs that left the queue without bringing a result back, only the first
time each is missed and once more when its grace period ends. The schedd is found by the factory
given to the constructor: `htcondor2.Schedd()` or a named schedd through the collector
(`locate_schedd`); authentication is whatever the HTCondor configuration provides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Callable

import classad2
import htcondor2

from ..clock import now_us
from ..durations import describe_duration
from ..jobfiles import Job, read_result_or_failure, run_dir_in, runs_of, write_json_atomically
from .base import Backend, BackendUnavailable, Finished, JobRef, JobStatus, Lost, NoNews, Waiting
from .htcondor_description import ATTEMPT_ATTRIBUTE, SERVICE_ATTRIBUTE, TASK_ATTRIBUTE, JobTemplate, describe
from .htcondor_status import PROJECTION, REMOVED, REMOVED_BY_SERVICE, departed_status, job_id, queued_status

log = logging.getLogger("tes_cts.backends.htcondor")

# In the run directory: the id of the attempt's job, written around the submission, so that a
# poller that died between submitting and recording finds the job instead of submitting twice.
SUBMISSION_FILE = "condor_job.json"


def locate_schedd(name: str = "", collector: str = "") -> Callable[[], htcondor2.Schedd]:
    """The local schedd, or the one named `name` as the collector (`collector`, or the one the
    HTCondor configuration names) knows it."""
    if not name:
        return htcondor2.Schedd

    def named() -> htcondor2.Schedd:
        pool = htcondor2.Collector(collector) if collector else htcondor2.Collector()
        return htcondor2.Schedd(pool.locate(htcondor2.DaemonType.Schedd, name))

    return named


class HTCondorBackend(Backend):
    kind = "htcondor"

    def __init__(self, work_dir, template: JobTemplate, schedd: Callable[[], object],
                 transient_hold_codes: Iterable[int], lost_grace_s: float):
        """`transient_hold_codes` (htcondor.transient_hold_codes) are the HoldReasonCodes of faults
        a new attempt on another machine may not meet; by default: the starter could not start the
        worker (6), the job's standard streams (7-10), file transfer (11-13, 18), the initial
        directory (14), a machine's hook or policy (19, 21, 48), the job event log (22), the user
        account on the machine (23), no compatible shadow (24), a container runtime test (45).
        `lost_grace_s` (htcondor.lost_job_grace): how long a job may be found nowhere before it
        is lost."""
        self.runs = runs_of(work_dir)
        self.template = template
        self.transient_hold_codes = frozenset(transient_hold_codes)
        self.lost_grace_s = lost_grace_s
        self._locate = schedd
        self._schedd = None
        self._problem: str | None = None                # why the last call to the schedd failed
        self._unmatched_since: dict[str, int] = {}      # job id -> first poll that found no machine for it
        self._missing_since: dict[str, int] = {}        # job id -> first poll that found it nowhere
        self._gone: set[str] = set()                    # jobs the last poll found out of the queue

    def run_dir(self, task_id: str, attempt: int) -> str:
        return str(run_dir_in(self.runs, task_id, attempt))

    def never_fits(self, job: Job) -> str | None:
        try:
            describe(job, "", self.template)
        except ValueError as exc:
            return str(exc)
        return None

    def admits(self, job: Job) -> bool:
        return True  # the pool queues and matches; the poller shows why a job waits

    def engine_problem(self) -> str | None:
        if self._problem is None and self._schedd is not None:
            return None
        try:  # a round trip, made only at start and while the schedd is failing
            self._call("query", constraint="false", projection=["ClusterId"], limit=1)
        except BackendUnavailable as exc:
            return str(exc)
        return None

    def submit(self, job: Job, owner: str = "") -> str:
        run_dir = Path(job.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        submission = run_dir / SUBMISSION_FILE
        if submission.exists():
            known = json.loads(submission.read_text()).get("job_id") or self._find(job)
            if known:
                write_json_atomically(submission, {"job_id": known})
                return known
        description = htcondor2.Submit(describe(job, owner, self.template))
        job.write()
        write_json_atomically(submission, {"job_id": None})
        result = self._call("submit", description, count=1)
        submitted = f"{result.cluster()}.{result.first_proc()}"
        write_json_atomically(submission, {"job_id": submitted})
        return submitted

    def poll(self, jobs: list[JobRef]) -> dict[str, JobStatus]:
        """A job in the queue is what its ad says; one that left it is its result if it brought
        one back, else what the history says of it."""
        try:
            queue = {job_id(ad): ad for ad in self._call("query", constraint=self._ours(), projection=PROJECTION)}
        except BackendUnavailable as exc:
            log.warning("%s; no news of %d jobs this cycle", exc, len(jobs))
            return {ref.backend_job_id: NoNews() for ref in jobs}
        statuses: dict[str, JobStatus] = {}
        departed: list[JobRef] = []
        for ref in jobs:
            ad = queue.get(ref.backend_job_id)
            if ad is not None:
                statuses[ref.backend_job_id] = self._queued(ref, ad)
            elif (result := read_result_or_failure(ref.run_dir)) is not None:
                statuses[ref.backend_job_id] = Finished(result)
            else:
                departed.append(ref)
        statuses.update(self._departed(departed))
        self._remember(jobs, queue)
        return statuses

    def cancel(self, job: JobRef) -> None:
        if job.backend_job_id in self._gone:
            return
        self._call("act", htcondor2.JobAction.Remove, [job.backend_job_id], reason=REMOVED_BY_SERVICE)

    # --- helpers ------------------------------------------------------------------------------

    def _queued(self, ref: JobRef, ad) -> JobStatus:
        status = queued_status(ad, ref.run_dir, self.transient_hold_codes)
        self._missing_since.pop(ref.backend_job_id, None)
        if not isinstance(status, Waiting) or status.unmatched_since_us is None:
            self._unmatched_since.pop(ref.backend_job_id, None)
            return status
        since = self._unmatched_since.setdefault(ref.backend_job_id, status.unmatched_since_us)
        return replace(status, unmatched_since_us=since)

    def _remember(self, jobs: list[JobRef], queue: dict) -> None:
        """What the next poll and cancels need of this one: which jobs are out of the queue, and
        nothing of jobs no longer polled."""
        self._gone = {ref.backend_job_id for ref in jobs
                      if ref.backend_job_id not in queue or queue[ref.backend_job_id].get("JobStatus") == REMOVED}
        polled = {ref.backend_job_id for ref in jobs}
        for table in (self._unmatched_since, self._missing_since):
            for stale in set(table) - polled:
                del table[stale]

    def _departed(self, refs: list[JobRef]) -> dict[str, JobStatus]:
        """Jobs neither in the queue nor back with a result. The history is asked about each when
        first missed and when its grace ends; in between there is no news."""
        now = now_us()
        due = [ref for ref in refs if ref.backend_job_id not in self._missing_since
               or now - self._missing_since[ref.backend_job_id] > self.lost_grace_s * 1e6]
        statuses: dict[str, JobStatus] = {ref.backend_job_id: NoNews() for ref in refs}
        if not due:
            return statuses
        clusters = ", ".join(ref.backend_job_id.split(".")[0] for ref in due)
        try:
            found = {job_id(ad): ad for ad in self._call(
                "history", constraint=f"{self._ours()} && member(ClusterId, {{{clusters}}})",
                projection=PROJECTION, match=len(due))}
        except BackendUnavailable as exc:
            log.warning("%s; no news of %d jobs that left the queue", exc, len(due))
            return statuses
        for ref in due:
            ad = found.get(ref.backend_job_id)
            if ad is not None:
                statuses[ref.backend_job_id] = departed_status(ad, ref.run_dir)
            elif ref.backend_job_id not in self._missing_since:
                self._missing_since[ref.backend_job_id] = now
            else:
                statuses[ref.backend_job_id] = Lost(
                    f"HTCondor has no record of job {ref.backend_job_id} (not in the queue, not in the "
                    f"history, no result returned) for more than {describe_duration(self.lost_grace_s)}")
        return statuses

    def _find(self, job: Job) -> str | None:
        """The job already submitted for this attempt, if any."""
        constraint = (f"{self._ours()} && {TASK_ATTRIBUTE} == {classad2.quote(job.task_id)} "
                      f"&& {ATTEMPT_ATTRIBUTE} == {job.attempt}")
        ads = self._call("query", constraint=constraint, projection=["ClusterId", "ProcId"])
        return job_id(ads[0]) if ads else None

    def _ours(self) -> str:
        return f"{SERVICE_ATTRIBUTE} == {classad2.quote(self.template.service_id)}"

    def _call(self, method: str, *args, **kwargs):
        """One call to the schedd; BackendUnavailable (and the schedd found again next time) when
        it cannot be located or reached, or refuses."""
        try:
            if self._schedd is None:
                self._schedd = self._locate()
            answer = getattr(self._schedd, method)(*args, **kwargs)
        except htcondor2.HTCondorException as exc:
            self._schedd = None
            self._problem = f"the HTCondor schedd cannot be reached or refused `{method}`: {exc}"
            raise BackendUnavailable(self._problem) from None
        self._problem = None
        return answer
