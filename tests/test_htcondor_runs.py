"""Real tasks through the poller, the HTCondor backend and a simulated pool (tests/condor_sim.py)
that runs each job's worker on this host, which runs the executors in Docker: what users see
when jobs complete, fail, are canceled, held, evicted, removed by someone else or lost, cannot
be matched, or when the schedd stops answering."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tes_cts.backends import BACKEND_PARAMETERS
from tes_cts.backends.htcondor_description import JobTemplate
from tes_cts.database.sqlite import SqliteTaskDatabase
from tes_cts.model.states import TERMINAL_STATES, TesState
from tes_cts.model.views import View, render_task
from tes_cts.poller import Poller
from tes_cts.tasks.service import TaskService
from tes_cts.tasks.validation import ValidationLimits
from tes_cts.wiring import container_settings

from .builders import htcondor_backend, poller_config
from .condor_sim import SimulatedSchedd
from .docker_env import docker, docker_env
from .s3_server import s3_bucket, s3_client, s3_endpoint  # noqa: F401 (fixtures)

IMAGE = "tes-cts-test/busybox:1"
WORKER = (sys.executable, "-m", "tes_cts.backends.htcondor_job")


class Service:
    """The service side of a pool: task database, task service (as the API uses it), HTCondor backend
    and poller."""

    def __init__(self, root: Path, settings, schedd: SimulatedSchedd, template: JobTemplate, **poller):
        self.schedd = schedd
        self.out = root / "out"
        self.out.mkdir(parents=True)
        self.database = SqliteTaskDatabase(root / "tasks.sqlite3")
        self.tasks = TaskService(self.database, ValidationLimits(
            content_max_bytes=131072, file_roots=(str(self.out),),
            supported_backend_parameters=frozenset(BACKEND_PARAMETERS["htcondor"])))
        self.backend = htcondor_backend(settings, root / "work", template, lambda: schedd, lost_grace_s=1.0)
        config = {"interval_s": 0.1, "max_attempts": 2, "containers": replace(container_settings(settings), pull=False),
                  "file_roots": (str(self.out),), **poller}
        self.poller = Poller(self.database, self.backend, poller_config(settings, **config), poller_id="test")
        self.created: list[str] = []

    def create(self, *commands: list[str], owner: str = "basic:alice", **fields) -> str:
        executors = [{"image": IMAGE, "command": command} for command in commands]
        task_id = self.tasks.create({"executors": executors, **fields}, owner=owner)
        self.created.append(task_id)
        return task_id

    def view(self, task_id: str) -> dict:
        return render_task(self.database.get(task_id), View.FULL)

    def run_until(self, task_id: str, states=TERMINAL_STATES, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poller.cycle()
            if self.database.get(task_id).state in states:
                return self.view(task_id)
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} still {self.database.get(task_id).state} after {timeout}s: {self.view(task_id)}")

    def job_of(self, task_id: str, attempt: int = 1) -> str:
        return self.database.get(task_id).logs[attempt - 1]["metadata"]["backend_job_id"]

    def run_dir(self, task_id: str, attempt: int = 1) -> Path:
        return Path(self.backend.run_dir(task_id, attempt))

    def history_ad(self, job: str):
        return next(ad for ad in self.schedd.history_ads if f"{ad['ClusterId']}.{ad['ProcId']}" == job)

    def close(self) -> None:
        for task_id in self.created:  # containers of workers the pool killed hard live on
            ids = docker("ps", "-aq", "--filter", f"label=tes-cts.task={task_id}").stdout.split()
            if ids:
                docker("rm", "-f", *ids, check=False)
        self.database.close()


def template(**fields) -> JobTemplate:
    environment = {"PATH": os.environ["PATH"], "DOCKER_HOST": docker_env()["DOCKER_HOST"]}
    return JobTemplate(**{"service_id": "test.tes-cts", "worker_command": WORKER, "environment": environment,
                          "accounting_group": "group_tes", "concurrency_limit": "tes_cts", **fields})


@pytest.fixture
def simulated_schedd(tmp_path):
    pool = SimulatedSchedd(tmp_path / "pool", slots=2).start()
    yield pool
    pool.close()


@pytest.fixture
def service(tmp_path, settings, simulated_schedd, docker_image):
    opened = Service(tmp_path, settings, simulated_schedd, template(), unmatched_wait_s=2.0)
    yield opened
    opened.close()


def containers_of(task_id: str) -> list[str]:
    return docker("ps", "-aq", "--filter", f"label=tes-cts.task={task_id}").stdout.split()


def wait_for_containers(task_id: str, present: bool, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while bool(containers_of(task_id)) != present and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bool(containers_of(task_id)) == present


def negotiated(schedd: SimulatedSchedd, job: str) -> None:
    """Wait until the pool has tried to match the job."""
    schedd.wait_until(lambda pool: "LastRejMatchReason" in pool.queue[job])


def system_logs(view: dict, attempt: int = 1) -> str:
    return "\n".join(view["logs"][attempt - 1].get("system_logs", []))


# --- the ordinary outcomes --------------------------------------------------------------------


def test_a_task_completes_with_its_outputs_and_logs_brought_back(service):
    out = service.out
    task_id = service.create(["sh", "-c", "echo hello from the pool; echo result > /data/out.txt"],
                             outputs=[{"path": "/data/out.txt", "url": str(out / "out.txt")}])
    done = service.run_until(task_id)
    assert done["state"] == "COMPLETE", done
    log = done["logs"][0]
    assert log["logs"][0]["stdout"] == "hello from the pool\n" and log["logs"][0]["exit_code"] == 0
    assert (out / "out.txt").read_text() == "result\n"
    job = service.job_of(task_id)
    assert log["metadata"]["backend"] == "htcondor" and log["metadata"]["backend_job_id"] == job
    states = [h["state"] for h in service.database.get(task_id).history]
    assert states == ["QUEUED", "QUEUED", "INITIALIZING", "INITIALIZING", "RUNNING", "RUNNING", "COMPLETE"]
    # The worker ran in the pool's scratch directory; only the result and the logs came back.
    run_dir = service.run_dir(task_id)
    assert {p.name for p in run_dir.iterdir()} >= {"job.json", "result.json", "logs", "worker.out", "worker.err"}
    assert not (run_dir / "mounts").exists() and not (run_dir / "progress.json").exists()
    assert any(p.read_text() == "hello from the pool\n" for p in (run_dir / "logs").iterdir())
    ad = service.history_ad(job)
    assert (ad["TesTaskId"], ad["TesAttempt"], ad["TesOwner"]) == (task_id, 1, "basic:alice")
    assert ad["AccountingGroup"] == "group_tes.basic_alice" and ad["ConcurrencyLimits"] == "tes_cts.basic_alice"
    assert containers_of(task_id) == []


def test_a_failing_executor_is_an_executor_error(service):
    task_id = service.create(["sh", "-c", "echo oops >&2; exit 3"], ["echo", "never"])
    done = service.run_until(task_id)
    assert done["state"] == "EXECUTOR_ERROR"
    executors = done["logs"][0]["logs"]
    assert len(executors) == 1 and executors[0]["exit_code"] == 3 and executors[0]["stderr"] == "oops\n"


def test_an_idle_job_says_why_while_it_waits(service, simulated_schedd):
    first = service.create(["sleep", "3"])
    second = service.create(["sleep", "3"])
    service.run_until(first, {TesState.RUNNING})
    service.run_until(second, {TesState.RUNNING})
    third = service.create(["echo", "third"])  # both slots are busy
    service.run_until(third, {TesState.INITIALIZING})
    negotiated(simulated_schedd, service.job_of(third))
    service.poller.cycle()
    assert "waiting: idle in the HTCondor queue: PREEMPTION_REQUIREMENTS == False" in system_logs(service.view(third))
    assert service.run_until(third)["state"] == "COMPLETE"


def test_a_job_no_machine_can_run_fails_after_the_configured_wait(service):
    task_id = service.create(["echo", "never"], resources={"cpu_cores": 4})
    service.run_until(task_id, {TesState.INITIALIZING})
    negotiated(service.schedd, service.job_of(task_id))
    service.poller.cycle()
    # The pool's default memory and disk requests are in the job ad too, as condor_submit puts them.
    waiting = "no machine of the HTCondor pool matches the job (4 CPUs, 128 MiB of memory, 1024 KiB of disk and its requirements)"
    assert f"waiting: {waiting}" in system_logs(service.view(task_id))
    done = service.run_until(task_id, timeout=20)
    assert done["state"] == "SYSTEM_ERROR"
    assert service.database.get(task_id).history[-1]["reason"] == f"{waiting} for more than 2s"
    assert service.schedd.status_of(service.job_of(task_id)) is None  # removed from the queue


def test_a_task_requirement_the_pool_cannot_meet_is_unmatched(service):
    task_id = service.create(["echo", "never"],
                             resources={"backend_parameters": {"requirements": 'TARGET.Arch == "ARM64"'}})
    done = service.run_until(task_id, timeout=20)
    assert done["state"] == "SYSTEM_ERROR" and "no machine of the HTCondor pool matches" in system_logs(done)


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_removes_the_job_and_the_worker_stops_its_container(service, simulated_schedd):
    task_id = service.create(["sleep", "600"])
    service.run_until(task_id, {TesState.RUNNING})
    wait_for_containers(task_id, present=True)
    service.tasks.cancel(task_id, owner="basic:alice")
    done = service.run_until(task_id)
    assert done["state"] == "CANCELED"
    job = service.job_of(task_id)
    simulated_schedd.wait_until(lambda pool: pool.status_of(job) is None)
    assert service.history_ad(job)["RemoveReason"] == "removed by tes-cts"
    wait_for_containers(task_id, present=False)  # the worker got SIGTERM and cleaned up


# --- what the pool does on its own --------------------------------------------------------------


def test_a_transient_hold_is_retried_as_a_new_attempt_and_never_shown_running(service, simulated_schedd):
    task_id = service.create(["sh", "-c", "sleep 2; echo second attempt"])
    service.run_until(task_id, {TesState.RUNNING})
    job = service.job_of(task_id)
    reason = "Error from slot1@sim-node: SHADOW failed to receive file(s) from <127.0.0.1:9618>"
    simulated_schedd.hold(job, reason, code=12, subcode=110)
    done = service.run_until(task_id)
    assert done["state"] == "COMPLETE" and len(done["logs"]) == 2
    assert done["logs"][1]["logs"][0]["stdout"] == "second attempt\n"
    assert f"held: HTCondor held the job: {reason} (HoldReasonCode 12, subcode 110)" in system_logs(done)
    history = service.database.get(task_id).history
    held_at = next(i for i, h in enumerate(history) if "HTCondor held the job" in h["reason"])
    assert history[held_at]["state"] == "QUEUED"  # from RUNNING straight back to the queue
    assert service.history_ad(job)["RemoveReason"] == "removed by tes-cts"


def test_a_hold_a_new_attempt_would_meet_again_fails_the_task(service, simulated_schedd):
    task_id = service.create(["sleep", "600"])
    service.run_until(task_id, {TesState.RUNNING})
    job = service.job_of(task_id)
    simulated_schedd.hold(job, "Error from slot1@sim-node: memory usage exceeded request_memory", code=34)
    done = service.run_until(task_id)
    assert done["state"] == "SYSTEM_ERROR" and len(done["logs"]) == 1
    assert service.database.get(task_id).history[-1]["reason"] == (
        "held: HTCondor held the job: Error from slot1@sim-node: memory usage exceeded request_memory "
        "(HoldReasonCode 34, subcode 0)")
    simulated_schedd.wait_until(lambda pool: pool.status_of(job) is None)  # not left held in the queue


def test_an_evicted_job_is_retried_as_a_second_attempt(service, simulated_schedd):
    task_id = service.create(["sh", "-c", "sleep 2; echo ran to the end"])
    service.run_until(task_id, {TesState.RUNNING})
    wait_for_containers(task_id, present=True)
    first = service.job_of(task_id)
    simulated_schedd.evict(first, "Startd is shutting down")
    done = service.run_until(task_id)
    assert done["state"] == "COMPLETE", done
    assert len(done["logs"]) == 2 and done["logs"][1]["logs"][0]["stdout"] == "ran to the end\n"
    assert "evicted: HTCondor stopped the job on slot1@sim-node: Startd is shutting down" in system_logs(done)
    assert service.job_of(task_id, 2) != first
    simulated_schedd.wait_until(lambda pool: pool.status_of(first) is None)


def test_a_job_removed_by_someone_else_is_a_system_error(service, simulated_schedd):
    task_id = service.create(["sleep", "600"])
    service.run_until(task_id, {TesState.RUNNING})
    simulated_schedd.remove(service.job_of(task_id), "condor_rm by admin: pool maintenance")
    done = service.run_until(task_id)
    assert done["state"] == "SYSTEM_ERROR" and len(done["logs"]) == 1
    assert service.database.get(task_id).history[-1]["reason"] == (
        "removed from the HTCondor queue by someone else: condor_rm by admin: pool maintenance")
    wait_for_containers(task_id, present=False)


def test_a_job_the_schedd_forgot_is_retried_after_the_grace_period(service, simulated_schedd):
    task_id = service.create(["sh", "-c", "sleep 1; echo found again"])
    service.run_until(task_id, {TesState.RUNNING})
    lost = service.job_of(task_id)
    simulated_schedd.forget(lost)
    service.poller.cycle()
    assert len(service.database.get(task_id).logs) == 1  # not yet: within the grace period
    done = service.run_until(task_id)
    assert done["state"] == "COMPLETE" and len(done["logs"]) == 2
    assert f"HTCondor has no record of job {lost} (not in the queue, not in the history, no result returned) " \
           "for more than 1s" in system_logs(done)


def test_the_pool_enforces_the_runtime_limit_when_the_worker_does_not(tmp_path, settings, simulated_schedd,
                                                                       docker_image):
    # A worker that hangs and never looks at its limit.
    hanging = Service(tmp_path, settings, simulated_schedd,
                      template(worker_command=("/bin/sh", "-c", "sleep 600", "worker"), runtime_limit_grace_s=0))
    try:
        task_id = hanging.create(["true"], resources={"backend_parameters": {"runtime": "PT1S"}})
        done = hanging.run_until(task_id, timeout=30)
        assert done["state"] == "SYSTEM_ERROR"
        assert hanging.database.get(task_id).history[-1]["reason"] == "exceeded runtime limit of 1s; HTCondor removed the job"
        simulated_schedd.wait_until(lambda pool: pool.status_of(hanging.job_of(task_id)) is None)
        assert "PeriodicRemove" in hanging.history_ad(hanging.job_of(task_id))["RemoveReason"]
    finally:
        hanging.close()


def test_a_schedd_that_stops_answering_leaves_tasks_as_they_are_and_says_why(service, simulated_schedd):
    running = service.create(["sh", "-c", "sleep 2; echo survived"])
    service.run_until(running, {TesState.RUNNING})
    simulated_schedd.unreachable = "Failed to connect to schedd sim-node"
    queued = service.create(["echo", "later"])
    for _ in range(5):
        service.poller.cycle()
    assert service.database.get(running).state is TesState.RUNNING
    assert service.database.get(queued).state is TesState.QUEUED
    assert "waiting: the HTCondor schedd cannot be reached or refused `query`: Failed to connect to schedd sim-node" \
        in system_logs(service.view(queued))
    simulated_schedd.unreachable = None
    assert service.run_until(running)["state"] == "COMPLETE"
    assert service.run_until(queued)["state"] == "COMPLETE"


def test_each_owner_has_a_concurrency_limit(tmp_path, settings, docker_image):
    pool = SimulatedSchedd(tmp_path / "pool", slots=2, concurrency_limits={"tes_cts.basic_alice": 1}).start()
    limited = Service(tmp_path, settings, pool, template())
    try:
        first = limited.create(["sleep", "2"])
        limited.run_until(first, {TesState.RUNNING})
        second = limited.create(["echo", "after the first"])
        bob = limited.create(["echo", "bob is not limited"], owner="basic:bob")
        assert limited.run_until(bob)["state"] == "COMPLETE"
        assert limited.database.get(second).state is TesState.INITIALIZING
        assert "concurrency limit tes_cts.basic_alice reached" in system_logs(limited.view(second))
        assert limited.run_until(second)["state"] == "COMPLETE"
    finally:
        limited.close()
        pool.close()


# --- S3 secrets -------------------------------------------------------------------------------

def s3_service(tmp_path, settings, schedd, endpoint: str, secret_file: Path) -> Service:
    from tes_cts.backends.htcondor_job import secret_file_variable
    from tes_cts.storage.config import StorageConfig, public_stores
    from tes_cts.storage.preflight import preflight_inputs

    from .s3_server import make_store

    storage = StorageConfig(s3_stores=(make_store(endpoint),))
    environment = {**template().environment, secret_file_variable("default"): str(secret_file)}
    return Service(tmp_path, settings, schedd, template(environment=environment),
                   s3_stores=tuple(public_stores(storage)), preflight=lambda inputs: preflight_inputs(inputs, storage))


def test_s3_secrets_reach_workers_as_files_never_in_a_job(tmp_path, settings, simulated_schedd, docker_image,
                                                           s3_endpoint, s3_client, s3_bucket):
    from .s3_server import SECRET_ACCESS_KEY, put_verified

    secret_file = tmp_path / "execute-node" / "s3-secret"
    secret_file.parent.mkdir()
    secret_file.write_text(SECRET_ACCESS_KEY + "\n")
    service = s3_service(tmp_path, settings, simulated_schedd, s3_endpoint, secret_file)
    try:
        put_verified(s3_client, s3_bucket, "in/reads.txt", b"ACGT\n" * 10)
        task_id = service.create(["sh", "-c", "wc -l < /data/reads.txt > /out/count.txt"],
                                 inputs=[{"path": "/data/reads.txt", "url": f"s3://{s3_bucket}/in/reads.txt"}],
                                 outputs=[{"path": "/out/count.txt", "url": f"s3://{s3_bucket}/out/count.txt"}])
        done = service.run_until(task_id)
        assert done["state"] == "COMPLETE", done["logs"][0]["system_logs"]
        assert s3_client.get_object(Bucket=s3_bucket, Key="out/count.txt")["Body"].read() == b"10\n"
        ad = service.history_ad(service.job_of(task_id))
        assert str(secret_file) in ad["Environment"]
        for seen in (str(ad), (service.run_dir(task_id) / "job.json").read_text()):
            assert SECRET_ACCESS_KEY not in seen
    finally:
        service.close()


def test_a_secret_file_missing_on_the_execute_node_says_so(tmp_path, settings, simulated_schedd, docker_image,
                                                           s3_endpoint, s3_bucket):
    missing = tmp_path / "nowhere" / "s3-secret"
    service = s3_service(tmp_path, settings, simulated_schedd, s3_endpoint, missing)
    try:
        task_id = service.create(["true"], outputs=[{"path": "/out/x", "url": f"s3://{s3_bucket}/x"}])
        done = service.run_until(task_id)
        assert done["state"] == "SYSTEM_ERROR"
        assert "cannot read an S3 secret on " in system_logs(done) and f"{missing}: No such file or directory" in system_logs(done)
    finally:
        service.close()
