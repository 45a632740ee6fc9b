"""Tasks through a live `tes-cts serve`, its embedded poller, the local backend and real Docker,
including kill -9 of the server, of the poller and of a worker in the middle of a task."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from .docker_env import docker, docker_env

TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}


@pytest.fixture
def env(tmp_path, docker_image):
    out = tmp_path / "out"
    out.mkdir()
    return {
        "DOCKER_HOST": docker_env()["DOCKER_HOST"],
        "TES_CTS_WORK_DIR": str(tmp_path / "work"),
        "TES_CTS_STORAGE__FILE_ROOTS": f'["{out}"]',
        "TES_CTS_POLLER__INTERVAL_S": "0.2",
        "TES_CTS_POLLER__LEASE_S": "3",
    }


@pytest.fixture
def server(live_servers, tmp_path, env):
    with live_servers.start(env, cwd=tmp_path, poller=True) as live:
        yield live


def task(*executors, **fields) -> dict:
    return {"executors": list(executors), **fields}


def run(command, image="tes-cts-test/busybox:1", **fields) -> dict:
    return {"image": image, "command": command, **fields}


def submit(server, body) -> str:
    response = requests.post(f"{server.url}/ga4gh/tes/v1/tasks", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def get(server, task_id, view="FULL") -> dict:
    return requests.get(f"{server.url}/v1/tasks/{task_id}", params={"view": view}, timeout=10).json()


def wait_for(server, task_id, states=TERMINAL, timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = get(server, task_id)
        if current["state"] in states:
            return current
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still {current['state']} after {timeout}s: {current}")


def containers_of(task_id) -> list[str]:
    return docker("ps", "-aq", "--filter", f"label=tes-cts.task={task_id}").stdout.split()


def test_an_image_that_is_an_option_is_refused_and_nothing_runs(server):
    """The reproduction of an option injection: `-h injected-hostname` would have reached `run`."""
    injected = task(run(["injected-hostname", "tes-cts-test/busybox:1", "sh", "-c", "hostname"], image="-h"))
    response = requests.post(f"{server.url}/ga4gh/tes/v1/tasks", json=injected, timeout=10)
    assert response.status_code == 400, response.text
    assert [(e["field"], "never starts with '-'" in e["reason"]) for e in response.json()["errors"]] == [
        ("executors[0].image", True)]
    assert requests.get(f"{server.url}/ga4gh/tes/v1/tasks", timeout=10).json()["tasks"] == []
    assert docker("ps", "-aq", "--filter", "name=injected").stdout.split() == []


def test_an_http_input_cannot_read_the_services_own_api(server):
    own_api = f"{server.url.replace('127.0.0.1', 'localhost')}/ga4gh/tes/v1/tasks?view=FULL"
    literal = task(run(["cat", "/in"]), inputs=[{"path": "/in", "url": f"{server.url}/ga4gh/tes/v1/tasks?view=FULL"}])
    refused = requests.post(f"{server.url}/ga4gh/tes/v1/tasks", json=literal, timeout=10)
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "inputs[0].url"

    task_id = submit(server, task(run(["cat", "/in"]), inputs=[{"path": "/in", "url": own_api}]))
    done = wait_for(server, task_id)
    assert done["state"] == "SYSTEM_ERROR", done
    said = " ".join(done["logs"][0]["system_logs"])
    assert "host localhost is not reachable from this service" in said
    assert not done["logs"][0].get("logs")  # no executor ran: nothing of the API reached the task


def test_a_nearly_full_disk_keeps_tasks_queued_saying_why(live_servers, tmp_path, env):
    with live_servers.start({**env, "TES_CTS_LOCAL__MIN_FREE_GB": "1000000000"}, cwd=tmp_path, poller=True) as server:
        task_id = submit(server, task(run(["true"])))
        deadline = time.monotonic() + 20
        while not any(line.startswith("waiting: only ") for log in get(server, task_id).get("logs", [])
                      for line in log.get("system_logs", [])):
            assert time.monotonic() < deadline, get(server, task_id)
            time.sleep(0.2)
        waiting = get(server, task_id)
        assert waiting["state"] == "QUEUED"
        assert f"GB free on the file system of {tmp_path / 'work'}" in waiting["logs"][0]["system_logs"][-1]
        assert requests.get(f"{server.url}/ga4gh/tes/v1/service-info", timeout=5).ok


def test_echo_completes_with_stdout_and_full_logs(server):
    task_id = submit(server, task(run(["echo", "hello from tes-cts"])))
    done = wait_for(server, task_id)
    assert done["state"] == "COMPLETE", done
    log = done["logs"][0]
    assert log["logs"][0]["stdout"] == "hello from tes-cts\n" and log["logs"][0]["exit_code"] == 0
    assert log["start_time"] and log["end_time"]
    assert {"backend", "backend_job_id", "attempt", "host"} <= set(log["metadata"])
    assert containers_of(task_id) == []


def test_a_failing_command_is_an_executor_error_and_ignore_error_runs_on(server):
    failed = submit(server, task(run(["ERROR"]), run(["echo", "never"])))
    ignored = submit(server, task(run(["ERROR"], ignore_error=True), run(["echo", "still ran"])))
    failed_task, ignored_task = wait_for(server, failed), wait_for(server, ignored)
    assert failed_task["state"] == "EXECUTOR_ERROR"
    assert len(failed_task["logs"][0]["logs"]) == 1 and failed_task["logs"][0]["logs"][0]["exit_code"] != 0
    assert ignored_task["state"] == "COMPLETE"
    assert [e["stdout"] for e in ignored_task["logs"][0]["logs"]][1] == "still ran\n"


def test_outputs_files_directories_and_wildcards_land_under_the_root(server, tmp_path):
    out = tmp_path / "out"
    script = "mkdir -p /work/dir/sub && echo a > /work/dir/a.txt && echo b > /work/dir/sub/b.txt " \
             "&& echo x > /work/x.log && echo y > /work/y.log && echo f > /work/f.txt"
    task_id = submit(server, task(
        run(["sh", "-c", script]),
        outputs=[
            {"path": "/work/f.txt", "url": f"{out}/f.txt"},
            {"path": "/work/dir", "url": f"file://{out}/dir", "type": "DIRECTORY"},
            {"path": "/work/*.log", "path_prefix": "/work", "url": f"{out}/logs"},
            {"path": "/work/*.none", "path_prefix": "/work", "url": f"{out}/none"},
        ],
        volumes=["/work"],
    ))
    done = wait_for(server, task_id)
    assert done["state"] == "COMPLETE", done["logs"][0]["system_logs"]
    assert (out / "f.txt").read_text() == "f\n"
    assert (out / "dir" / "sub" / "b.txt").read_text() == "b\n"
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["x.log", "y.log"]
    listed = {o["path"]: o["size_bytes"] for o in done["logs"][0]["outputs"]}
    assert listed["/work/dir/sub/b.txt"] == "2" and "/work/x.log" in listed and len(listed) == 5


def test_cancel_kills_a_long_task_within_seconds(server):
    task_id = submit(server, task(run(["sleep", "600"])))
    wait_for(server, task_id, {"RUNNING"})
    deadline = time.monotonic() + 10
    while not containers_of(task_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert containers_of(task_id)
    started = time.monotonic()
    requests.post(f"{server.url}/v1/tasks/{task_id}:cancel", timeout=10).raise_for_status()
    done = wait_for(server, task_id, timeout=30)
    assert done["state"] == "CANCELED"
    assert time.monotonic() - started < 15
    assert containers_of(task_id) == []


def test_runtime_limit_stops_the_task(server):
    task_id = submit(server, task(run(["sleep", "600"]), resources={"backend_parameters": {"runtime": "PT3S"}}))
    done = wait_for(server, task_id, timeout=60)
    assert done["state"] == "SYSTEM_ERROR"
    assert any("exceeded runtime limit of 3s" in line for line in done["logs"][0]["system_logs"])
    assert containers_of(task_id) == []


def test_a_missing_image_is_a_fast_system_error(server):
    started = time.monotonic()
    task_id = submit(server, task(run(["true"], image="tes-cts-test/no-such-image:1")))
    done = wait_for(server, task_id, timeout=90)
    assert done["state"] == "SYSTEM_ERROR"
    assert time.monotonic() - started < 60
    assert "tes-cts-test/no-such-image:1" in " ".join(done["logs"][0]["system_logs"])
    assert done["logs"][0]["logs"][0]["exit_code"] != 0


def test_kill_9_of_serve_mid_task_then_restart_finishes_it(live_servers, tmp_path, env):
    server = live_servers.start(env, cwd=tmp_path, poller=True)
    task_id = submit(server, task(run(["sh", "-c", "sleep 4; echo survived"])))
    wait_for(server, task_id, {"RUNNING"})
    server.kill()  # master, gunicorn workers and the embedded poller; the task's worker lives on
    time.sleep(1)
    with live_servers.start(env, cwd=tmp_path, poller=True) as again:
        done = wait_for(again, task_id, timeout=60)
        assert done["state"] == "COMPLETE" and done["logs"][0]["logs"][0]["stdout"] == "survived\n"
        assert len(done["logs"]) == 1  # the same attempt finished; nothing was run twice
    assert containers_of(task_id) == []


def test_kill_9_of_the_poller_mid_task_is_recovered(server):
    task_id = submit(server, task(run(["sh", "-c", "sleep 3; echo ok"])))
    wait_for(server, task_id, {"RUNNING"})
    pollers = subprocess.run(["pgrep", "-f", f"tes_cts.cli poller --exit-with-parent {server.process.pid}"],
                             capture_output=True, text=True).stdout.split()
    assert len(pollers) == 1
    os.kill(int(pollers[0]), signal.SIGKILL)
    done = wait_for(server, task_id, timeout=60)  # serve restarts its poller, which takes over
    assert done["state"] == "COMPLETE" and len(done["logs"]) == 1


def test_kill_9_of_a_worker_is_retried_as_a_new_attempt(server, tmp_path):
    task_id = submit(server, task(run(["sh", "-c", "sleep 3; echo second try"])))
    wait_for(server, task_id, {"RUNNING"})
    worker_file = tmp_path / "work" / "runs" / task_id / "1" / "worker.json"
    import json

    pid = json.loads(worker_file.read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    done = wait_for(server, task_id, timeout=90)
    assert done["state"] == "COMPLETE", done
    assert len(done["logs"]) == 2
    assert any("attempt 1 failed: worker process" in line for line in done["logs"][0]["system_logs"])
    assert done["logs"][1]["logs"][0]["stdout"] == "second try\n"
    assert containers_of(task_id) == []


def test_engine_down_keeps_tasks_queued_and_the_server_answering(live_servers, tmp_path, env):
    env = {**env, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    with live_servers.start(env, cwd=tmp_path, workers=None, poller=True) as server:
        task_id = submit(server, task(run(["echo", "later"])))
        time.sleep(1.5)
        waiting = get(server, task_id)
        assert waiting["state"] == "QUEUED"
        assert any(line.startswith("waiting:") for line in waiting["logs"][0]["system_logs"])
        assert requests.get(f"{server.url}/v1/service-info", timeout=5).ok


def test_a_burst_never_holds_more_slots_than_there_are(live_servers, tmp_path, env):
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime

    from tes_cts.database.sqlite import SqliteTaskDatabase

    # A long interval: the burst is carried by wake-ups (each create, each worker's result) alone.
    env = {**env, "TES_CTS_LOCAL__CPU_SLOTS": "2", "TES_CTS_POLLER__INTERVAL_S": "30"}
    with live_servers.start(env, cwd=tmp_path, poller=True) as server:
        with ThreadPoolExecutor(12) as pool:
            ids = list(pool.map(lambda i: submit(server, task(run(["sleep", "0.3"]), name=f"burst-{i}")), range(12)))
        done = [wait_for(server, task_id, timeout=90) for task_id in ids]
    assert [t["state"] for t in done] == ["COMPLETE"] * 12

    store = SqliteTaskDatabase(tmp_path / "work" / "tes-cts.sqlite3")
    try:
        histories = [store.get(task_id).history for task_id in ids]
    finally:
        store.close()
    # Each task holds a slot from its claim (phase preflight) to its terminal state: +1, then -1.
    changes = sorted((datetime.fromisoformat(entry["time"]), +1 if entry["phase"] == "preflight" else -1)
                     for history in histories for entry in history if entry["phase"] in ("preflight", "complete"))
    held = peak = 0
    for _, change in changes:  # at equal times, a release (-1) sorts before a claim
        held += change
        peak = max(peak, held)
    assert len(changes) == 24 and peak <= 2, changes
