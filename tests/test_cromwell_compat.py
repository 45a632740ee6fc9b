"""Cromwell's TES backend as a client: a task body as Cromwell 8x sends it is accepted, shown back
without a null anywhere, and runs to COMPLETE.

What Cromwell does that other clients do not: its maps are `Map[String, Option[String]]`, so a
value it has none for goes out as JSON null. `tags.parent_workflow_id` is null for every task of a
root workflow, and `resources.backend_parameters` holds null for each unset runtime attribute.
The rest follows its TesTask: an input per WDL File plus the command script, and outputs rc,
stdout, stderr, the script and each WDL output, all under the call's execution directory.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from .docker_env import docker_env
from .helpers import assert_no_nulls
from .test_e2e_local import get, submit, wait_for

TES = "/ga4gh/tes/v1"
WORKFLOW_ID = "7f1c3e2a-5b9d-4c8e-a0f1-2d3e4f5a6b7c"
CALL_DIR = f"/cromwell-executions/HelloCount/{WORKFLOW_ID}/call-count_lines"
EXECUTION = f"{CALL_DIR}/execution"
READS_PATH = f"{CALL_DIR}/inputs/-1285837/reads.txt"
NULL_TAGS = {"parent_workflow_id"}
NULL_BACKEND_PARAMETERS = {"workflow_execution_identity", "vm_size", "docker_network"}
NULL_ENV = {"MONITORING_IMAGE"}

SCRIPT = f"""#!/bin/sh
cd {EXECUTION}
tmpDir=$(mkdir -p "{EXECUTION}/tmp.8a1b" && echo "{EXECUTION}/tmp.8a1b")
export TMPDIR="$tmpDir"
wc -l < {READS_PATH} > count.txt
echo "counted $(cat count.txt) lines"
echo $? > {EXECUTION}/rc.tmp
mv {EXECUTION}/rc.tmp {EXECUTION}/rc
"""


def cromwell_task(root: str, image: str = "ubuntu:22.04") -> dict:
    """The body Cromwell's TES backend posts for `HelloCount.count_lines`, its call root under
    the host directory `root` (Cromwell's `root`; `dockerRoot` is /cromwell-executions)."""
    host_call_dir = f"{root}{CALL_DIR}"

    def output(name: str, file: str, description: str | None = None) -> dict:
        return {"name": name, "description": description or f"HelloCount.count_lines.{name}",
                "url": f"{host_call_dir}/execution/{file}", "path": f"{EXECUTION}/{file}", "type": "FILE"}

    return {
        "name": "HelloCount.count_lines",
        "description": f"{WORKFLOW_ID}:HelloCount.count_lines:-1:1",
        "inputs": [
            {"name": "HelloCount.count_lines.reads.0", "description": "HelloCount.HelloCount.count_lines.reads.0",
             "url": f"{root}/data/reads.txt", "path": READS_PATH, "type": "FILE"},
            {"name": "commandScript", "description": "HelloCount.count_lines.commandScript",
             "url": f"{host_call_dir}/execution/script", "path": f"{EXECUTION}/script", "type": "FILE"},
        ],
        "outputs": [
            output("rc", "rc"), output("stdout", "stdout"), output("stderr", "stderr"),
            output("commandScript", "script"),
            output("HelloCount.count_lines.output.0", "count.txt", "HelloCount.count_lines.output.0"),
        ],
        "resources": {
            "cpu_cores": 1, "ram_gb": 2.0, "disk_gb": 10.0, "preemptible": False, "zones": ["us-east-1a"],
            "backend_parameters": {
                "workflow_execution_identity": None,
                "internal_path_prefix": f"{host_call_dir}/tes_task",
                "vm_size": None,
                "docker_network": None,
            },
        },
        "executors": [{
            "image": image,
            "command": ["/bin/sh", f"{EXECUTION}/script"],
            "workdir": EXECUTION,
            "stdout": f"{EXECUTION}/stdout",
            "stderr": f"{EXECUTION}/stderr",
            "env": {"CROMWELL_WORKFLOW_ID": WORKFLOW_ID, "MONITORING_IMAGE": None},
        }],
        "volumes": [f"{EXECUTION}/tmp.8a1b"],
        "tags": {
            "workflow_id": WORKFLOW_ID, "root_workflow_id": WORKFLOW_ID, "parent_workflow_id": None,
            "workflow_name": "HelloCount", "task_name": "count_lines",
        },
    }


def without_nulls(mapping: dict) -> dict:
    return {key: value for key, value in mapping.items() if value is not None}


# --- through the app ------------------------------------------------------------------------------


@pytest.fixture
def cromwell_root(tmp_path) -> Path:
    return tmp_path / "cromwell-root"


@pytest.fixture
def settings(make_settings, cromwell_root):
    """The `client` fixture's settings, with Cromwell's shared file system as the file root."""
    return make_settings(storage__file_roots=[str(cromwell_root)])


@pytest.fixture
def created(client, cromwell_root) -> tuple[dict, str]:
    body = cromwell_task(str(cromwell_root))
    response = client.post(f"{TES}/tasks", json=copy.deepcopy(body))
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["id"]
    return body, response.json()["id"]


@pytest.mark.parametrize("view", ["BASIC", "FULL"])
def test_a_cromwell_task_is_shown_back_without_any_null(client, created, view):
    _, task_id = created
    shown = client.get(f"{TES}/tasks/{task_id}", params={"view": view}).json()
    assert shown["id"] == task_id and shown["state"] == "QUEUED"
    assert_no_nulls(shown)


def test_the_null_map_values_cromwell_sends_are_dropped(client, created):
    body, task_id = created
    full = client.get(f"{TES}/tasks/{task_id}", params={"view": "FULL"}).json()
    assert full["tags"] == without_nulls(body["tags"])
    assert NULL_TAGS.isdisjoint(full["tags"])
    assert full["executors"][0]["env"] == without_nulls(body["executors"][0]["env"])
    # The local backend supports none of Cromwell's parameters: the one with a value is dropped
    # with a warning; those that were null are not mentioned, as keys never given.
    assert "backend_parameters" not in full["resources"]
    [warning] = full["logs"][0]["system_logs"]
    assert "internal_path_prefix" in warning
    assert not any(f"'{key}'" in warning for key in NULL_BACKEND_PARAMETERS)


def test_the_rest_of_a_cromwell_task_is_kept_as_sent(client, created):
    body, task_id = created
    full = client.get(f"{TES}/tasks/{task_id}", params={"view": "FULL"}).json()
    for key in ("name", "description", "inputs", "outputs", "volumes"):
        assert full[key] == body[key], key
    resources = {key: value for key, value in body["resources"].items() if key != "backend_parameters"}
    assert full["resources"] == resources
    executor = dict(body["executors"][0], env=without_nulls(body["executors"][0]["env"]))
    assert full["executors"] == [executor]


def test_cromwell_finds_its_task_by_its_tags(client, created):
    _, task_id = created
    listed = client.get(f"{TES}/tasks", params={"tag_key": "workflow_id", "tag_value": WORKFLOW_ID}).json()
    assert [task["id"] for task in listed["tasks"]] == [task_id]
    # parent_workflow_id was never stored, so no task has it
    assert client.get(f"{TES}/tasks", params={"tag_key": "parent_workflow_id"}).json()["tasks"] == []


# --- through a live server, with Docker -----------------------------------------------------------


@pytest.fixture
def shared_file_system(cromwell_root) -> Path:
    """What Cromwell has written before it posts the task: the input and the command script."""
    (cromwell_root / "data").mkdir(parents=True)
    (cromwell_root / "data" / "reads.txt").write_text("@r1\nACGT\n+\nIIII\n")
    execution = cromwell_root / EXECUTION.lstrip("/")
    execution.mkdir(parents=True)
    (execution / "script").write_text(SCRIPT)
    return execution


def test_a_cromwell_task_runs_to_complete(live_servers, tmp_path, cromwell_root, shared_file_system, docker_image):
    env = {
        "DOCKER_HOST": docker_env()["DOCKER_HOST"],
        "TES_CTS_WORK_DIR": str(tmp_path / "work"),
        "TES_CTS_STORAGE__FILE_ROOTS": f'["{cromwell_root}"]',
        "TES_CTS_POLLER__INTERVAL_S": "0.2",
        "TES_CTS_LOCAL__RAM_GB": "4",  # Cromwell asks for 2 GB: admitted whatever this machine has
    }
    body = cromwell_task(str(cromwell_root), image=docker_image)
    with live_servers.start(env, cwd=tmp_path, workers=1, poller=True) as server:
        task_id = submit(server, body)
        done = wait_for(server, task_id, timeout=90)
        basic = get(server, task_id, view="BASIC")
    assert done["state"] == "COMPLETE", done["logs"][-1].get("system_logs")
    assert_no_nulls(done)
    assert_no_nulls(basic)
    assert (shared_file_system / "count.txt").read_text().strip() == "4"
    assert (shared_file_system / "rc").read_text() == "0\n"
    assert (shared_file_system / "stdout").read_text() == "counted 4 lines\n"
    assert (shared_file_system / "script").read_text() == SCRIPT
    uploaded = {o["path"] for o in done["logs"][-1]["outputs"]}
    assert uploaded == {o["path"] for o in body["outputs"]}
    assert done["tags"] == without_nulls(body["tags"])
