"""The HTCondor backend's facts, straight from its poll, for what the full runs do not force:
a job HTCondor restarted before the poller saw the eviction, a worker that dies without a result,
a removal of ours that the task record missed, an unreadable result, a submission repeated after
a crash, and calls it never needs to make. The pool runs real processes (shell workers here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tes_cts.backends.base import Evicted, Finished, Held, JobRef, Lost, Removed
from tes_cts.backends.htcondor import SUBMISSION_FILE, HTCondorBackend
from tes_cts.backends.htcondor_description import JobTemplate
from tes_cts.jobfiles import Job

from .builders import htcondor_backend
from .condor_sim import HELD, RUNNING, SimulatedSchedd


@pytest.fixture
def simulated_schedd(tmp_path):
    pool = SimulatedSchedd(tmp_path / "pool", slots=1).start()
    yield pool
    pool.close()


def backend_running(tmp_path, schedd, settings, script: str) -> HTCondorBackend:
    """Jobs whose worker is a shell script (the job file's name arrives as $1)."""
    template = JobTemplate("test.tes-cts", ("/bin/sh", "-c", script, "worker"), environment={"PATH": "/usr/bin:/bin"})
    return htcondor_backend(settings, tmp_path / "work", template, lambda: schedd, lost_grace_s=0.5)


def submitted(backend: HTCondorBackend, task_id: str = "t1", attempt: int = 1) -> JobRef:
    job = Job(task_id=task_id, attempt=attempt, task={"executors": [{"image": "i", "command": ["c"]}]},
              run_dir=backend.run_dir(task_id, attempt))
    return JobRef(task_id, attempt, backend.submit(job, "basic:alice"), job.run_dir)


def poll_until(backend, ref, predicate, schedd, timeout=20.0):
    status = None

    def reached(_pool) -> bool:
        nonlocal status
        status = backend.poll([ref])[ref.backend_job_id]
        return predicate(status)

    schedd.wait_until(reached, timeout)
    return status


def test_a_run_htcondor_restarted_after_an_eviction_is_still_an_eviction(tmp_path, simulated_schedd, settings):
    backend = backend_running(tmp_path, simulated_schedd, settings, "sleep 30")
    ref = submitted(backend)
    simulated_schedd.wait_until(lambda pool: pool.status_of(ref.backend_job_id) == RUNNING)
    simulated_schedd.evict(ref.backend_job_id, "PREEMPT expression evaluated to true")
    simulated_schedd.wait_until(lambda pool: pool.queue[ref.backend_job_id]["NumJobStarts"] == 2
                                and pool.status_of(ref.backend_job_id) == RUNNING)
    status = backend.poll([ref])[ref.backend_job_id]
    assert status == Evicted("HTCondor stopped the job on slot1@sim-node: PREEMPT expression evaluated to true; "
                             "HTCondor had started it again")  # the one fact: no progress


def test_a_worker_that_dies_without_a_result_is_held_as_a_transfer_fault(tmp_path, simulated_schedd, settings):
    backend = backend_running(tmp_path, simulated_schedd, settings, "echo cannot start >&2; exit 127")
    ref = submitted(backend)
    status = poll_until(backend, ref, lambda s: isinstance(s, Held), simulated_schedd)
    assert status.transient
    assert "result.json: (errno 2) No such file or directory (HoldReasonCode 12, subcode 2)" in status.reason
    assert (Path(ref.run_dir) / "worker.err").read_text() == "cannot start\n"


def test_a_held_job_is_never_running(tmp_path, simulated_schedd, settings):
    backend = backend_running(tmp_path, simulated_schedd, settings, "sleep 30")
    ref = submitted(backend)
    simulated_schedd.wait_until(lambda pool: pool.status_of(ref.backend_job_id) == RUNNING)
    simulated_schedd.hold(ref.backend_job_id, "held by admin", code=1)
    status = backend.poll([ref])[ref.backend_job_id]
    assert simulated_schedd.status_of(ref.backend_job_id) == HELD
    assert isinstance(status, Held)  # the one fact: no progress
    assert status.reason == "HTCondor held the job: held by admin (HoldReasonCode 1, subcode 0)"
    assert not status.transient


def test_our_own_removal_of_a_job_the_task_still_names_is_a_lost_attempt(tmp_path, simulated_schedd, settings):
    backend = backend_running(tmp_path, simulated_schedd, settings, "sleep 30")
    ref = submitted(backend)
    backend.cancel(ref)
    status = poll_until(backend, ref, lambda s: isinstance(s, Lost), simulated_schedd)
    assert status.reason == "the job was removed by tes-cts"


def test_an_unreadable_result_is_a_system_error_result(tmp_path, simulated_schedd, settings):
    backend = backend_running(tmp_path, simulated_schedd, settings, "mkdir logs; echo '{not json' > result.json")
    ref = submitted(backend)
    status = poll_until(backend, ref, lambda s: isinstance(s, Finished), simulated_schedd)
    assert status.result.outcome == "system_error" and "result.json cannot be read" in status.result.reason


def test_a_submission_repeated_after_a_crash_finds_the_job(tmp_path, simulated_schedd, settings):
    backend = backend_running(tmp_path, simulated_schedd, settings, "sleep 30")
    ref = submitted(backend)
    # The poller died after the schedd queued the job and before the id was recorded.
    (Path(ref.run_dir) / SUBMISSION_FILE).write_text(json.dumps({"job_id": None}))
    simulated_schedd.calls.clear()
    assert submitted(backend).backend_job_id == ref.backend_job_id
    assert dict(simulated_schedd.calls) == {"query": 1}
    # Recorded: no call at all.
    simulated_schedd.calls.clear()
    assert submitted(backend).backend_job_id == ref.backend_job_id and not simulated_schedd.calls
    # Another attempt is another job.
    assert submitted(backend, attempt=2).backend_job_id != ref.backend_job_id


def test_cancel_of_a_job_that_left_the_queue_makes_no_call(tmp_path, simulated_schedd, settings):
    backend = backend_running(tmp_path, simulated_schedd, settings, "exit 0")
    ref = submitted(backend)
    poll_until(backend, ref, lambda s: isinstance(s, Held), simulated_schedd)  # no result.json: held
    simulated_schedd.remove(ref.backend_job_id, "condor_rm by admin")
    poll_until(backend, ref, lambda s: isinstance(s, Removed), simulated_schedd)
    simulated_schedd.calls.clear()
    backend.cancel(ref)
    assert not simulated_schedd.calls
