"""The worker launcher the local backend forks its workers from: real launcher processes, real
workers (programs given as argv, and the built-in worker running a real container)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tes_cts.backends.local import WORKER_FILE, WORKER_LOG, LocalBackend
from tes_cts.jobfiles import ContainerSettings, Job, read_result
from tes_cts.wakeup import WAKE_FILE, WakeupFifo
from tes_cts.worker.launcher import proc_stat

SECRET = {"TES_CTS_TEST_LAUNCHER_SECRET": "s3cret"}
# Says what it was given, then becomes `sleep` (the same process): its descriptors, session and
# signal dispositions are then what the launcher left it.
REPORTING_WORKER = ("/bin/sh", "-c", 'echo "secret=$TES_CTS_TEST_LAUNCHER_SECRET job=$1"; exec sleep 30', "worker")
SLEEPING_WORKER = ("/bin/sh", "-c", "exec sleep 30", "worker")
QUICK_WORKER = ("/bin/sh", "-c", "exec sleep 0.5", "worker")


@pytest.fixture
def started_workers():
    """Pids of the workers a test started: each one's session is killed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def make_backend(tmp_path, started_workers):
    backends: list[LocalBackend] = []

    def make(worker_command=SLEEPING_WORKER, **options) -> LocalBackend:
        backend = LocalBackend(tmp_path, cpu_slots=8, ram_gb=8, containers=ContainerSettings(),
                               worker_command=worker_command, **options)
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend.close()


def submit(backend: LocalBackend, task_id: str, started_workers: list[int], task: dict | None = None) -> int:
    """Submit a job of `task_id`; the worker's pid."""
    job = Job(task_id=task_id, attempt=1, run_dir=backend.run_dir(task_id, 1),
              task=task or {"executors": [{"image": "i", "command": ["c"]}]})
    backend.submit(job)
    pid = json.loads((Path(job.run_dir) / WORKER_FILE).read_text())["pid"]
    started_workers.append(pid)
    return pid


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return value


