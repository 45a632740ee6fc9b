"""The worker against the real Docker engine: executors, logs, stdin/stdout/stderr files, limits,
missing images, outputs, the `tes-cts worker` command and its cancellation by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from tes_cts.jobfiles import (
    CANCELED,
    COMPLETE,
    EXECUTOR_ERROR,
    SYSTEM_ERROR,
    ContainerSettings,
    Job,
    Progress,
    read_progress,
    read_result,
    write_progress,
)
from tes_cts.worker.paths import FileMapper
from tes_cts.worker.run import run_job

from .docker_env import docker, docker_env
from .engine_proxy import EngineProxy
from .helpers import RFC3339


@pytest.fixture(autouse=True)
def engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_env()["DOCKER_HOST"])


@pytest.fixture
def make_job(tmp_path, docker_image):
    """A Job for a task made of the given executors (`image` defaults to the test image)."""

    def make(*executors: dict, limit: float | None = None, containers: ContainerSettings | None = None, **task) -> Job:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        body = {"executors": [{"image": docker_image, **executor} for executor in executors], **task}
        return Job(task_id=f"w{uuid.uuid4().hex[:12]}", attempt=1, task=body, run_dir=str(run_dir),
                   containers=containers or ContainerSettings(), file_roots=(str(tmp_path),), runtime_limit_s=limit)

    return make


def containers_of(job: Job) -> list[str]:
    return docker("ps", "-aq", "--filter", f"label=tes-cts.task={job.task_id}").stdout.split()


def test_echo_completes_with_stdout_in_the_executor_log(make_job):
    job = make_job({"command": ["echo", "hello world"]})
    result = run_job(job)

    assert (result.outcome, result.reason) == (COMPLETE, "")
    [log] = result.executor_logs
    assert log["exit_code"] == 0 and log["stdout"] == "hello world\n" and log["stderr"] == ""
    for moment in (log["start_time"], log["end_time"], result.start_time, result.end_time):
        assert RFC3339.match(moment) and moment.endswith("Z")
    assert (Path(job.run_dir) / "logs" / "executor-0.stdout").read_text() == "hello world\n"
    assert read_progress(job.run_dir).step == "staging_out"
    assert result.metadata["host"]
    assert containers_of(job) == []


def test_missing_command_is_an_executor_error_and_stops_the_task(make_job):
    result = run_job(make_job({"command": ["ERROR"]}, {"command": ["echo", "never"]}))

    assert result.outcome == EXECUTOR_ERROR
    [log] = result.executor_logs
    assert log["exit_code"] != 0
    assert result.reason == f"executor 0 exited with code {log['exit_code']}"
    assert result.reason in result.system_logs


def test_ignore_error_lets_the_next_executor_run(make_job):
    result = run_job(make_job({"command": ["sh", "-c", "exit 3"], "ignore_error": True}, {"command": ["echo", "next"]}))

    assert result.outcome == COMPLETE
    assert [log["exit_code"] for log in result.executor_logs] == [3, 0]
    assert result.executor_logs[1]["stdout"] == "next\n"
    assert any("executor 0 exited with code 3" in line for line in result.system_logs)


def network_notes(result) -> list[str]:
    return [line for line in result.system_logs if "containers.network" in line]


def test_failing_executors_without_a_network_say_once_which_setting_gives_one(make_job):
    result = run_job(make_job({"command": ["sh", "-c", "exit 3"], "ignore_error": True}, {"command": ["false"]}))

    assert result.outcome == EXECUTOR_ERROR
    [note] = network_notes(result)
    assert "without a network" in note and "TES_CTS_CONTAINERS__NETWORK" in note


@pytest.mark.parametrize("network, command", [("host", ["false"]), ("none", ["true"])],
                         ids=["failing-with-a-network", "succeeding-without-one"])
def test_no_network_note_unless_an_executor_failed_without_a_network(make_job, network, command):
    result = run_job(make_job({"command": command}, containers=ContainerSettings(network=network)))

    assert result.outcome == (COMPLETE if command == ["true"] else EXECUTOR_ERROR), result.reason
    assert network_notes(result) == []


def test_stdin_stdout_stderr_files_are_readable_by_later_executors_and_outputs(make_job, tmp_path):
    job = make_job(
        # /tmp/warnings.txt is under no mount: the worker adds a file mount for it.
        {"command": ["sh", "-c", "tr a-z A-Z; echo careful >&2"], "stdin": "/in/words.txt",
         "stdout": "/out/upper.txt", "stderr": "/tmp/warnings.txt"},
        {"command": ["cat", "/out/upper.txt", "/tmp/warnings.txt"]},
        inputs=[{"path": "/in/words.txt", "content": "abc\n", "type": "FILE"}],
        outputs=[{"path": "/out/upper.txt", "url": str(tmp_path / "upper.txt"), "type": "FILE"}],
    )
    result = run_job(job)

    assert result.outcome == COMPLETE, result.reason
    assert result.executor_logs[0]["stdout"] == "ABC\n" and result.executor_logs[0]["stderr"] == "careful\n"
    assert result.executor_logs[1]["stdout"] == "ABC\ncareful\n"
    assert (tmp_path / "upper.txt").read_text() == "ABC\n"
    from tes_cts.storage.checksums import crc64nvme, encode

    assert result.outputs == [{"url": str(tmp_path / "upper.txt"), "path": "/out/upper.txt", "size_bytes": 4,
                               "crc64nvme": encode(crc64nvme(b"ABC\n"))}]


def test_missing_stdin_fails_that_executor_with_a_clear_message(make_job):
    result = run_job(make_job({"command": ["cat"], "stdin": "/in/absent.txt"}))

    assert result.outcome == EXECUTOR_ERROR
    [log] = result.executor_logs
    assert log["exit_code"] != 0
    assert "stdin /in/absent.txt does not exist" in log["stderr"]
    assert result.reason.startswith("executor 0: stdin /in/absent.txt does not exist")


def test_env_and_workdir(make_job):
    result = run_job(make_job({"command": ["sh", "-c", 'echo "$GREETING"; pwd'], "env": {"GREETING": "hi there; $x"},
                               "workdir": "/data"}, volumes=["/data"]))

    assert result.outcome == COMPLETE, result.reason
    assert result.executor_logs[0]["stdout"] == "hi there; $x\n/data\n"


def test_executors_share_a_volume(make_job):
    result = run_job(make_job({"command": ["sh", "-c", "echo shared > /scratch/f"]}, {"command": ["cat", "/scratch/f"]},
                              volumes=["/scratch"]))

    assert result.outcome == COMPLETE, result.reason
    assert result.executor_logs[1]["stdout"] == "shared\n"


def test_log_tail_keeps_the_last_bytes_and_the_full_log_stays_on_disk(make_job):
    job = make_job({"command": ["sh", "-c", "seq 1 2000; printf 'end\\377'"]},
                   containers=ContainerSettings(log_tail_bytes=8))
    result = run_job(job)

    assert result.executor_logs[0]["stdout"] == "000\nend\ufffd"
    full = (Path(job.run_dir) / "logs" / "executor-0.stdout").read_bytes()
    assert full.startswith(b"1\n2\n3\n") and full.endswith(b"end\xff")


def test_runtime_limit_kills_the_container(make_job):
    job = make_job({"command": ["sleep", "600"]}, limit=2)
    started = time.monotonic()
    result = run_job(job)

    assert time.monotonic() - started < 8
    assert (result.outcome, result.reason) == (SYSTEM_ERROR, "exceeded runtime limit of 2s")
    [log] = result.executor_logs
    assert log["exit_code"] != 0
    assert containers_of(job) == []


def test_runtime_limit_bounds_the_sum_of_the_executors(make_job):
    result = run_job(make_job({"command": ["sleep", "1.5"]}, {"command": ["sleep", "1.5"]}, {"command": ["true"]}, limit=2.5))

    assert (result.outcome, result.reason) == (SYSTEM_ERROR, "exceeded runtime limit of 2.5s")
    assert [log["exit_code"] == 0 for log in result.executor_logs] == [True, False]


@pytest.mark.parametrize("pull", [True, False])
def test_missing_image_is_a_system_error_without_running(make_job, pull):
    job = make_job({"command": ["echo", "hi"]}, {"image": "busybox:nope", "command": ["true"]},
                   containers=ContainerSettings(pull=pull))
    started = time.monotonic()
    result = run_job(job)

    assert time.monotonic() - started < 30
    assert result.outcome == SYSTEM_ERROR
    expected = "could not be pulled: " if pull else "pulling is disabled"
    assert result.reason.startswith("image busybox:nope not found locally and ") and expected in result.reason
    first, missing = result.executor_logs
    assert first["exit_code"] == 0
    assert missing["exit_code"] != 0 and result.reason in missing["stderr"]


def test_outputs_are_staged_even_when_an_executor_failed(make_job, tmp_path):
    job = make_job({"command": ["sh", "-c", "echo 7 > /out/rc; exit 7"]},
                   outputs=[{"path": "/out/rc", "url": str(tmp_path / "rc"), "type": "FILE"},
                            {"path": "/out/never", "url": str(tmp_path / "never"), "type": "FILE"}])
    result = run_job(job)

    assert (result.outcome, result.reason) == (EXECUTOR_ERROR, "executor 0 exited with code 7")
    assert (tmp_path / "rc").read_text() == "7\n"
    assert [output["path"] for output in result.outputs] == ["/out/rc"]
    assert "output /out/never: not produced by the task" in result.system_logs


def test_a_missing_output_after_success_is_a_system_error(make_job, tmp_path):
    job = make_job({"command": ["true"]}, outputs=[{"path": "/out/never", "url": str(tmp_path / "never"), "type": "FILE"}])
    result = run_job(job)

    assert (result.outcome, result.reason) == (SYSTEM_ERROR, "output /out/never: not produced by the task")


def test_a_staging_error_is_a_system_error_before_any_executor(make_job, tmp_path):
    job = make_job({"command": ["true"]}, inputs=[{"path": "/in/a", "url": str(tmp_path / "absent"), "type": "FILE"}])
    result = run_job(job)

    assert result.outcome == SYSTEM_ERROR and result.reason.startswith("input /in/a")
    assert result.executor_logs == []


def test_the_result_carries_what_staging_moved_for_the_metrics(make_job, tmp_path):
    (tmp_path / "in.txt").write_text("12345")
    job = make_job({"command": ["sh", "-c", "cat /in/a /in/a > /out/b"]},
                   inputs=[{"path": "/in/a", "url": f"file://{tmp_path}/in.txt", "type": "FILE"}],
                   outputs=[{"path": "/out/b", "url": str(tmp_path / "b.txt"), "type": "FILE"}])
    result = run_job(job)

    assert result.outcome == COMPLETE, result.reason
    staged = {(entry["scheme"], entry["direction"]): entry for entry in result.measurements["staging"]}
    assert {key: entry["bytes"] for key, entry in staged.items()} == {("file", "input"): 5, ("file", "output"): 10}
    assert all(entry["seconds"] >= 0 for entry in staged.values())
    assert result.measurements["checksum_mismatches"] == []


def test_an_input_changed_since_submission_is_measured_as_a_checksum_mismatch(make_job, tmp_path):
    (tmp_path / "in.txt").write_text("changed")
    url = f"file://{tmp_path}/in.txt"
    job = make_job({"command": ["true"]}, inputs=[{"path": "/in/a", "url": url, "type": "FILE"}])
    result = run_job(replace(job, verified_inputs={"0": [{"url": url, "size": 7, "etag": None, "crc64nvme": "AAAAAAAAAAA="}]}))

    assert result.outcome == SYSTEM_ERROR and "changed since submission" in result.reason
    assert result.measurements == {"staging": [], "checksum_mismatches": [
        {"scheme": "file", "direction": "input", "count": 1}]}


def test_unreachable_engine_gives_a_system_error_result(make_job, monkeypatch, tmp_path):
    job = make_job({"command": ["true"]})
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = run_job(job)

    assert result.outcome == SYSTEM_ERROR and result.reason.startswith("container engine unavailable: Cannot connect")
    assert result.executor_logs == []
    assert any("could not remove the attempt's containers" in line for line in result.system_logs)


def test_a_container_that_cannot_start_is_a_system_error(make_job, docker_image):
    job = make_job({"command": ["true"]})
    squatter = docker("create", "--name", f"{job.container_prefix}-0", docker_image, "true").stdout.strip()
    try:
        result = run_job(job)
    finally:
        docker("rm", "-f", squatter, check=False)

    assert result.outcome == SYSTEM_ERROR
    assert result.reason.startswith("executor 0: the container could not start: "
                                    f'Conflict. The container name "/{job.container_prefix}-0" is already in use')
    [log] = result.executor_logs
    assert log["exit_code"] == 125 and log["stderr"] == result.reason + "\n"


def test_an_engine_lost_while_an_executor_runs_is_a_system_error(make_job, monkeypatch, tmp_path):
    job = make_job({"command": ["sh", "-c", "echo started; sleep 600"]}, limit=30)
    stdout_log = Path(job.run_dir) / "logs" / "executor-0.stdout"
    proxy = EngineProxy(tmp_path / "engine.sock", docker_env()["DOCKER_HOST"])

    def cut_once_the_executor_runs():
        wait_for(lambda: stdout_log.exists() and stdout_log.read_text(), "the executor to run")
        proxy.cut()

    cutter = threading.Thread(target=cut_once_the_executor_runs)
    with monkeypatch.context() as patch:
        patch.setenv("DOCKER_HOST", proxy.docker_host)
        cutter.start()
        result = run_job(job)
    cutter.join()
    docker("rm", "-f", *containers_of(job), check=False)

    assert result.outcome == SYSTEM_ERROR
    assert result.reason.startswith("executor 0: the container engine failed while the container ran: "
                                    f"Cannot connect to the Docker engine at {proxy.docker_host} (DOCKER_HOST)")
    [log] = result.executor_logs
    assert log["exit_code"] == 125 and log["stdout"] == "started\n"
    assert any("could not remove the attempt's containers" in line for line in result.system_logs)


def test_leftover_containers_of_the_same_attempt_are_removed_first(make_job, docker_image):
    job = make_job({"command": ["echo", "rerun"]})
    labels = ["--label", f"tes-cts.task={job.task_id}", "--label", "tes-cts.attempt=1"]
    docker("run", "-d", "--name", f"{job.container_prefix}-0", *labels, docker_image, "sleep", "600")
    result = run_job(job)

    assert result.outcome == COMPLETE and result.executor_logs[0]["stdout"] == "rerun\n"
    assert containers_of(job) == []


def test_worker_command_writes_result_json(make_job):
    job = make_job({"command": ["echo", "from the command"]})
    job_file = job.write()
    done = worker_process(job_file).wait(timeout=60)

    assert done == 0
    result = read_result(job.run_dir)
    assert result.outcome == COMPLETE and result.executor_logs[0]["stdout"] == "from the command\n"


def test_worker_command_with_an_unreadable_job_file_still_writes_a_result(tmp_path):
    job_file = tmp_path / "job.json"
    job_file.write_text("{not json")
    assert worker_process(job_file).wait(timeout=60) == 0

    result = read_result(tmp_path)
    assert result.outcome == SYSTEM_ERROR and result.reason.startswith(f"could not read job file {job_file}")


def test_sigterm_cancels_the_running_container(make_job):
    job = make_job({"command": ["sleep", "600"]}, {"command": ["echo", "never"]})
    process = worker_process(job.write())
    try:
        wait_for(lambda: containers_of(job) and getattr(read_progress(job.run_dir), "step", None) == "running",
                 "the container to start")
        signaled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - signaled < 5  # the container is killed, not waited for
    finally:
        process.kill()

    result = read_result(job.run_dir)
    assert (result.outcome, result.reason) == (CANCELED, "canceled")
    [log] = result.executor_logs
    assert log["exit_code"] != 0 and RFC3339.match(log["end_time"])
    assert docker("ps", "-a", "-q", "--filter", f"label=tes-cts.task={job.task_id}").stdout.strip() == ""


def test_log_file_mounts_cover_only_paths_no_mount_holds(tmp_path):
    mapper = FileMapper(tmp_path)
    task = {"executors": [{"image": "i", "command": ["c"], "stdout": "/out/log", "stderr": "/err.txt"},
                          {"image": "i", "command": ["c"], "stdout": "/in/a", "stderr": "/tmp/../err.txt"}],
            "inputs": [{"path": "/in/a", "content": "", "type": "FILE"}], "volumes": ["/out"]}
    data = mapper.data_mounts(task)
    extra = mapper.log_file_mounts(task, data)

    assert [(mount.container, mount.is_dir, mount.host) for mount in extra] == [("/err.txt", False, mapper.root / "err.txt")]
    assert mapper.mounts(task) == data + extra


def worker_process(job_file) -> subprocess.Popen:
    command = [sys.executable, "-m", "tes_cts.cli", "worker", str(job_file)]
    return subprocess.Popen(command, env=docker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_an_unreadable_progress_file_is_no_progress(tmp_path):
    """progress.json is not fsynced: after a crash of the machine it may be empty or cut."""
    (tmp_path / "progress.json").write_text('{"step": "runn')
    assert read_progress(tmp_path) is None
    (tmp_path / "progress.json").write_text("")
    assert read_progress(tmp_path) is None
    write_progress(tmp_path, Progress("running", executor=1, time="t"))
    assert read_progress(tmp_path) == Progress("running", executor=1, time="t")
