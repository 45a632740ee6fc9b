"""S3 inputs and outputs end to end: live `serve`, its poller, real workers and containers, and an
S3 endpoint (moto) over real HTTP. Integrity from submission to output."""

from __future__ import annotations

import subprocess

import pytest
import requests

from .docker_env import docker_env
from .live_server import TES_CTS
from .s3_server import (  # noqa: F401 (fixtures)
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    crc_of,
    put_verified,
    rejecting_credentials,
    s3_bucket,
    s3_client,
    s3_endpoint,
)
from .test_e2e_local import run, submit, task, wait_for

HOW_TO_FIX = "--checksum-algorithm CRC64NVME"


def s3_env(tmp_path, endpoint, **more) -> dict:
    return {
        "DOCKER_HOST": docker_env()["DOCKER_HOST"],
        "TES_CTS_WORK_DIR": str(tmp_path / "work"),
        "TES_CTS_POLLER__INTERVAL_S": "0.2",
        "TES_CTS_S3__ENDPOINT_URL": endpoint,
        "TES_CTS_S3__ACCESS_KEY_ID": ACCESS_KEY_ID,
        "TES_CTS_S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "TES_CTS_S3__MULTIPART_THRESHOLD_BYTES": str(5 * 1024 * 1024),
        **more,
    }


@pytest.fixture
def server(live_servers, tmp_path, s3_endpoint, docker_image):
    with live_servers.start(s3_env(tmp_path, s3_endpoint), cwd=tmp_path, poller=True) as live:
        yield live


def test_verified_inputs_in_and_checksummed_outputs_out(server, s3_client, s3_bucket):
    put_verified(s3_client, s3_bucket, "in/reads.txt", b"ACGT\n" * 1000)
    put_verified(s3_client, s3_bucket, "in/ref/a.fa", b">a\nAC\n")
    put_verified(s3_client, s3_bucket, "in/ref/b.fa", b">b\nGT\n")
    script = ("wc -c < /data/reads.txt > /out/count.txt && cat /ref/a.fa /ref/b.fa > /out/both.fa "
              "&& : > /out/empty && head -c 20971520 /dev/urandom > /out/big.bin")
    task_id = submit(server, task(
        run(["sh", "-c", script]),
        inputs=[{"path": "/data/reads.txt", "url": f"s3://{s3_bucket}/in/reads.txt"},
                {"path": "/ref", "url": f"s3://{s3_bucket}/in/ref/", "type": "DIRECTORY"}],
        outputs=[{"path": "/out", "url": f"s3://{s3_bucket}/results/", "type": "DIRECTORY"}],
    ))
    done = wait_for(server, task_id, timeout=120)
    assert done["state"] == "COMPLETE", done["logs"][-1]["system_logs"]
    log = done["logs"][0]
    assert any("CRC64NVME verified" in line for line in log["system_logs"])
    assert s3_client.get_object(Bucket=s3_bucket, Key="results/count.txt")["Body"].read() == b"5000\n"
    metadata = log["metadata"]
    for name in ("count.txt", "both.fa", "empty", "big.bin"):
        head = s3_client.head_object(Bucket=s3_bucket, Key=f"results/{name}", ChecksumMode="ENABLED")
        body = s3_client.get_object(Bucket=s3_bucket, Key=f"results/{name}")["Body"].read()
        assert head["ChecksumCRC64NVME"] == crc_of(body) == metadata[f"crc64nvme:s3://{s3_bucket}/results/{name}"]
    big = s3_client.head_object(Bucket=s3_bucket, Key="results/big.bin", ChecksumMode="ENABLED")
    assert big["ContentLength"] == 20971520 and big["ChecksumType"] == "FULL_OBJECT"
    assert {o["path"]: o["size_bytes"] for o in log["outputs"]}["/out/empty"] == "0"
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_an_input_without_crc64nvme_fails_at_dispatch_with_the_fix(server, s3_client, s3_bucket):
    s3_client.put_object(Bucket=s3_bucket, Key="plain.txt", Body=b"no crc64 here")  # no checksum at all
    put_verified(s3_client, s3_bucket, "good.txt", b"fine")
    task_id = submit(server, task(run(["true"]), inputs=[
        {"path": "/a", "url": f"s3://{s3_bucket}/plain.txt"},
        {"path": "/b", "url": f"s3://{s3_bucket}/missing.txt"},
        {"path": "/c", "url": f"s3://{s3_bucket}/good.txt"}]))
    done = wait_for(server, task_id)
    assert done["state"] == "SYSTEM_ERROR"
    lines = " | ".join(done["logs"][0]["system_logs"])
    assert f"s3://{s3_bucket}/plain.txt" in lines and HOW_TO_FIX in lines and "mc cp --checksum crc64nvme" in lines
    assert "it has no checksum at all" in lines
    assert f"s3://{s3_bucket}/missing.txt" in lines and "good.txt" not in lines
    assert "start_time" not in done["logs"][0]  # no attempt was started: no compute was spent


