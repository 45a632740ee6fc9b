"""Container runtimes: podman's argument lists (no engine needed), and the Docker Engine API
runtime against the real engine (the container as the engine reports it, live and separated
output, stdin, exit codes, start failures, kill_all after a dead worker, a lost engine), and
podman's client run with the docker client standing in for it."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tes_cts.jobfiles import ContainerSettings
from tes_cts.worker.engine_api import DockerEngineRuntime
from tes_cts.worker.engine_cli import PodmanRuntime, start_failure
from tes_cts.worker.paths import Mount
from tes_cts.worker.runtime import (
    ContainerNotStarted,
    ContainerSpec,
    ImageUnavailable,
    RunningContainer,
    RuntimeUnavailable,
    attempt_labels,
    runtime_for,
)

from .docker_env import docker, docker_env
from .engine_proxy import EngineProxy

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
SETTINGS = ContainerSettings(runtime="podman", cap_drop=("NET_RAW", "MKNOD"), extra_args=("--runtime", "runc"))


def pairs(args: list[str]) -> set[tuple[str, str]]:
    return set(zip(args, args[1:]))


# --- podman's command line --------------------------------------------------------------------


def test_podman_run_command_is_an_argument_list_with_every_flag():
    args = PodmanRuntime(SETTINGS).run_command(SPEC)

    assert all(isinstance(arg, str) for arg in args)
    assert args[:3] == ["podman", "run", "--rm"]
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
    assert args[-7:] == ["--runtime", "runc", "--", "example/tool:1.0", "sh", "-c", "echo $HOME; rm -rf / # stays one argument"]


def test_podman_reads_plain_variables_from_an_env_file_and_the_others_from_arguments(tmp_path):
    spec = ContainerSpec(name="c", image="img", command=("env",),
                         env={"TOKEN": "s3cret value", "MULTI": "line 1\nline 2", "odd-name": "x"})
    args = PodmanRuntime(SETTINGS).run_command(spec, env_file=tmp_path / "env")
    assert ("--env-file", str(tmp_path / "env")) in pairs(args)
    assert not any("s3cret" in arg for arg in args)
    assert {("-e", "MULTI=line 1\nline 2"), ("-e", "odd-name=x")} <= pairs(args)


def test_podman_run_command_optional_flags():
    runtime = PodmanRuntime(ContainerSettings(runtime="podman", network="bridge", no_new_privileges=False))
    bare = ContainerSpec(name="c", image="img", command=("true",))
    args = runtime.run_command(bare)
    assert args == ["podman", "run", "--rm", "--pull", "never", "--name", "c", "--network", "bridge", "--", "img", "true"]

    with_stdin = runtime.run_command(ContainerSpec(name="c", image="img", command=("cat",), stdin=Path("/in"), ram_gb=2))
    assert "-i" in with_stdin and ("--memory", "2048m") in pairs(with_stdin)


def test_runtime_for_chooses_by_setting():
    assert isinstance(runtime_for(ContainerSettings(runtime="docker")), DockerEngineRuntime)
    assert isinstance(runtime_for(ContainerSettings(runtime="podman")), PodmanRuntime)
    with pytest.raises(ValueError, match="unknown container runtime 'lxc'"):
        runtime_for(ContainerSettings(runtime="lxc"))


def test_podman_start_failure_only_for_the_clients_own_message():
    down = "Cannot connect to Podman. Please verify your connection to the Linux system\n"
    assert start_failure(125, "Error: short-name resolution failed\n") == "Error: short-name resolution failed"
    assert start_failure(125, down) == down.strip()
    assert start_failure(1, "Error: my tool failed\n") is None  # the program printed it, not the client
    assert start_failure(125, "my tool failed\n") is None


def test_missing_podman_client_is_runtime_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "podman client is not installed" in PodmanRuntime(SETTINGS).engine_problem()


def test_the_runtime_contract_loads_no_engine_client():
    code = "import sys, tes_cts.worker.runtime; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not {"docker", "requests", "tes_cts.worker.engine_api", "tes_cts.worker.engine_cli"} & set(loaded)


# --- the Docker Engine API, against the real engine -------------------------------------------


@pytest.fixture
def engine(monkeypatch, docker_image) -> str:
    monkeypatch.setenv("DOCKER_HOST", docker_env()["DOCKER_HOST"])
    return docker_image


@pytest.fixture
def runtime(engine) -> DockerEngineRuntime:
    return DockerEngineRuntime(ContainerSettings(cap_drop=("NET_RAW", "MKNOD")))


@pytest.fixture
def spec_of(engine, tmp_path):
    """A spec for the test image, named and labelled uniquely; removed, if left, after the test."""
    task_id = f"rt{uuid.uuid4().hex[:10]}"

    indexes = itertools.count()

    def make(*command: str, **fields) -> ContainerSpec:
        return ContainerSpec(name=f"tes-cts-{task_id}-1-{next(indexes)}", image=engine, command=command,
                             labels=attempt_labels(task_id, 1), **fields)

    yield make
    docker("rm", "-f", *docker("ps", "-aq", "--filter", f"label=tes-cts.task={task_id}").stdout.split(), check=False)


class Logs:
    """The two log files a container writes into, open for the whole test."""

    def __init__(self, directory: Path):
        self.stdout_path, self.stderr_path = directory / "stdout", directory / "stderr"
        self.files = (open(self.stdout_path, "wb"), open(self.stderr_path, "wb"))

    def start(self, runtime, spec: ContainerSpec) -> RunningContainer:
        return runtime.start(spec, *self.files)

    @property
    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    @property
    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()


@pytest.fixture
def logs(tmp_path):
    opened = Logs(tmp_path)
    yield opened
    for file in opened.files:
        file.close()


def wait_for_exit(container: RunningContainer, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (exit_code := container.wait(0.05)) is None:
        assert time.monotonic() < deadline, "the container did not end"
    return exit_code


def label_flags(labels: dict[str, str], flag: str = "--label", prefix: str = "") -> list[str]:
    """`--label key=value ...` for `docker create`, or `--filter label=key=value ...` for `docker ps`."""
    return [arg for key, value in labels.items() for arg in (flag, f"{prefix}{key}={value}")]


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def test_the_container_as_the_engine_reports_it(runtime, spec_of, logs, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "in.txt").write_text("input\n")
    spec = spec_of("sleep", "600", mounts=(Mount(tmp_path / "data", "/data", True), Mount(tmp_path / "in.txt", "/in.txt", False)),
                   workdir="/data", env={"A": "1", "B": "x=y z"}, cpu_cores=1, ram_gb=0.3)
    container = logs.start(runtime, spec)
    try:
        seen = inspect(spec.name)
    finally:
        assert container.kill() == 137  # SIGKILL

    config, host = seen["Config"], seen["HostConfig"]
    assert seen["Name"] == f"/{spec.name}" and seen["State"]["Running"]
    assert config["Labels"] == spec.labels
    assert config["Cmd"] == ["sleep", "600"] and config["WorkingDir"] == "/data"
    assert {"A=1", "B=x=y z"} <= set(config["Env"])
    assert not config["OpenStdin"]
    assert sorted((m["Type"], m["Source"], m["Destination"], m["RW"]) for m in seen["Mounts"]) == [
        ("bind", str(tmp_path / "data"), "/data", True), ("bind", str(tmp_path / "in.txt"), "/in.txt", True)]
    assert host["NanoCpus"] == 10**9
    assert host["Memory"] == 308 * 2**20  # 0.3 GB = 307.2 MiB, rounded up as `--memory 308m`
    assert host["NetworkMode"] == "none"
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["CapDrop"] == ["NET_RAW", "MKNOD"]
    assert not host["AutoRemove"]
    assert docker("ps", "-aq", "--filter", f"name={spec.name}").stdout.strip() == ""  # removed after the kill


def test_optional_settings_are_left_to_the_engine(spec_of, logs, engine):
    runtime = DockerEngineRuntime(ContainerSettings(network="host", no_new_privileges=False))
    spec = spec_of("sleep", "600")
    container = logs.start(runtime, spec)
    try:
        host = inspect(spec.name)["HostConfig"]
    finally:
        container.kill()
    assert host["NetworkMode"] == "host"
    assert not host["SecurityOpt"] and not host["CapDrop"] and host["NanoCpus"] == 0 and host["Memory"] == 0


def test_stdout_and_stderr_are_separate_and_live(runtime, spec_of, logs):
    container = logs.start(runtime, spec_of("sh", "-c", "echo first; echo oops >&2; sleep 2; echo second"))
    deadline = time.monotonic() + 10
    while logs.stdout != b"first\n" or logs.stderr != b"oops\n":
        assert container.wait(0.05) is None, "the container ended before its first lines were seen"
        assert time.monotonic() < deadline, "the first lines never arrived while the container ran"

    assert wait_for_exit(container) == 0
    assert (logs.stdout, logs.stderr) == (b"first\nsecond\n", b"oops\n")


def test_stdin_bytes_reach_the_program_then_eof(runtime, spec_of, logs, tmp_path):
    data = os.urandom(300_000) + b"\0end"
    (tmp_path / "stdin").write_bytes(data)
    container = logs.start(runtime, spec_of("sh", "-c", "sleep 1; cat", stdin=tmp_path / "stdin"))

    assert wait_for_exit(container) == 0  # cat ended: it saw the end of its input
    assert logs.stdout == data


def test_a_program_that_ignores_its_stdin_still_ends(runtime, spec_of, logs, tmp_path):
    (tmp_path / "stdin").write_bytes(os.urandom(4_000_000))
    container = logs.start(runtime, spec_of("sh", "-c", "echo done", stdin=tmp_path / "stdin"))
    assert wait_for_exit(container) == 0 and logs.stdout == b"done\n"


@pytest.mark.parametrize("exit_code", [0, 3])
def test_the_exit_code_is_the_programs(runtime, spec_of, logs, exit_code):
    spec = spec_of("sh", "-c", f"exit {exit_code}")
    assert wait_for_exit(logs.start(runtime, spec)) == exit_code
    assert docker("ps", "-aq", "--filter", f"name={spec.name}").stdout.strip() == ""


def test_a_program_the_engine_cannot_execute_fails_as_with_docker_run(runtime, spec_of, logs):
    assert wait_for_exit(logs.start(runtime, spec_of("no-such-program"))) == 127
    assert b'exec: "no-such-program": executable file not found' in logs.stderr


@pytest.mark.parametrize("case, words", [
    ("missing mount source", "bind source path does not exist"),
    ("unknown network", "network tes-cts-no-such-net not found"),
    ("missing image", "No such image: tes-cts-test/absent:1"),
    ("name in use", "is already in use"),
])
def test_a_container_that_cannot_start_says_why_in_the_engines_words(spec_of, logs, tmp_path, engine, case, words):
    settings, spec = ContainerSettings(), spec_of("true")
    if case == "missing mount source":
        spec = dataclasses.replace(spec, mounts=(Mount(tmp_path / "absent.txt", "/in.txt", False),))
    elif case == "unknown network":
        settings = ContainerSettings(network="tes-cts-no-such-net")
    elif case == "missing image":
        spec = dataclasses.replace(spec, image="tes-cts-test/absent:1")
    else:  # a container of another attempt holds the name
        docker("create", "--name", spec.name, *label_flags(attempt_labels(spec.labels["tes-cts.task"], 2)), engine, "true")

    with pytest.raises(ContainerNotStarted, match=words):
        logs.start(DockerEngineRuntime(settings), spec)
    left = docker("ps", "-aq", *label_flags(spec.labels, "--filter", "label=")).stdout.split()
    assert left == []  # nothing half-made is left behind
    assert not (tmp_path / "absent.txt").exists()  # the engine invented no mount source


def test_engine_and_image_checks(runtime, engine):
    assert runtime.engine_problem() is None
    assert runtime.image_present(engine)
    assert not runtime.image_present("tes-cts-test/absent:1")
    assert not runtime.image_present("Not A Reference")


@pytest.mark.parametrize("image", ["tes-cts-test/absent:1", "tes-cts-test/absent", f"tes-cts-test/absent@sha256:{'0' * 64}"])
def test_a_pull_that_fails_gives_the_engines_message(runtime, image):
    with pytest.raises(ImageUnavailable) as caught:  # no registry is reachable here
        runtime.pull(image, timeout=30)
    assert str(caught.value) and "did not finish" not in str(caught.value)


def test_kill_by_name_of_a_container_that_does_not_exist_does_nothing(runtime):
    runtime.kill(f"tes-cts-absent-{uuid.uuid4().hex[:8]}")


def test_kill_all_removes_an_attempts_containers_left_by_a_dead_worker(runtime, spec_of, logs, engine):
    running = spec_of("sleep", "600")
    logs.start(runtime, running)  # and never waited for: its worker died
    task_id = running.labels["tes-cts.task"]
    created = docker("create", *label_flags(attempt_labels(task_id, 1)), engine, "true").stdout.strip()
    survivor = docker("create", *label_flags(attempt_labels(task_id, 2)), engine, "true").stdout.strip()

    expected = {inspect(running.name)["Id"], created}

    assert set(DockerEngineRuntime(ContainerSettings()).kill_all(task_id, 1)) == expected
    left = docker("ps", "-aq", "--no-trunc", "--filter", f"label=tes-cts.task={task_id}").stdout.split()
    assert left == [survivor]
    assert runtime.kill_all(task_id, 1) == []


def runtime_at(monkeypatch, docker_host: str) -> DockerEngineRuntime:
    """A runtime for another engine; the tests' own `docker` calls keep the real one."""
    with monkeypatch.context() as patch:
        patch.setenv("DOCKER_HOST", docker_host)
        return DockerEngineRuntime(ContainerSettings())


