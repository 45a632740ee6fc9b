"""The poller's decisions, with a backend whose reports the test scripts.

The backend here reports facts the test chooses (progress, a result, a lost job, an engine that
is down) so that every branch, race and retry can be forced; the end-to-end tests run the same
poller against the real local backend and Docker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tes_cts.backends.base import (  # the facts
    Backend,
    BackendUnavailable,
    Evicted,
    Finished,
    Held,
    JobRef,
    JobStatus,
    Lost,
    NoNews,
    Removed,
    Running,
    Waiting,
)
from tes_cts.backends.metered import MeteredBackend
from tes_cts.clock import now_us
from tes_cts.jobfiles import Job, Progress, Result
from tes_cts.model.states import Phase
from tes_cts.model.views import View, render_task
from tes_cts.poller import Poller
from tes_cts.poller.reconcile import RUNTIME_LIMIT_GRACE_S
from tes_cts.tasks import attempts
from tes_cts.tasks.attempts import RUNNING_SINCE_KEY, STARTED_US_KEY
from tes_cts.tasks.lifecycle import move, update

from .builders import poller_config, task_record


class ScriptedBackend(Backend):
    kind = "scripted"
    runs = Path("/runs")

    def __init__(self):
        self.submitted: list[Job] = []
        self.canceled: list[JobRef] = []
        self.reports: dict[str, JobStatus] = {}   # backend job id -> what poll says
        self.engine_down: str | None = None     # what engine_problem says
        self.capacity = 100
        self.refuse_submit: str | None = None

    def run_dir(self, task_id, attempt):
        return f"/runs/{task_id}/{attempt}"

    def never_fits(self, job):
        cores = (job.task.get("resources") or {}).get("cpu_cores", 1)
        return f"asks for {cores} cores, has 8" if cores > 8 else None

    def admits(self, job):
        return len(self.submitted) - len(self.canceled) < self.capacity

    def engine_problem(self):
        return self.engine_down

    def submit(self, job, owner=""):
        if self.refuse_submit:
            raise BackendUnavailable(self.refuse_submit)
        self.submitted.append(job)
        return f"job-{job.task_id}-{job.attempt}"

    def poll(self, jobs):
        return {ref.backend_job_id: self.reports.get(ref.backend_job_id, NoNews()) for ref in jobs}

    def cancel(self, job):
        self.canceled.append(job)


@pytest.fixture
def scripted_backend():
    return ScriptedBackend()


@pytest.fixture
def poller(sqlite_db, scripted_backend, settings):
    return Poller(sqlite_db, scripted_backend, poller_config(settings, max_attempts=2, batch_size=3), poller_id="p1")


def queued(db, **task) -> str:
    record = task_record(**task)
    db.insert(record)
    return record.id


def phases(db, task_id) -> list[str]:
    return [h["phase"] for h in db.get(task_id).history]


def result(outcome="complete", reason="all executors succeeded") -> Result:
    return Result(outcome=outcome, reason=reason, start_time="2026-11-21T10:00:00.000000Z",
                  end_time="2026-11-21T10:00:09.000000Z",
                  executor_logs=[{"exit_code": 0 if outcome == "complete" else 1, "stdout": "hi\n"}],
                  outputs=[{"url": "file:///o/x", "path": "/o/x", "size_bytes": 3}],
                  system_logs=["staged 0 inputs"], metadata={"host": "node-7"})


def test_a_queued_task_is_claimed_submitted_and_recorded(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SUBMITTED and record.lease is None
    assert [j.task_id for j in scripted_backend.submitted] == [task_id]
    assert scripted_backend.submitted[0].attempt == 1 and scripted_backend.submitted[0].run_dir == f"/runs/{task_id}/1"
    meta = record.logs[0]["metadata"]
    assert meta == {"backend": "scripted", "attempt": "1", "backend_job_id": f"job-{task_id}-1"}
    assert "start_time" in record.logs[0]
    assert phases(sqlite_db, task_id) == ["created", "preflight", "submitted"]


def test_progress_and_result_pass_every_state_in_order(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db, executors=[{"image": "i", "command": ["a"]}, {"image": "i", "command": ["b"]}])
    poller.cycle()
    job_id = f"job-{task_id}-1"
    scripted_backend.reports[job_id] = Running(Progress(step="running", executor=1))
    poller.cycle()  # the worker raced ahead to executor 1: the task still passes each phase
    assert phases(sqlite_db, task_id) == ["created", "preflight", "submitted", "staging_in", "running", "running"]
    assert [h["reason"] for h in sqlite_db.get(task_id).history][-2:] == ["running executor 0", "running executor 1"]
    scripted_backend.reports[job_id] = Finished(result(), host="node-7")
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.COMPLETE
    assert phases(sqlite_db, task_id)[-2:] == ["staging_out", "complete"]
    log = record.logs[0]
    assert log["logs"][0]["stdout"] == "hi\n" and log["outputs"][0]["size_bytes"] == 3
    assert log["metadata"]["host"] == "node-7" and log["end_time"].endswith("Z")
    assert "staged 0 inputs" in log["system_logs"]


def test_an_executor_error_is_final_with_the_workers_reason(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    poller.cycle()
    scripted_backend.reports[f"job-{task_id}-1"] = Finished(result("executor_error", "executor 0 exited with code 1"))
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.EXECUTOR_ERROR
    assert record.history[-1]["reason"] == "executor 0 exited with code 1"
    assert phases(sqlite_db, task_id) == ["created", "preflight", "submitted", "staging_in", "running",
                                          "staging_out", "executor_error"]


def test_a_system_error_from_the_worker_is_not_retried(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    poller.cycle()
    scripted_backend.reports[f"job-{task_id}-1"] = Finished(result("system_error", "image x not found"))
    poller.cycle()
    poller.cycle()
    assert sqlite_db.get(task_id).phase is Phase.SYSTEM_ERROR
    assert len(scripted_backend.submitted) == 1


def test_a_lost_attempt_is_retried_with_a_new_log_then_fails_at_the_limit(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    poller.cycle()
    scripted_backend.reports[f"job-{task_id}-1"] = Lost("worker process 123 died without writing a result")
    poller.cycle()  # attempt 1 lost -> requeued -> attempt 2 dispatched in the same cycle
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SUBMITTED and len(record.logs) == 2
    assert "attempt 1 failed: worker process 123 died" in record.logs[0]["system_logs"][-1]
    assert record.logs[0]["end_time"] and record.logs[1]["metadata"]["attempt"] == "2"
    assert [r.attempt for r in scripted_backend.canceled] == [1]  # the dead attempt's leftovers are removed
    scripted_backend.reports[f"job-{task_id}-2"] = Lost("worker process 456 died without writing a result")
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SYSTEM_ERROR
    assert record.history[-1]["reason"] == "worker process 456 died without writing a result (gave up after 2 attempts)"
    assert phases(sqlite_db, task_id).count("created") == 2


def test_cancel_of_a_submitted_task_stops_the_job(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    poller.cycle()
    record = sqlite_db.get(task_id)
    move(sqlite_db, record, Phase.CANCELING, "cancel requested by the user")
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.CANCELED
    assert [r.backend_job_id for r in scripted_backend.canceled] == [f"job-{task_id}-1"]
    assert record.logs[0]["end_time"] and "canceled by the user" in record.logs[0]["system_logs"]


def test_a_cancel_that_lands_during_submission_does_not_leave_the_job_running(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    original_submit = scripted_backend.submit

    def submit_while_user_cancels(job, owner=""):
        job_id = original_submit(job, owner)
        move(sqlite_db, sqlite_db.get(task_id), Phase.CANCELING, "cancel requested by the user")
        return job_id

    scripted_backend.submit = submit_while_user_cancels
    poller.cycle()
    assert [r.backend_job_id for r in scripted_backend.canceled] == [f"job-{task_id}-1"]
    poller.cycle()
    assert sqlite_db.get(task_id).phase is Phase.CANCELED


@pytest.fixture
def wait_clock(monkeypatch):
    """The clock that times a queued task's wait, moved on by the test: `wait_clock.advance(12)`."""

    class Clock:
        us = now_us()

        def advance(self, seconds: float) -> None:
            self.us += int(seconds * 1e6)

    clock = Clock()
    monkeypatch.setattr(attempts, "now_us", lambda: clock.us)
    return clock