def running(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def parent_of(pid: int) -> int:
    return int(proc_stat(pid)[1])


def status_mask(pid: int, field: str) -> int:
    """A signal mask of /proc/PID/status (SigBlk, SigIgn) as a number."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1], 16)


def ignored_before_python() -> int:
    """The signals this test's environment ignores (`nohup` ignores SIGHUP), as SigIgn: Python
    itself ignores SIGPIPE and SIGXFSZ, which a program it starts gets back at their default."""
    python_own = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
    return status_mask(os.getpid(), "SigIgn") & ~python_own


def pipes_of(pid: int) -> set[str]:
    """The pipes among a process's descriptors ("pipe:[inode]")."""
    targets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.add(os.readlink(fd))
        except FileNotFoundError:  # closed meanwhile
            pass
    return {target for target in targets if target.startswith("pipe:")}


def test_a_worker_leads_its_own_session_with_only_its_log_and_the_worker_environment(make_backend, started_workers):
    backend = make_backend(REPORTING_WORKER, worker_environment=SECRET)
    pid = submit(backend, "t1", started_workers)
    run_dir = Path(backend.run_dir("t1", 1))
    log = wait_until(lambda: (run_dir / WORKER_LOG).read_text())
    assert log == f"secret=s3cret job={run_dir / 'job.json'}\n"
    assert "s3cret" not in (run_dir / "job.json").read_text()

    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    assert parent_of(pid) != os.getpid()  # the launcher's child, not the poller's
    descriptors = {fd.name: os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    assert descriptors == {"0": os.devnull, "1": str(run_dir / WORKER_LOG), "2": str(run_dir / WORKER_LOG)}
    assert os.readlink(f"/proc/{pid}/cwd") == str(run_dir)
    assert status_mask(pid, "SigBlk") == 0 and status_mask(pid, "SigIgn") == ignored_before_python()


def test_a_worker_sees_only_what_it_needs_of_the_services_environment(make_backend, started_workers, monkeypatch):
    """Not the settings (auth hashes, token digests), not whatever else the service was given."""
    monkeypatch.setenv("TES_CTS_AUTH__BASIC__USERS__ALICE", "pbkdf2_sha256$600000$salt$hash")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/ssl/store.pem")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/engine-of-the-service.sock")
    backend = make_backend(SLEEPING_WORKER, worker_environment=SECRET)
    pid = submit(backend, "t1", started_workers)
    wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"))
    environ = dict(entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if entry)
    assert not {"TES_CTS_AUTH__BASIC__USERS__ALICE", "UNRELATED_SECRET"} & set(environ)
    assert environ["PATH"] == os.environ["PATH"] and environ["DOCKER_HOST"] == "unix:///run/engine-of-the-service.sock"
    assert environ["AWS_CA_BUNDLE"] == "/etc/ssl/store.pem" and environ["LC_ALL"] == "C.UTF-8"
    assert environ["TES_CTS_TEST_LAUNCHER_SECRET"] == "s3cret"  # given to workers on purpose


def test_the_built_in_worker_runs_forked_holds_nothing_of_the_launcher_and_wakes_the_poller(
        make_backend, started_workers, tmp_path, docker_image, monkeypatch):
    from .docker_env import docker_env

    monkeypatch.setenv("DOCKER_HOST", docker_env()["DOCKER_HOST"])
    wakeups = WakeupFifo(tmp_path / WAKE_FILE)
    try:
        backend = make_backend((), wake_path=wakeups.path)
        pid = submit(backend, "t1", started_workers,
                     task={"executors": [{"image": docker_image, "command": ["sh", "-c", "sleep 1; echo done"]}]})
        launcher = parent_of(pid)
        run_dir = Path(backend.run_dir("t1", 1))
        wait_until(lambda: (run_dir / "progress.json").exists())
        assert os.getsid(pid) == pid and status_mask(pid, "SigBlk") == 0
        assert not pipes_of(pid) & pipes_of(launcher)
        assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull

        assert wakeups.wait(30)  # the worker's notify, once its result is written
        result = read_result(run_dir)
        assert result is not None and result.outcome == "complete", result
        assert result.executor_logs[0]["stdout"] == "done\n"
        wait_until(lambda: not running(pid))
    finally:
        wakeups.close()


def test_kill_9_of_the_launcher_leaves_its_worker_running_and_the_next_submit_starts_another(
        make_backend, started_workers):
    backend = make_backend()
    first = submit(backend, "t1", started_workers)
    launcher = parent_of(first)
    os.kill(launcher, signal.SIGKILL)
    wait_until(lambda: not running(launcher))
    second = submit(backend, "t2", started_workers)
    assert parent_of(second) not in (launcher, os.getpid())
    assert running(first) and running(second)


def test_a_launcher_that_dies_during_a_request_is_replaced_once(make_backend, started_workers):
    backend = make_backend()
    launcher = parent_of(submit(backend, "t1", started_workers))
    os.kill(launcher, signal.SIGSTOP)  # it takes the next request and never answers
    submitted = []
    thread = threading.Thread(target=lambda: submitted.append(submit(backend, "t2", started_workers)))
    thread.start()
    time.sleep(0.2)
    os.kill(launcher, signal.SIGKILL)
    thread.join(10)
    assert submitted and running(submitted[0]) and parent_of(submitted[0]) != launcher


def test_the_launcher_reaps_its_workers(make_backend, started_workers):
    backend = make_backend(QUICK_WORKER)
    pids = [submit(backend, f"t{i}", started_workers) for i in range(5)]
    launcher = parent_of(pids[0])
    wait_until(lambda: all(proc_stat(pid) is None for pid in pids))  # gone, not zombies
    assert running(launcher)


def test_closing_the_backend_stops_the_launcher_and_leaves_the_worker_running(make_backend, started_workers):
    backend = make_backend()
    worker = submit(backend, "t1", started_workers)
    launcher = parent_of(worker)
    backend.close()
    assert proc_stat(launcher) is None and running(worker)


POLLER = """
import json, sys, time
from pathlib import Path
from tes_cts.backends.local import LocalBackend
from tes_cts.jobfiles import ContainerSettings, Job
backend = LocalBackend(sys.argv[1], cpu_slots=1, ram_gb=1, containers=ContainerSettings(),
                       worker_command=("/bin/sh", "-c", "exec sleep 30", "worker"))
job = Job(task_id="t1", attempt=1, run_dir=backend.run_dir("t1", 1), task={"executors": []})
backend.submit(job)
print(json.loads((Path(job.run_dir) / "worker.json").read_text())["pid"], flush=True)
time.sleep(60)
"""


def test_the_launcher_exits_when_its_poller_is_killed_and_the_worker_runs_on(tmp_path, started_workers):
    poller = subprocess.Popen([sys.executable, "-c", POLLER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(poller.stdout.readline())
        started_workers.append(worker)
        launcher = parent_of(worker)
        assert parent_of(launcher) == poller.pid
    finally:
        poller.kill()
        poller.wait()
    wait_until(lambda: proc_stat(launcher) is None)
    assert running(worker)