def test_create_mode_refuses_the_task_listing_every_bad_input(live_servers, tmp_path, s3_endpoint, s3_client, s3_bucket,
                                                               docker_image):
    s3_client.put_object(Bucket=s3_bucket, Key="plain1.txt", Body=b"x")
    s3_client.put_object(Bucket=s3_bucket, Key="plain2.txt", Body=b"y")
    env = s3_env(tmp_path, s3_endpoint, TES_CTS_S3__VERIFY_INPUTS="create")
    with live_servers.start(env, cwd=tmp_path, workers=None, poller=True) as server:
        response = requests.post(f"{server.url}/v1/tasks", timeout=30, json=task(run(["true"]), inputs=[
            {"path": "/a", "url": f"s3://{s3_bucket}/plain1.txt"}, {"path": "/b", "url": f"s3://{s3_bucket}/plain2.txt"}]))
        assert response.status_code == 400
        reasons = [e["reason"] for e in response.json()["errors"]]
        assert len(reasons) == 2 and all(HOW_TO_FIX in r for r in reasons)
        assert [e["field"] for e in response.json()["errors"]] == ["inputs[0].url", "inputs[1].url"]
        assert "plain1.txt" in reasons[0] and "plain2.txt" in reasons[1]
        assert requests.get(f"{server.url}/v1/tasks", timeout=10).json() == {"tasks": []}


def test_an_input_changed_after_submission_is_never_used(live_servers, tmp_path, s3_endpoint, s3_client, s3_bucket,
                                                         docker_image):
    # One slot, taken by a first task: the second is verified at create, then waits; meanwhile its
    # input is overwritten (with a valid CRC64NVME of its own).
    env = s3_env(tmp_path, s3_endpoint, TES_CTS_S3__VERIFY_INPUTS="create", TES_CTS_LOCAL__CPU_SLOTS="1")
    put_verified(s3_client, s3_bucket, "data.txt", b"version 1")
    with live_servers.start(env, cwd=tmp_path, workers=None, poller=True) as server:
        blocker = submit(server, task(run(["sleep", "3"])))
        wait_for(server, blocker, {"RUNNING"})
        victim = submit(server, task(run(["cat", "/in/data.txt"]), inputs=[
            {"path": "/in/data.txt", "url": f"s3://{s3_bucket}/data.txt"}]))
        put_verified(s3_client, s3_bucket, "data.txt", b"version 2, changed")
        done = wait_for(server, victim, timeout=60)
        assert done["state"] == "SYSTEM_ERROR"
        assert any("changed since submission" in line for line in done["logs"][-1]["system_logs"])
        assert not done["logs"][-1]["logs"]  # no executor ran on the changed bytes
        leftovers = list((tmp_path / "work" / "runs" / victim).rglob("data.txt*"))
        assert leftovers == []  # no partial file


@pytest.mark.live
def test_wrong_s3_credentials_stop_serve_with_a_clear_message(tmp_path, s3_endpoint):
    env = {**s3_env(tmp_path, s3_endpoint), "TES_CTS_S3__ACCESS_KEY_ID": "nobody",
           "TES_CTS_S3__SECRET_ACCESS_KEY": "not-the-secret-9d2e"}
    with rejecting_credentials(s3_endpoint):
        result = subprocess.run([TES_CTS, "serve", "--bind", "127.0.0.1:0"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=60, env={**{k: v for k, v in __import__("os").environ.items()
                                                              if not k.startswith("TES_CTS_")}, **env})
    assert result.returncode == 2
    assert "rejected the credentials" in result.stderr and s3_endpoint in result.stderr
    assert "not-the-secret-9d2e" not in result.stderr + result.stdout


@pytest.mark.live
def test_an_unreachable_endpoint_stops_serve_with_a_clear_message(tmp_path):
    env = s3_env(tmp_path, "http://127.0.0.1:9")
    import os

    result = subprocess.run([TES_CTS, "serve", "--bind", "127.0.0.1:0"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**{k: v for k, v in os.environ.items() if not k.startswith("TES_CTS_")}, **env})
    assert result.returncode == 2 and "cannot reach" in result.stderr
