"""The local backend's slot accounting and process tracking, with real worker processes."""

from __future__ import annotations

import time

import pytest

from tes_cts.backends.base import Finished, JobRef, Lost
from tes_cts.backends.local import LocalBackend
from tes_cts.jobfiles import ContainerSettings, Job


def make_job(backend, task_id, cores=1, ram=0.0) -> Job:
    return Job(task_id=task_id, attempt=1, run_dir=backend.run_dir(task_id, 1),
               task={"executors": [{"image": "i", "command": ["c"]}], "resources": {"cpu_cores": cores, "ram_gb": ram}})


def sleeping_workers(seconds: float) -> tuple[str, ...]:
    """Workers that only sleep (the job file arrives as $1 and is ignored): what these tests
    look at is whether a worker process is alive and what it holds."""
    return ("/bin/sh", "-c", f"sleep {seconds}", "worker")


@pytest.fixture(autouse=True)
def engine(docker_image, monkeypatch):
    """cancel() removes the attempt's containers, so the engine must answer."""
    from .docker_env import docker_env

    monkeypatch.setenv("DOCKER_HOST", docker_env()["DOCKER_HOST"])


def backend_with(tmp_path, seconds: float, cpu_slots: int = 2) -> LocalBackend:
    return LocalBackend(tmp_path, cpu_slots=cpu_slots, ram_gb=4, containers=ContainerSettings(),
                        worker_command=sleeping_workers(seconds))


def test_reservations_survive_polls_that_cover_only_some_jobs(tmp_path):
    backend = backend_with(tmp_path, 30)
    first, second = make_job(backend, "t1"), make_job(backend, "t2")
    refs = [JobRef(job.task_id, 1, backend.submit(job), job.run_dir) for job in (first, second)]
    try:
        assert not backend.admits(make_job(backend, "t3"))
        backend.poll(refs[:1])  # the poller polls INITIALIZING and RUNNING tasks separately
        backend.poll(refs[1:])
        assert not backend.admits(make_job(backend, "t3"))
        backend.cancel(refs[0])
        assert backend.admits(make_job(backend, "t3"))
    finally:
        for ref in refs:
            backend.cancel(ref)


def test_a_restarted_poller_counts_the_workers_it_finds(tmp_path):
    before = backend_with(tmp_path, 30)
    job = make_job(before, "t1", cores=2)
    ref = JobRef("t1", 1, before.submit(job), job.run_dir)
    try:
        after = backend_with(tmp_path, 30)
        assert after.admits(make_job(after, "t2"))  # knows nothing yet
        status = after.poll([ref])[ref.backend_job_id]
        assert not isinstance(status, (Lost, Finished))
        assert not after.admits(make_job(after, "t2"))
    finally:
        before.cancel(ref)


def test_a_dead_worker_is_reported_lost_and_frees_its_slot(tmp_path):
    backend = backend_with(tmp_path, 0.1, cpu_slots=1)
    job = make_job(backend, "t1")
    ref = JobRef("t1", 1, backend.submit(job), job.run_dir)
    time.sleep(0.5)
    status = backend.poll([ref])[ref.backend_job_id]
    assert isinstance(status, Lost) and "died without writing a result" in status.reason
    assert backend.admits(make_job(backend, "t2"))


def test_requests_larger_than_the_host_never_fit(tmp_path):
    backend = LocalBackend(tmp_path, cpu_slots=2, ram_gb=4, containers=ContainerSettings())
    assert "the task asks for 3 CPU cores but this host offers 2 (setting local.cpu_slots)" == backend.never_fits(make_job(backend, "t", cores=3))
    assert "local.ram_gb" in backend.never_fits(make_job(backend, "t", ram=8))
    assert backend.never_fits(make_job(backend, "t", cores=2, ram=4)) is None


def test_an_engine_that_answered_is_asked_again_after_a_second_and_a_problem_every_time(tmp_path, monkeypatch):
    from tes_cts.backends.local import ENGINE_ANSWER_KEPT_S

    from .docker_env import docker_env
    from .engine_proxy import EngineProxy

    engine = docker_env()["DOCKER_HOST"]
    proxy = EngineProxy(tmp_path / "engine.sock", engine)
    monkeypatch.setenv("DOCKER_HOST", proxy.docker_host)
    backend = backend_with(tmp_path, 30)
    assert backend.engine_problem() is None
    proxy.cut()
    assert backend.engine_problem() is None  # the answer of a moment ago still stands
    time.sleep(ENGINE_ANSWER_KEPT_S)
    problem = backend.engine_problem()
    assert problem is not None and proxy.docker_host in problem
    EngineProxy(tmp_path / "engine.sock", engine)  # the engine is back
    assert backend.engine_problem() is None  # a problem is not kept: asked again at once


def test_no_task_starts_while_a_watched_file_system_is_nearly_full(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    backend = LocalBackend(tmp_path / "work", cpu_slots=2, ram_gb=4, containers=ContainerSettings(),
                           worker_command=sleeping_workers(30), min_free_gb=10**9, watched_paths=(str(store),))
    problem = backend.engine_problem()
    assert problem.startswith("only ") and "GB free on the file system of " in problem
    assert "setting local.min_free_gb" in problem and str(tmp_path / "work") in problem
    roomy = LocalBackend(tmp_path / "work", cpu_slots=2, ram_gb=4, containers=ContainerSettings(),
                         worker_command=sleeping_workers(30), min_free_gb=0, watched_paths=(str(store),))
    assert roomy.engine_problem() is None  # the engine answers; no space is asked for


def test_a_worker_that_died_on_a_nearly_full_disk_is_lost_saying_so(tmp_path):
    backend = LocalBackend(tmp_path, cpu_slots=1, ram_gb=4, containers=ContainerSettings(),
                           worker_command=sleeping_workers(0.1))
    job = make_job(backend, "t1")
    ref = JobRef("t1", 1, backend.submit(job), job.run_dir)
    time.sleep(0.5)
    assert "free" not in backend.poll([ref])[ref.backend_job_id].reason  # room enough: no word of the disk
    backend.min_free_gb = 10**9  # the disk as the worker met it
    reason = backend.poll([ref])[ref.backend_job_id].reason
    assert reason.startswith("worker process ") and "died without writing a result; only " in reason
    assert "setting local.min_free_gb" in reason