def test_unreachable_engine_is_runtime_unavailable(monkeypatch, tmp_path, spec_of, logs):
    runtime = runtime_at(monkeypatch, f"unix://{tmp_path}/no-engine.sock")
    expected = f"Cannot connect to the Docker engine at unix://{tmp_path}/no-engine.sock (DOCKER_HOST): No such file or directory"

    assert runtime.engine_problem() == expected
    for verb, args in (("image_present", ("anything:1",)), ("kill_all", ("task", 1)), ("kill", ("name",))):
        with pytest.raises(RuntimeUnavailable) as caught:
            getattr(runtime, verb)(*args)
        assert str(caught.value) == expected
    with pytest.raises(ContainerNotStarted, match="Cannot connect to the Docker engine"):
        logs.start(runtime, spec_of("true"))


def test_the_message_names_the_default_engine_without_docker_host(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    problem = DockerEngineRuntime(ContainerSettings()).engine_problem()
    if problem is not None:  # a host may run an engine at the default socket
        assert problem.startswith("Cannot connect to the Docker engine at unix:///var/run/docker.sock (DOCKER_HOST is not set)")


def test_an_engine_lost_while_the_container_runs_is_runtime_unavailable(monkeypatch, tmp_path, spec_of, logs, engine):
    proxy = EngineProxy(tmp_path / "engine.sock", docker_env()["DOCKER_HOST"])
    container = logs.start(runtime_at(monkeypatch, proxy.docker_host), spec_of("sh", "-c", "echo before; sleep 600"))
    assert container.wait(0.5) is None
    proxy.cut()

    with pytest.raises(RuntimeUnavailable, match=f"Cannot connect to the Docker engine at {proxy.docker_host} "):
        wait_for_exit(container, timeout=10)
    assert logs.stdout == b"before\n"


# --- podman's client, against the real engine -----------------------------------------------


@pytest.fixture
def podman_standing_in(monkeypatch, tmp_path, engine) -> PodmanRuntime:
    """Podman is not installed here; its `run`, `kill`, `ps` and `rm` take the arguments the
    docker client takes, so a `podman` that is the docker client drives the real engine."""
    shim = tmp_path / "bin" / "podman"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nexec {shutil.which('docker')} \"$@\"\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ['PATH']}")
    return PodmanRuntime(ContainerSettings(runtime="podman"))


