"""A task reporting its own result through TES_RESULT_FILE: the file read after each executor
(on the real engine), what bad files say, and that none of them fails the task."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tes_cts.jobfiles import COMPLETE, EXECUTOR_ERROR, ContainerSettings, Job
from tes_cts.worker.run import run_job
from tes_cts.worker.task_result import CONTAINER_PATH, MAX_BYTES, read_task_result, result_mount

from .docker_env import docker_env


@pytest.fixture
def mount(tmp_path):
    return result_mount(str(tmp_path), 2)


def write(mount, content: bytes | str) -> None:
    (mount.host / "result.json").write_bytes(content.encode() if isinstance(content, str) else content)


def test_message_status_and_metrics_become_metadata_strings(mount):
    write(mount, json.dumps({"message": "found 3 genes", "status": 200, "output": {"a": 1},
                             "metrics": {"genes": 3, "ratio": 0.5, "label": "x", "parts": [1, 2]}}))
    assert read_task_result(mount, 2) == ({
        "result.message": "found 3 genes", "result.status": "200", "result.metric.genes": "3",
        "result.metric.ratio": "0.5", "result.metric.label": "x", "result.metric.parts": "[1, 2]"}, [])


def test_no_file_says_nothing(mount):
    assert read_task_result(mount, 2) == ({}, [])


@pytest.mark.parametrize("content,problem,kept", [
    ("{not json", f"TES_RESULT_FILE {CONTAINER_PATH} is not JSON", {}),
    ("[1, 2]", f"TES_RESULT_FILE {CONTAINER_PATH} holds a JSON list, not an object", {}),
    (b"{" + b" " * MAX_BYTES + b"}", f"TES_RESULT_FILE {CONTAINER_PATH} is longer than {MAX_BYTES} bytes", {}),
    ("[" * 60_000, f"TES_RESULT_FILE {CONTAINER_PATH} is not JSON", {}),
    ('{"message": "m", "metrics": 5}', "the metrics in TES_RESULT_FILE are not an object", {"result.message": "m"}),
])
def test_a_bad_file_is_a_line_for_the_system_logs(mount, content, problem, kept):
    write(mount, content)
    metadata, [line] = read_task_result(mount, 2)
    assert line.startswith(f"executor 2: {problem}")
    assert metadata == kept


def test_a_link_or_a_fifo_is_not_read(mount):
    (mount.host / "result.json").symlink_to("/etc/hostname")
    assert read_task_result(mount, 2) == ({}, [f"executor 2: TES_RESULT_FILE {CONTAINER_PATH} is not a regular file; not read"])
    (mount.host / "result.json").unlink()
    os.mkfifo(mount.host / "result.json")
    assert read_task_result(mount, 2)[1] == [f"executor 2: TES_RESULT_FILE {CONTAINER_PATH} is not a regular file; not read"]


@pytest.mark.engine
def test_each_executor_writes_its_own_result_file_and_the_last_word_is_kept(tmp_path, monkeypatch, docker_image):
    monkeypatch.setenv("DOCKER_HOST", docker_env()["DOCKER_HOST"])
    first = 'test ! -e "$TES_RESULT_FILE" && echo \'{"message": "first", "status": 200, "metrics": {"reads": 10}}\' > "$TES_RESULT_FILE"'
    second = 'test ! -e "$TES_RESULT_FILE" && echo \'{"message": "second", "status": 500}\' > "$TES_RESULT_FILE"; exit 4'
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = Job(task_id=f"r{uuid.uuid4().hex[:12]}", attempt=1, run_dir=str(run_dir), containers=ContainerSettings(),
              task={"executors": [{"image": docker_image, "command": ["sh", "-c", first]},
                                  {"image": docker_image, "command": ["sh", "-c", second], "ignore_error": True},
                                  {"image": docker_image, "command": ["sh", "-c", 'echo "[" > "$TES_RESULT_FILE"']}]})
    result = run_job(job)
    assert result.outcome == COMPLETE != EXECUTOR_ERROR
    assert {key: value for key, value in result.metadata.items() if key.startswith("result.")} == {
        "result.message": "second", "result.status": "500", "result.metric.reads": "10"}
    assert any(line.startswith(f"executor 2: TES_RESULT_FILE {CONTAINER_PATH} is not JSON") for line in result.system_logs)