def test_engine_down_keeps_tasks_queued_with_the_reason_said_once(sqlite_db, scripted_backend, poller, wait_clock):
    scripted_backend.engine_down = "Cannot connect to the Docker daemon"
    task_id = queued(sqlite_db)
    for _ in range(3):
        poller.cycle()
        wait_clock.advance(20)
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.CREATED and scripted_backend.submitted == []
    assert record.logs[0]["system_logs"] == ["waiting: Cannot connect to the Docker daemon"]
    assert "start_time" not in record.logs[0]
    scripted_backend.engine_down = None
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SUBMITTED and len(record.logs) == 1  # the pending entry became attempt 1
    assert record.logs[0]["metadata"]["attempt"] == "1"
    assert record.logs[0]["system_logs"] == ["waiting: Cannot connect to the Docker daemon",
                                             "waited 1m for the scripted backend: Cannot connect to the Docker daemon"]


def test_engine_down_longer_than_the_configured_wait_fails_the_task(sqlite_db, scripted_backend, settings):
    scripted_backend.engine_down = "engine down"
    poller = Poller(sqlite_db, scripted_backend, poller_config(settings, engine_wait_s=0.001))
    task_id = queued(sqlite_db)
    import time

    time.sleep(0.01)
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SYSTEM_ERROR
    assert "the scripted backend was unavailable for more than" in record.history[-1]["reason"]