def test_podman_runs_a_container_through_its_client(podman_standing_in, spec_of, logs, tmp_path):
    (tmp_path / "stdin").write_bytes(b"abc\n")
    spec = spec_of("sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3", stdin=tmp_path / "stdin")
    assert wait_for_exit(logs.start(podman_standing_in, spec)) == 3
    assert (logs.stdout, logs.stderr) == (b"ABC\n", b"oops\n")


def test_podman_containers_see_the_env_files_variables_and_the_file_is_removed(podman_standing_in, spec_of, logs,
                                                                               monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where mkstemp puts the file, to look for it
    tempfile.tempdir = None
    try:
        spec = spec_of("sh", "-c", 'echo "$TOKEN|$OTHER"', env={"TOKEN": "s3cret value", "OTHER": "a=b"})
        assert wait_for_exit(logs.start(podman_standing_in, spec)) == 0
    finally:
        tempfile.tempdir = None
    assert logs.stdout == b"s3cret value|a=b\n"
    assert list(tmp_path.glob("tes-cts-env-*")) == []


def test_podman_kill_stops_the_container_and_its_client(podman_standing_in, spec_of, logs):
    spec = spec_of("sleep", "600")
    container = logs.start(podman_standing_in, spec)
    deadline = time.monotonic() + 20
    while not docker("ps", "-q", "--filter", f"name={spec.name}").stdout.strip():
        assert container.wait(0.1) is None and time.monotonic() < deadline
    assert container.kill() == 137
    assert podman_standing_in.kill_all(spec.labels["tes-cts.task"], 1) == []  # run --rm removed it
