"""The disk a task takes: its disk_gb limit (run directory and container layer, on the real
engine), a disk that fills while a task runs (on a small tmpfs this test mounts), the result
written into the space reserved for it, and no temporary file left behind."""

from __future__ import annotations

import errno
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from tes_cts.jobfiles import (
    COMPLETE,
    RESULT_FILE,
    RESULT_RESERVE_BYTES,
    RESULT_RESERVE_FILE,
    SYSTEM_ERROR,
    ContainerSettings,
    Job,
    Progress,
    Result,
    read_result,
    reserve_result_space,
    write_json_atomically,
    write_progress,
    write_result,
)
from tes_cts.worker.disk import GB, DiskLimit, disk_limit_bytes, file_system_full, used_bytes
from tes_cts.worker.run import work

from .docker_env import docker_env


@pytest.fixture
def small_fs(tmp_path):
    """A 20 MiB tmpfs, mounted for the test and gone after it."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write zeros into `path` until its file system refuses."""
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * (1 << 20))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def job_in(run_dir: Path, image: str, *executors: dict, **task) -> Job:
    run_dir.mkdir(parents=True, exist_ok=True)
    body = {"executors": [{"image": image, **executor} for executor in executors], **task}
    return Job(task_id=f"d{uuid.uuid4().hex[:12]}", attempt=1, task=body, run_dir=str(run_dir),
               containers=ContainerSettings())


def run_worker(job: Job) -> Result:
    """`tes-cts worker JOB_FILE` as the backends run it, in this process; its result.json."""
    assert work(str(job.write())) == 0
    return read_result(job.run_dir)


def leftovers(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.name.endswith((".tmp", ".reserved")))


# --- measuring ----------------------------------------------------------------------------------


def test_used_bytes_counts_blocks_once_per_file_and_walks_subdirectories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "data").write_bytes(os.urandom(300_000))
    os.link(tmp_path / "a" / "data", tmp_path / "hard-link")
    with open(tmp_path / "sparse", "wb") as handle:  # 1 GB long, nothing written
        handle.truncate(GB)
    (tmp_path / "link").symlink_to("/usr")
    used = used_bytes(tmp_path)
    assert 300_000 <= used < 400_000


def test_a_file_system_is_full_below_a_mebibyte_and_the_sentence_says_how_much(small_fs):
    assert file_system_full(small_fs) is None
    fill(small_fs / "zeros")
    full = file_system_full(small_fs)
    assert full.startswith("the file system of the run directory is full (") and "free of 21.0 MB" in full


def test_the_disk_limit_is_the_tasks_else_the_default_else_none():
    def job(resources: dict | None, default: float) -> Job:
        return Job(task_id="t", attempt=1, task={"executors": [], **({"resources": resources} if resources else {})},
                   run_dir="/x", containers=ContainerSettings(default_disk_gb=default))

    assert disk_limit_bytes(job({"disk_gb": 2.5}, 1.0)) == 2_500_000_000
    assert disk_limit_bytes(job({"cpu_cores": 1}, 1.0)) == GB
    assert disk_limit_bytes(job(None, 0.0)) is None


def test_the_limit_counts_the_container_layer_and_looks_again_only_after_a_while(tmp_path):
    now = [100.0]
    limit = DiskLimit(str(tmp_path), 1_000_000, clock=lambda: now[0])
    (tmp_path / "half").write_bytes(os.urandom(600_000))
    assert limit.exceeded(0, lambda: None) is None
    assert limit.exceeded(0, lambda: 900_000) is None  # too soon to look again
    now[0] += 1.0
    reason = limit.exceeded(3, lambda: 900_000)
    assert reason.startswith("executor 3 exceeded the task's disk limit of 0.001 GB (resources.disk_gb")
    assert "0.9 MB in its container" in reason


# --- the result and the progress on a full disk ----------------------------------------------------


def test_a_result_is_written_into_its_reserved_space_on_a_full_disk(small_fs):
    assert reserve_result_space(small_fs)
    assert (small_fs / RESULT_RESERVE_FILE).stat().st_blocks * 512 >= RESULT_RESERVE_BYTES
    fill(small_fs / "zeros")
    write_progress(small_fs, Progress("running", 0))  # a hint: no error, nothing left behind
    result = Result(SYSTEM_ERROR, "disk full", "t0", "t1", system_logs=["x" * 1000])
    write_result(small_fs, result)
    assert read_result(small_fs) == result
    assert leftovers(small_fs) == []


def test_a_result_too_long_for_its_reserve_is_a_new_file_and_a_failed_write_leaves_nothing(small_fs):
    reserve_result_space(small_fs)
    long = Result(COMPLETE, "", "t0", "t1", system_logs=["y" * RESULT_RESERVE_BYTES])
    write_result(small_fs, long)
    assert read_result(small_fs) == long and leftovers(small_fs) == []
    fill(small_fs / "zeros")
    with pytest.raises(OSError) as refused:
        write_json_atomically(small_fs / "other.json", ["z" * 4 * RESULT_RESERVE_BYTES])
    assert refused.value.errno == errno.ENOSPC
    assert sorted(p.name for p in small_fs.iterdir()) == [RESULT_FILE, "zeros"]


# --- on the real engine ----------------------------------------------------------------------------


@pytest.fixture
def engine(monkeypatch, docker_image):
    monkeypatch.setenv("DOCKER_HOST", docker_env()["DOCKER_HOST"])
    return docker_image