def test_a_refused_submission_requeues_the_task(sqlite_db, scripted_backend, poller):
    scripted_backend.refuse_submit = "engine went away"
    task_id = queued(sqlite_db)
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.CREATED and record.lease is None
    assert "not submitted, will retry: engine went away" == record.history[-1]["reason"]
    scripted_backend.refuse_submit = None
    poller.cycle()
    assert sqlite_db.get(task_id).phase is Phase.SUBMITTED


def test_a_task_that_can_never_fit_fails_at_once(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db, resources={"cpu_cores": 64})
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SYSTEM_ERROR and "asks for 64 cores" in record.history[-1]["reason"]
    assert record.logs[0]["system_logs"] == ["asks for 64 cores, has 8"]


def test_admission_waits_and_dispatch_is_oldest_first(sqlite_db, scripted_backend, poller, wait_clock):
    scripted_backend.capacity = 2
    ids = [queued(sqlite_db) for _ in range(5)]
    poller.cycle()
    assert [j.task_id for j in scripted_backend.submitted] == ids[:2]
    assert sqlite_db.get(ids[2]).logs[0]["system_logs"] == [
        "waiting: the scripted backend has no free slot for this task's resources"]
    assert "_wait" not in render_task(sqlite_db.get(ids[2]), View.FULL)["logs"][0]
    scripted_backend.reports[f"job-{ids[0]}-1"] = Finished(result())
    scripted_backend.capacity = 3
    wait_clock.advance(12)
    poller.cycle()
    assert [j.task_id for j in scripted_backend.submitted] == ids[:3]
    # Once the slot is there, the wait reads as over, with its length.
    assert sqlite_db.get(ids[2]).logs[0]["system_logs"] == [
        "waiting: the scripted backend has no free slot for this task's resources", "waited 12s for a free slot"]
    assert "_wait" not in sqlite_db.get(ids[2]).logs[0]
    assert sqlite_db.get(ids[3]).logs[0]["system_logs"] == [
        "waiting: the scripted backend has no free slot for this task's resources"]


def test_a_wait_of_another_kind_ends_the_one_before(sqlite_db, scripted_backend, poller, wait_clock):
    scripted_backend.engine_down = "engine down"
    task_id = queued(sqlite_db)
    poller.cycle()
    wait_clock.advance(40)
    scripted_backend.engine_down, scripted_backend.capacity = None, 0
    poller.cycle()
    wait_clock.advance(5)
    scripted_backend.capacity = 1
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SUBMITTED
    assert record.logs[0]["system_logs"] == [
        "waiting: engine down", "waited 40s for the scripted backend: engine down",
        "waiting: the scripted backend has no free slot for this task's resources", "waited 5s for a free slot"]


