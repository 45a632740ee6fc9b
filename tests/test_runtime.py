"""Container runtime commands: the argument lists (no engine needed) and the verbs against the
real Docker engine (image checks, kill_all after a dead worker, an unreachable engine)."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

import pytest

from tes_cts.jobfiles import ContainerSettings
from tes_cts.worker.paths import Mount
from tes_cts.worker.runtime import (
    ContainerSpec,
    DockerRuntime,
    ImageUnavailable,
    PodmanRuntime,
    RuntimeUnavailable,
    attempt_labels,
    runtime_for,
)

from .docker_env import docker, docker_env

SPEC = ContainerSpec(
    name="tes-cts-task1-2-0",
    image="example/tool:1.0",
    command=("sh", "-c", "echo $HOME; rm -rf / # stays one argument"),
    labels=attempt_labels("task1", 2),
    mounts=(Mount(Path("/runs/a/mounts/data"), "/data", True), Mount(Path("/runs/a/mounts/in.txt"), "/in.txt", False)),
    workdir="/data",
    env={"A": "1", "B": "x=y z"},
    cpu_cores=2,
    ram_gb=0.5,
)
SETTINGS = ContainerSettings(cap_drop=("NET_RAW", "MKNOD"), extra_args=("--runtime", "runc"))


def pairs(args: list[str]) -> set[tuple[str, str]]:
    return set(zip(args, args[1:]))


@pytest.mark.parametrize("runtime_name", ["docker", "podman"])
def test_run_command_is_an_argument_list_with_every_flag(runtime_name):
    runtime = runtime_for(dataclasses.replace(SETTINGS, runtime=runtime_name))
    args = runtime.run_command(SPEC)

    assert all(isinstance(arg, str) for arg in args)
    assert args[:3] == [runtime_name, "run", "--rm"]
    assert {
        ("--name", "tes-cts-task1-2-0"),
        ("--label", "tes-cts.task=task1"),
        ("--label", "tes-cts.attempt=2"),
        ("--pull", "never"),
        ("-v", "/runs/a/mounts/data:/data"),
        ("-v", "/runs/a/mounts/in.txt:/in.txt"),
        ("--workdir", "/data"),
        ("-e", "A=1"),
        ("-e", "B=x=y z"),
        ("--cpus", "2"),
        ("--memory", "512m"),
        ("--network", "none"),
        ("--security-opt", "no-new-privileges"),
        ("--cap-drop", "NET_RAW"),
        ("--cap-drop", "MKNOD"),
    } <= pairs(args)
    assert "-i" not in args
    # Extra arguments, then the image, then the command exactly as given: no shell in between.
    assert args[-6:] == ["--runtime", "runc", "example/tool:1.0", "sh", "-c", "echo $HOME; rm -rf / # stays one argument"]


def test_run_command_optional_flags():
    runtime = DockerRuntime(ContainerSettings(network="bridge", no_new_privileges=False))
    bare = ContainerSpec(name="c", image="img", command=("true",))
    args = runtime.run_command(bare)
    assert args == ["docker", "run", "--rm", "--pull", "never", "--name", "c", "--network", "bridge", "img", "true"]

    with_stdin = runtime.run_command(ContainerSpec(name="c", image="img", command=("cat",), stdin=True, ram_gb=2))
    assert "-i" in with_stdin and ("--memory", "2048m") in pairs(with_stdin)


def test_runtime_for_chooses_by_setting():
    assert isinstance(runtime_for(ContainerSettings(runtime="docker")), DockerRuntime)
    assert isinstance(runtime_for(ContainerSettings(runtime="podman")), PodmanRuntime)
    with pytest.raises(ValueError, match="unknown container runtime 'lxc'"):
        runtime_for(ContainerSettings(runtime="lxc"))


def test_start_failure_only_for_the_clients_own_message():
    docker_runtime = DockerRuntime(ContainerSettings())
    down = "docker: Cannot connect to the Docker daemon at unix:///x. Is the docker daemon running?\n"
    conflict = ('docker: Error response from daemon: Conflict. The container name "/c" is already in use.\n\n'
                "Run 'docker run --help' for more information\n")
    assert docker_runtime.start_failure(125, down) == down.strip()
    assert docker_runtime.start_failure(125, conflict).startswith("docker: Error response from daemon: Conflict.")
    assert docker_runtime.start_failure(1, down) is None       # the program printed it, not the client
    assert docker_runtime.start_failure(125, "my tool failed\n") is None
    podman_failure = PodmanRuntime(ContainerSettings()).start_failure(125, "Error: short-name resolution failed\n")
    assert podman_failure == "Error: short-name resolution failed"


# --- against the real engine ------------------------------------------------------------------


@pytest.fixture
def runtime(docker_image, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_env()["DOCKER_HOST"])
    return DockerRuntime(ContainerSettings())


def test_engine_and_image_checks(runtime, docker_image):
    assert runtime.engine_problem() is None
    assert runtime.image_present(docker_image)
    assert not runtime.image_present("tes-cts-test/absent:1")
    with pytest.raises(ImageUnavailable) as caught:  # no registry is reachable here
        runtime.pull("tes-cts-test/absent:1", timeout=30)
    assert str(caught.value)  # the engine's own message


def test_kill_all_removes_an_attempts_containers_left_by_a_dead_worker(runtime, docker_image):
    task_id = f"rt{uuid.uuid4().hex[:10]}"
    labels = [arg for key, value in attempt_labels(task_id, 1).items() for arg in ("--label", f"{key}={value}")]
    other = [arg for key, value in attempt_labels(task_id, 2).items() for arg in ("--label", f"{key}={value}")]
    started = [docker("run", "-d", *labels, docker_image, "sleep", "600").stdout.strip(),
               docker("create", *labels, docker_image, "true").stdout.strip()]
    survivor = docker("create", *other, docker_image, "true").stdout.strip()
    try:
        removed = runtime.kill_all(task_id, 1)
        assert {started_id[:12] for started_id in started} == {short[:12] for short in removed}
        left = docker("ps", "-aq", "--filter", f"label=tes-cts.task={task_id}").stdout.split()
        assert [short[:12] for short in left] == [survivor[:12]]
        assert runtime.kill_all(task_id, 1) == []
    finally:
        docker("rm", "-f", *started, survivor, check=False)


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker client is not installed")
def test_unreachable_engine_is_runtime_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    runtime = DockerRuntime(ContainerSettings())
    assert "Cannot connect to the Docker daemon" in runtime.engine_problem()
    with pytest.raises(RuntimeUnavailable, match="Cannot connect"):
        runtime.image_present("anything:1")
    with pytest.raises(RuntimeUnavailable):
        runtime.kill_all("task", 1)


def test_missing_client_is_runtime_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "podman client is not installed" in PodmanRuntime(ContainerSettings(runtime="podman")).engine_problem()