@pytest.mark.engine
def test_a_task_that_fills_the_disk_is_a_system_error_saying_so_and_frees_it(engine, small_fs):
    """The reproduction of the issue, without the service: 64 MiB into a volume on 20 MiB."""
    job = job_in(small_fs / "run", engine, {"command": ["dd", "if=/dev/zero", "of=/v/big", "bs=1M", "count=64"]},
                 volumes=["/v"])
    result = run_worker(job)
    assert result.outcome == SYSTEM_ERROR
    assert result.reason.startswith("the file system of the run directory is full (")
    assert result.reason.endswith("executor 0 exited with code 1")
    assert result.executor_logs[0]["exit_code"] == 1
    # dd's own message came when its log could not be written any more: the note says so.
    assert "executor 0: the rest of the container's stderr could not be logged: No space left on device" in result.system_logs
    assert "were removed to free the disk" in " ".join(result.system_logs)
    assert not (small_fs / "run" / "mounts").exists()
    assert file_system_full(small_fs) is None
    assert leftovers(small_fs / "run") == []


@pytest.mark.engine
def test_output_the_disk_cannot_take_is_dropped_and_the_container_still_ends(engine, small_fs):
    """stdout filling the disk: the engine's stream is still read, so the container is not
    blocked on a pipe nobody drains, and ends."""
    job = job_in(small_fs / "run", engine, {"command": ["sh", "-c", "yes 0123456789abcdef | head -c 40000000; echo done >&2"]})
    result = run_worker(job)
    assert result.outcome == SYSTEM_ERROR and result.executor_logs[0]["exit_code"] == 0
    assert result.reason.startswith("the file system of the run directory is full (")
    assert result.reason.endswith("executor 0: the rest of the container's stdout could not be logged: No space left on device")


@pytest.mark.engine
def test_writes_over_disk_gb_into_a_volume_stop_the_container(engine, tmp_path):
    job = job_in(tmp_path / "run", engine,
                 {"command": ["sh", "-c", "for i in $(seq 60); do dd if=/dev/zero of=/v/part$i bs=1M count=1 2>/dev/null;"
                                          " sleep 0.1; done; echo finished"]},
                 volumes=["/v"], resources={"disk_gb": 0.01})
    result = run_worker(job)
    assert result.outcome == SYSTEM_ERROR
    assert result.reason.startswith("executor 0 exceeded the task's disk limit of 0.01 GB (resources.disk_gb")
    assert "finished" not in result.executor_logs[0]["stdout"]
    assert 10 <= len(list((tmp_path / "run" / "mounts").rglob("part*"))) < 60


@pytest.mark.engine
def test_writes_over_the_default_limit_into_the_container_layer_stop_it(engine, tmp_path):
    job = job_in(tmp_path / "run", engine,
                 {"command": ["sh", "-c", "for i in $(seq 60); do dd if=/dev/zero of=/tmp/part$i bs=1M count=1 2>/dev/null;"
                                          " sleep 0.1; done; echo finished"]})
    job = Job(**{**job.__dict__, "containers": ContainerSettings(default_disk_gb=0.01)})
    result = run_worker(job)
    assert result.outcome == SYSTEM_ERROR
    assert "exceeded the task's disk limit of 0.01 GB" in result.reason and "in its container" in result.reason
    assert "finished" not in result.executor_logs[0]["stdout"]


@pytest.mark.engine
def test_a_task_within_its_disk_limit_completes(engine, tmp_path):
    job = job_in(tmp_path / "run", engine, {"command": ["dd", "if=/dev/zero", "of=/v/small", "bs=1M", "count=2"]},
                 volumes=["/v"], resources={"disk_gb": 0.01})
    result = run_worker(job)
    assert (result.outcome, result.reason) == (COMPLETE, "")
    assert leftovers(tmp_path / "run") == []


@pytest.mark.engine
def test_through_the_service_a_task_filling_its_disk_fails_once_and_the_service_keeps_working(
        engine, small_fs, live_servers, tmp_path):
    """The issue's reproduction: the work dir (and the store in it) on 20 MiB, a task writing
    64 MiB into a volume. It ends SYSTEM_ERROR naming the full disk after one attempt, the space
    comes back, creates keep answering and the next task runs."""
    env = {"DOCKER_HOST": docker_env()["DOCKER_HOST"], "TES_CTS_WORK_DIR": str(small_fs / "work"),
           "TES_CTS_LOCAL__MIN_FREE_GB": "0.005"}
    with live_servers.start(env, cwd=tmp_path, poller=True) as server:
        filler = submit(server, {"volumes": ["/v"], "executors": [
            {"image": engine, "command": ["sh", "-c", "dd if=/dev/zero of=/v/big bs=1M count=64"]}]})
        failed = wait_for(server, filler)
        assert failed["state"] == "SYSTEM_ERROR"
        [attempt] = failed["logs"]
        assert attempt["system_logs"][-1].startswith("the file system of the run directory is full (")
        assert not any("retrying" in line for line in attempt["system_logs"])
        after = submit(server, {"executors": [{"image": engine, "command": ["echo", "still here"]}]})
        done = wait_for(server, after)
        assert done["state"] == "COMPLETE" and done["logs"][0]["logs"][0]["stdout"] == "still here\n"
    assert leftovers(small_fs / "work") == []


def submit(server, body: dict) -> str:
    response = requests.post(server.tasks, json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def wait_for(server, task_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = requests.get(f"{server.tasks}/{task_id}", params={"view": "FULL"}, timeout=10).json()
        if task["state"] in {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}:
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} still {task['state']} after {timeout}s")