def test_a_retry_that_waits_says_so_in_the_failed_attempts_log(sqlite_db, scripted_backend, poller, wait_clock):
    task_id = queued(sqlite_db)
    poller.cycle()
    scripted_backend.capacity = 0
    scripted_backend.reports[f"job-{task_id}-1"] = Lost("worker process 123 died without writing a result")
    poller.cycle()
    wait_clock.advance(3)
    scripted_backend.capacity = 100
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SUBMITTED and len(record.logs) == 2
    assert record.logs[0]["system_logs"][-2:] == [
        "waiting: the scripted backend has no free slot for this task's resources", "waited 3s for a free slot"]


def test_two_pollers_never_dispatch_the_same_task_twice(sqlite_db, scripted_backend, settings):
    ids = [queued(sqlite_db) for _ in range(20)]
    first = Poller(sqlite_db, scripted_backend, poller_config(settings, batch_size=7), poller_id="p1")
    second = Poller(sqlite_db, scripted_backend, poller_config(settings, batch_size=7), poller_id="p2")
    import threading

    threads = [threading.Thread(target=p.cycle) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(j.task_id for j in scripted_backend.submitted) == sorted(ids)


def test_a_dead_pollers_claim_is_taken_over_after_its_lease(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    record = sqlite_db.get(task_id)
    # Poller p0 claimed it and died before it could submit.
    move(sqlite_db, record, Phase.PREFLIGHT, "attempt 1 claimed by poller p0",
         lambda r: (r.logs.append({"logs": [], "outputs": [], "metadata": {"backend": "scripted", "attempt": "1"}}),
                    setattr(r, "lease", {"owner": "p0", "expires_us": now_us() + 60_000_000})))
    poller.cycle()
    assert scripted_backend.submitted == []  # the lease still holds
    record = sqlite_db.get(task_id)
    update(sqlite_db, record, lambda r: r.lease.__setitem__("expires_us", now_us() - 1))
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SUBMITTED and [j.attempt for j in scripted_backend.submitted] == [1]


def test_the_poller_enforces_the_runtime_limit_if_the_worker_does_not(sqlite_db, scripted_backend, settings):
    poller = Poller(sqlite_db, scripted_backend, poller_config(settings, runtime_limit_s=0.001))
    task_id = queued(sqlite_db)
    poller.cycle()
    update(sqlite_db, sqlite_db.get(task_id),
           lambda r: r.logs[0].__setitem__(STARTED_US_KEY, now_us() - int((RUNTIME_LIMIT_GRACE_S + 1) * 1e6)))
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SYSTEM_ERROR
    assert record.history[-1]["reason"] == "exceeded runtime limit of 0.001s"
    assert [r.backend_job_id for r in scripted_backend.canceled] == [f"job-{task_id}-1"]


def test_a_runtime_backend_parameter_reaches_the_job(sqlite_db, scripted_backend, poller):
    queued(sqlite_db, resources={"backend_parameters": {"runtime": "PT10M"}})
    poller.cycle()
    assert scripted_backend.submitted[0].runtime_limit_s == 600


def test_private_bookkeeping_never_reaches_a_view(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    poller.cycle()
    scripted_backend.reports[f"job-{task_id}-1"] = Running(Progress(step="running", executor=0))
    poller.cycle()
    full = render_task(sqlite_db.get(task_id), View.FULL)
    assert not [key for key in full["logs"][0] if key.startswith("_")]


class Report:
    def __init__(self, verified=None, problems=()):
        self.verified = verified or {}
        self.problems = list(problems)


def test_preflight_problems_fail_the_task_before_any_compute(sqlite_db, scripted_backend, settings):
    checked = []

    def preflight(inputs):
        checked.append([i["url"] for i in inputs if "url" in i])
        return Report(problems=["s3://b/a has no CRC64NVME checksum; add one with: aws s3 cp ...",
                                "s3://b/missing: no such object"])

    poller = Poller(sqlite_db, scripted_backend, poller_config(settings, preflight=preflight))
    task_id = queued(sqlite_db, inputs=[{"path": "/a", "url": "s3://b/a"}, {"path": "/m", "url": "s3://b/missing"},
                                        {"path": "/c", "content": "x"}])
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SYSTEM_ERROR and scripted_backend.submitted == []
    assert checked == [["s3://b/a", "s3://b/missing"]]
    assert record.logs[0]["system_logs"] == [
        "s3://b/a has no CRC64NVME checksum; add one with: aws s3 cp ...", "s3://b/missing: no such object"]
    assert record.history[-1]["reason"].startswith("input check failed: s3://b/a has no CRC64NVME")
    assert phases(sqlite_db, task_id) == ["created", "preflight", "system_error"]


def test_verified_inputs_are_recorded_once_and_reach_every_attempt(sqlite_db, scripted_backend, settings):
    verified = {"0": [{"url": "s3://b/a", "size": 5, "etag": '"e"', "crc64nvme": "AAAAAAAAAAA="}]}
    calls = []
    config = poller_config(settings, preflight=lambda inputs: calls.append(1) or Report(verified))
    poller = Poller(sqlite_db, scripted_backend, config)
    task_id = queued(sqlite_db, inputs=[{"path": "/a", "url": "s3://b/a"}])
    poller.cycle()
    assert sqlite_db.get(task_id).verified_inputs == verified
    assert scripted_backend.submitted[0].verified_inputs == verified
    scripted_backend.reports[f"job-{task_id}-1"] = Lost("node lost")
    poller.cycle()  # attempt 2 uses what preflight saw before attempt 1: a change is caught
    assert [j.attempt for j in scripted_backend.submitted] == [1, 2]
    assert scripted_backend.submitted[1].verified_inputs == verified and calls == [1]


def test_tasks_without_url_inputs_skip_preflight(sqlite_db, scripted_backend, settings):
    config = poller_config(settings, preflight=lambda inputs: pytest.fail("not needed"))
    poller = Poller(sqlite_db, scripted_backend, config)
    queued(sqlite_db, inputs=[{"path": "/c", "content": "x"}])
    poller.cycle()
    assert len(scripted_backend.submitted) == 1


# --- facts of backends with a queue of their own (HTCondor) ------------------------------------

def submitted_task(db, poller, **task) -> tuple[str, str]:
    task_id = queued(db, **task)
    poller.cycle()
    return task_id, f"job-{task_id}-1"


def test_a_waiting_job_says_why_once_and_fails_only_when_unmatched_too_long(sqlite_db, scripted_backend, settings):
    poller = Poller(sqlite_db, scripted_backend, poller_config(settings, unmatched_wait_s=60), poller_id="p1")
    task_id, job = submitted_task(sqlite_db, poller)
    scripted_backend.reports[job] = Waiting("idle in the queue: insufficient priority")
    poller.cycle()
    poller.cycle()
    scripted_backend.reports[job] = Waiting("no machine matches", unmatched_since_us=now_us() - 30_000_000)
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SUBMITTED
    assert record.logs[0]["system_logs"] == ["waiting: idle in the queue: insufficient priority",
                                             "waiting: no machine matches"]
    scripted_backend.reports[job] = Waiting("no machine matches", unmatched_since_us=now_us() - 61_000_000)
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert record.phase is Phase.SYSTEM_ERROR and record.history[-1]["reason"] == "no machine matches for more than 1m"
    assert [r.backend_job_id for r in scripted_backend.canceled] == [job]


def test_a_waiting_job_never_trips_the_runtime_limit_which_counts_from_its_start(sqlite_db, scripted_backend, settings):
    poller = Poller(sqlite_db, scripted_backend, poller_config(settings, runtime_limit_s=1), poller_id="p1")
    task_id, job = submitted_task(sqlite_db, poller)
    long_ago = now_us() - int((RUNTIME_LIMIT_GRACE_S + 10) * 1e6)
    update(sqlite_db, sqlite_db.get(task_id), lambda r: r.logs[0].__setitem__(STARTED_US_KEY, long_ago))
    scripted_backend.reports[job] = Waiting("idle")
    poller.cycle()
    scripted_backend.reports[job] = Running(Progress(step="running"))
    poller.cycle()  # queued for longer than the limit, but it has only just started
    assert sqlite_db.get(task_id).phase is Phase.RUNNING
    update(sqlite_db, sqlite_db.get(task_id), lambda r: r.logs[0].__setitem__(RUNNING_SINCE_KEY, long_ago))
    poller.cycle()
    assert sqlite_db.get(task_id).history[-1]["reason"] == "exceeded runtime limit of 1s"


@pytest.mark.parametrize("fact,phase,attempts", [
    (Held("disk full on node-3", transient=True), Phase.SUBMITTED, 2),
    (Held("over its memory request", transient=False), Phase.SYSTEM_ERROR, 1),
    (Evicted("node-3 is draining"), Phase.SUBMITTED, 2),
    (Removed("removed by an admin"), Phase.SYSTEM_ERROR, 1),
])
def test_held_evicted_and_removed_jobs_are_retried_or_failed_with_the_reason(sqlite_db, scripted_backend, poller,
                                                                             fact, phase, attempts):
    task_id, job = submitted_task(sqlite_db, poller)
    scripted_backend.reports[job] = Running(Progress(step="running"))
    poller.cycle()
    scripted_backend.reports[job] = fact
    poller.cycle()  # a retry is dispatched again in the same cycle
    record = sqlite_db.get(task_id)
    assert record.phase is phase and len(record.logs) == attempts
    assert fact.reason in record.logs[0]["system_logs"][-1]
    phases_seen = [h["phase"] for h in record.history]
    after_running = record.history[phases_seen.index("running") + 1]["state"]  # never left shown as running
    assert after_running == ("SYSTEM_ERROR" if phase is Phase.SYSTEM_ERROR else "QUEUED")
    assert [r.backend_job_id for r in scripted_backend.canceled] == [job]


def test_a_cancel_the_backend_cannot_deliver_is_tried_again(sqlite_db, scripted_backend, poller):
    task_id, job = submitted_task(sqlite_db, poller)
    move(sqlite_db, sqlite_db.get(task_id), Phase.CANCELING, "cancel requested by the user")
    scripted_backend.cancel = lambda ref: (_ for _ in ()).throw(BackendUnavailable("schedd down"))
    other = queued(sqlite_db)
    poller.cycle()
    assert sqlite_db.get(task_id).phase is Phase.CANCELING  # still to stop
    assert sqlite_db.get(other).phase is Phase.SUBMITTED    # the rest of the cycle went on
    del scripted_backend.cancel
    poller.cycle()
    assert sqlite_db.get(task_id).phase is Phase.CANCELED


def test_a_cycle_polls_every_active_task_in_one_call(sqlite_db, scripted_backend, settings):
    poller = Poller(sqlite_db, scripted_backend, poller_config(settings, batch_size=3), poller_id="p1")
    ids = [queued(sqlite_db) for _ in range(10)]
    poller.cycle()
    calls = []
    original = scripted_backend.poll
    scripted_backend.poll = lambda refs: calls.append(len(refs)) or original(refs)
    poller.cycle()
    assert calls == [10] and all(sqlite_db.get(i).phase is Phase.SUBMITTED for i in ids)


def test_a_worker_that_raced_to_its_result_passes_every_state_in_one_write(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db, executors=[{"image": "i", "command": ["a"]}, {"image": "i", "command": ["b"]}])
    poller.cycle()
    submitted_version = sqlite_db.get(task_id).version
    scripted_backend.reports[f"job-{task_id}-1"] = Finished(result(), host="node-7")
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert phases(sqlite_db, task_id) == ["created", "preflight", "submitted", "staging_in", "running",
                                          "staging_out", "complete"]
    assert record.version == submitted_version + 1  # one compare-and-set for the four moves
    times = [h["time"] for h in record.history]
    assert times == sorted(times)


def test_progress_seen_late_moves_through_every_executor_in_one_write(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db, executors=[{"image": "i", "command": [c]} for c in "abc"])
    poller.cycle()
    submitted_version = sqlite_db.get(task_id).version
    scripted_backend.reports[f"job-{task_id}-1"] = Running(Progress("running", executor=2))
    poller.cycle()
    record = sqlite_db.get(task_id)
    assert [(h["phase"], h["reason"]) for h in record.history[3:]] == [
        ("staging_in", "worker started: staging inputs"), ("running", "running executor 0"),
        ("running", "running executor 1"), ("running", "running executor 2")]
    assert record.version == submitted_version + 1
    assert record.logs[-1][attempts.EXECUTOR_KEY] == 2


# --- what the poller counts (prometheus_client's default registry: this process counts in memory) --------


def counted(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_cycle_counts_its_duration_the_tasks_it_handled_and_the_moves_it_made(sqlite_db, scripted_backend, poller):
    cycles, handled = counted("tes_cts_poller_cycle_duration_seconds_count"), counted("tes_cts_poller_cycle_tasks_sum")
    claimed = counted("tes_cts_task_transitions_total", phase="preflight", state="QUEUED")
    submitted = counted("tes_cts_task_transitions_total", phase="submitted", state="INITIALIZING")
    for _ in range(2):
        queued(sqlite_db)
    poller.cycle()
    assert counted("tes_cts_poller_cycle_duration_seconds_count") == cycles + 1
    assert counted("tes_cts_poller_cycle_tasks_sum") == handled + 2
    assert counted("tes_cts_task_transitions_total", phase="preflight", state="QUEUED") == claimed + 2
    assert counted("tes_cts_task_transitions_total", phase="submitted", state="INITIALIZING") == submitted + 2


def test_the_backend_calls_are_counted_by_operation_failures_apart(sqlite_db, scripted_backend, settings):
    poller = Poller(sqlite_db, MeteredBackend(scripted_backend), poller_config(settings), poller_id="p1")
    calls = {operation: counted("tes_cts_backend_calls_total", backend="scripted", operation=operation)
             for operation in ("submit", "poll", "engine_check")}
    failures = counted("tes_cts_backend_call_failures_total", backend="scripted", operation="submit")
    queued(sqlite_db)
    poller.cycle()  # the engine check, one submit
    poller.cycle()  # one poll
    scripted_backend.refuse_submit = "the launcher is gone"
    queued(sqlite_db)
    poller.cycle()
    assert {operation: counted("tes_cts_backend_calls_total", backend="scripted", operation=operation) - before
            for operation, before in calls.items()} == {"submit": 2, "poll": 2, "engine_check": 2}
    assert counted("tes_cts_backend_call_failures_total", backend="scripted", operation="submit") == failures + 1
    assert poller.backend.submitted == scripted_backend.submitted  # the rest of the backend is its own


def test_a_results_measurements_are_counted_once_and_never_shown(sqlite_db, scripted_backend, poller):
    task_id = queued(sqlite_db)
    poller.cycle()
    measured = result()
    measured.measurements = {"staging": [{"scheme": "s3", "direction": "output", "bytes": 1000, "seconds": 0.5}],
                             "checksum_mismatches": [{"scheme": "s3", "direction": "output", "count": 1}]}
    staged = counted("tes_cts_staging_bytes_total", scheme="s3", direction="output")
    timed = counted("tes_cts_staging_duration_seconds_count", scheme="s3", direction="output")
    mismatches = counted("tes_cts_checksum_mismatches_total", scheme="s3", direction="output")
    scripted_backend.reports[f"job-{task_id}-1"] = Finished(measured, host="node-7")
    poller.cycle()
    poller.cycle()  # the task is finished: its result is not counted again
    assert sqlite_db.get(task_id).phase is Phase.COMPLETE
    assert counted("tes_cts_staging_bytes_total", scheme="s3", direction="output") == staged + 1000
    assert counted("tes_cts_staging_duration_seconds_count", scheme="s3", direction="output") == timed + 1
    assert counted("tes_cts_checksum_mismatches_total", scheme="s3", direction="output") == mismatches + 1
    assert "measurements" not in str(render_task(sqlite_db.get(task_id), View.FULL))
