"""`tes-cts run` as a person runs it: the real command against a live `serve` (poller, workers,
real containers) and an S3 endpoint (moto) over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tes_cts.client.api import EXIT_CANCELED, EXIT_ERROR

from .s3_server import (  # noqa: F401 (fixtures)
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    crc_of,
    s3_bucket,
    s3_client,
    s3_endpoint,
)
from .test_e2e_local import get
from .test_e2e_s3 import s3_env


@pytest.fixture(scope="module")
def server(live_servers, tmp_path_factory, s3_endpoint, docker_image):  # noqa: F811
    tmp = tmp_path_factory.mktemp("run")
    with live_servers.start(s3_env(tmp, s3_endpoint), cwd=tmp, poller=True) as live:
        yield live


def tes_cts(server, *args, cwd=None, s3_endpoint=None, timeout=180) -> subprocess.CompletedProcess:  # noqa: F811
    env = {**os.environ, "TES_SERVER": server.url, "AWS_ENDPOINT_URL": s3_endpoint or "",
           "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "AWS_REGION": REGION}
    done = subprocess.run([sys.executable, "-m", "tes_cts.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def run_args(docker_image, *args) -> list[str]:
    return ["run", "--image", docker_image, *args]


def test_a_local_input_is_uploaded_once_and_results_come_back_checked(server, s3_endpoint, s3_client, s3_bucket,  # noqa: F811
                                                                       docker_image, tmp_path):
    reads = tmp_path / "reads.txt"
    reads.write_bytes(b"ACGT\n" * 1000)
    stage = f"s3://{s3_bucket}/me/"
    command = ["--input", f"reads={reads}", "--stage", stage, "--download", str(tmp_path / "results"),
               "--", "sh", "-c", "wc -l < /inputs/reads > /outputs/count.txt && cp /inputs/reads /outputs/copy"]

    first = tes_cts(server, *run_args(docker_image, *command), s3_endpoint=s3_endpoint)
    assert first.returncode == 0, first.stderr
    assert f"uploaded to {stage}inputs/reads/reads.txt" in first.stderr
    assert "COMPLETE" in first.stderr
    assert (tmp_path / "results/outputs/count.txt").read_text().strip() == "1000"
    assert (tmp_path / "results/outputs/copy").read_bytes() == reads.read_bytes()
    stored = s3_client.head_object(Bucket=s3_bucket, Key="me/inputs/reads/reads.txt", ChecksumMode="ENABLED")
    assert stored["ChecksumCRC64NVME"] == crc_of(reads.read_bytes())

    second = tes_cts(server, *run_args(docker_image, *command), s3_endpoint=s3_endpoint)
    assert second.returncode == 0, second.stderr
    assert f"already at {stage}inputs/reads/reads.txt" in second.stderr


def test_wait_exits_with_the_executors_exit_code_and_shows_its_stderr(server, docker_image):
    done = tes_cts(server, *run_args(docker_image, "--wait", "--", "sh", "-c", "echo broken pipe >&2; exit 7"))

    assert done.returncode == 7, done.stderr
    task_id = done.stdout.strip()
    assert get(server, task_id)["state"] == "EXECUTOR_ERROR"
    assert "broken pipe" in done.stderr
    assert f"{task_id} EXECUTOR_ERROR" in done.stderr


def test_a_local_script_runs_inline_with_its_arguments_env_name_and_tags(server, docker_image, tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho \"$GREETING $1\"\n")

    done = tes_cts(server, *run_args(docker_image, "--wait", "--env", "GREETING=hello", "--name", "greet",
                                     "--tag", "project=demo", "--", str(script), "world"))

    assert done.returncode == 0, done.stderr
    task = get(server, done.stdout.strip())
    assert task["name"] == "greet" and task["tags"] == {"project": "demo"}
    assert task["executors"][0]["command"] == ["/bin/sh", "/scripts/hello.sh", "world"]
    assert task["logs"][-1]["logs"][0]["stdout"] == "hello world\n"


def test_without_wait_it_prints_the_id_at_once(server, docker_image):
    done = tes_cts(server, *run_args(docker_image, "--", "sleep", "30"))

    assert done.returncode == 0
    task_id = done.stdout.strip()
    assert get(server, task_id, "MINIMAL")["state"] in ("QUEUED", "INITIALIZING", "RUNNING")
    canceled = tes_cts(server, "task", "cancel", task_id)
    assert canceled.returncode == 0, canceled.stderr


def test_a_canceled_task_exits_with_the_canceled_code(server, docker_image):
    waiting = subprocess.Popen([sys.executable, "-m", "tes_cts.cli", *run_args(docker_image, "--wait", "--", "sleep", "60")],
                               env={**os.environ, "TES_SERVER": server.url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    task_id = waiting.stdout.readline().strip()
    assert tes_cts(server, "task", "cancel", task_id).returncode == 0
    _, stderr = waiting.communicate(timeout=120)

    assert waiting.returncode == EXIT_CANCELED, stderr
    assert f"{task_id} CANCELED" in stderr


@pytest.mark.parametrize("args, message", [
    (["--input", "reads=/no/such/file", "--", "true"], "neither a URL nor a local file"),
    (["--", ], "give the command to run"),
    (["--output", "out", "--", "true"], "give a URL"),
    (["--stage", "/tmp/x", "--", "true"], "expected s3://"),
])
def test_bad_arguments_are_one_line(server, docker_image, args, message):
    done = tes_cts(server, *run_args(docker_image, *args))

    assert done.returncode == EXIT_ERROR
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_local_input_without_a_stage_is_refused(server, docker_image, tmp_path):
    (tmp_path / "a.txt").write_text("a")

    done = tes_cts(server, *run_args(docker_image, "--input", f"a={tmp_path / 'a.txt'}", "--", "true"))

    assert done.returncode == EXIT_ERROR and "needs --stage" in done.stderr


def test_a_task_the_server_rejects_is_one_line_with_the_field(server):
    done = tes_cts(server, "run", "--image", "", "--", "true")

    assert done.returncode == EXIT_ERROR
    [line] = done.stderr.strip().splitlines()
    assert "HTTP 400" in line and "executors[0].image" in line


@pytest.mark.parametrize("line, expected", [("tes-cts ta", "task"), ("tes-cts task w", "wait"), ("tes-cts run --dow", "--download")])
def test_the_shell_completes_verbs_and_options(tmp_path, line, expected):
    out = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    done = subprocess.run([sys.executable, "-m", "tes_cts.cli"], env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert expected in out.read_text().split()


def test_a_download_that_is_not_what_the_task_log_reports_is_refused_and_leaves_no_file(
        s3_endpoint, s3_client, s3_bucket, tmp_path, monkeypatch):  # noqa: F811
    from tes_cts.client import run_cmd
    from tes_cts.storage.base import StorageError

    from .s3_server import put_verified

    for name, value in (("AWS_ENDPOINT_URL", s3_endpoint), ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
                        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY), ("AWS_REGION", REGION)):
        monkeypatch.setenv(name, value)
    url = f"s3://{s3_bucket}/runs/out/count.txt"
    put_verified(s3_client, s3_bucket, "runs/out/count.txt", b"changed after the task wrote it\n")
    # What the task's log says it wrote: another file's CRC64NVME.
    task = {"state": "COMPLETE", "logs": [{"outputs": [{"url": url, "path": "/outputs/count.txt", "size_bytes": "5"}],
                                           "metadata": {f"crc64nvme:{url}": crc_of(b"1000\n")}}]}

    with pytest.raises(StorageError, match="CRC64NVME"):
        run_cmd._download_outputs(task, tmp_path / "results", quiet=True)
    assert not (tmp_path / "results/outputs/count.txt").exists()
    assert list((tmp_path / "results").rglob("*")) in ([], [tmp_path / "results/outputs"])
