"""S3 storage, preflight and staging against moto's S3 server over real HTTP (tests/s3_server.py).

Two kinds of test double, both at the HTTP edge of botocore so that everything of ours runs:
- botocore's `before-send` event on the storage's own client, to change a request in flight (a
  checksum header, a part's bytes) or to fail one (a dropped connection), as a misbehaving store
  or network would; each test uses a store of its own name, so the handler stays on its client;
- `_BreakingClient`, a wrapper around that client whose first GetObject body breaks off midway.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, ResponseStreamingError

from tes_cts.jobfiles import Job
from tes_cts.storage import ChangedSinceSubmission, StorageConfig, StorageError, check_s3_stores, storage_for
from tes_cts.storage.base import ChecksumMismatch
from tes_cts.storage.preflight import preflight_inputs
from tes_cts.storage.s3 import S3Storage, part_size
from tes_cts.wiring import build_app
from tes_cts.worker.paths import FileMapper
from tes_cts.worker.staging import StagingError, stage_inputs, stage_outputs

from .s3_server import (  # noqa: F401
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    crc_of,
    make_client,
    make_store,
    put_verified,
    rejecting_credentials,
    s3_bucket,
    s3_client,
    s3_endpoint,
    s3_store,
)
from .test_storage import listing

MIB = 1024 * 1024


def config_of(*stores, **more) -> StorageConfig:
    return StorageConfig(s3_stores=tuple(stores), **more)


def head(client, bucket, key) -> dict:
    return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")


def make_job(tmp_path, inputs=(), outputs=()) -> tuple[Job, FileMapper]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    task = {"executors": [{"image": "busybox", "command": ["true"]}], "inputs": list(inputs), "outputs": list(outputs)}
    return Job(task_id="t1", attempt=1, task=task, run_dir=str(run_dir)), FileMapper(run_dir)


# --- preflight -------------------------------------------------------------------------------


def test_input_with_crc64nvme_is_verified_and_staged(tmp_path, s3_client, s3_bucket, s3_store):
    data = os.urandom(3 * MIB + 5)
    put_verified(s3_client, s3_bucket, "in/reads.fq", data)
    url = f"s3://{s3_bucket}/in/reads.fq"
    config = config_of(s3_store)
    inputs = [{"url": url, "path": "/data/reads.fq", "type": "FILE"}, {"content": "x", "path": "/data/c.txt"}]
    result = preflight_inputs(inputs, config)
    assert result.problems == []
    assert result.verified == {"0": [{"url": url, "size": len(data), "etag": head(s3_client, s3_bucket, "in/reads.fq")["ETag"],
                                      "crc64nvme": crc_of(data)}]}
    job, mapper = make_job(tmp_path, inputs)
    logs = stage_inputs(job, mapper, config, result.verified)
    assert logs[0] == f"input /data/reads.fq ({url}): {len(data)} bytes, CRC64NVME verified"
    assert mapper.host_path("/data/reads.fq").read_bytes() == data
    assert listing(mapper.host_path("/data")) == ["c.txt", "reads.fq"]


def test_input_without_crc64nvme_is_a_problem_saying_how_to_add_one(s3_client, s3_bucket, s3_store):
    s3_client.put_object(Bucket=s3_bucket, Key="plain.txt", Body=b"no checksum")  # this client sends none
    assert "ChecksumCRC64NVME" not in head(s3_client, s3_bucket, "plain.txt")
    s3_client.put_object(Bucket=s3_bucket, Key="dir/one", Body=b"1")
    s3_client.put_object(Bucket=s3_bucket, Key="dir/two", Body=b"2")
    put_verified(s3_client, s3_bucket, "dir/fine", b"ok")
    inputs = [{"url": f"s3://{s3_bucket}/plain.txt", "path": "/a"}, {"url": f"s3://{s3_bucket}/dir/", "path": "/d", "type": "DIRECTORY"}]
    result = preflight_inputs(inputs, config_of(s3_store))
    assert result.verified == {}
    how = ("has no CRC64NVME checksum in its storage metadata, which every input needs (it has no checksum at all); "
           "upload it again with one: `aws s3 cp --checksum-algorithm CRC64NVME FILE s3://{0}`, "
           "`mc cp --checksum crc64nvme FILE ALIAS/{0}`, or with boto3 `put_object(..., ChecksumAlgorithm=\"CRC64NVME\")` "
           "or `upload_file(..., ExtraArgs={{\"ChecksumAlgorithm\": \"CRC64NVME\"}})` (which need awscrt: "
           "`pip install \"boto3[crt]\"`)")
    assert result.problems == [
        f"inputs[0] s3://{s3_bucket}/plain.txt: " + how.format(f"{s3_bucket}/plain.txt"),
        f"inputs[1] s3://{s3_bucket}/dir/one (in the DIRECTORY s3://{s3_bucket}/dir/): " + how.format(f"{s3_bucket}/dir/one"),
        f"inputs[1] s3://{s3_bucket}/dir/two (in the DIRECTORY s3://{s3_bucket}/dir/): " + how.format(f"{s3_bucket}/dir/two"),
    ]
    assert [problem.index for problem in result.input_problems] == [0, 1, 1]
    assert result.input_problems[0].text == f"s3://{s3_bucket}/plain.txt: " + how.format(f"{s3_bucket}/plain.txt")


def plain_boto3_client(endpoint: str):
    """boto3 as a user has it: every upload gets the default checksum (CRC32) unless told otherwise."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY_ID,
                        aws_secret_access_key=SECRET_ACCESS_KEY,
                        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_supported"))


def test_an_object_uploaded_by_plain_boto3_is_refused_naming_crc32_and_the_boto3_fix(s3_endpoint, s3_bucket, s3_store):
    url = f"s3://{s3_bucket}/by-boto3.txt"
    plain_boto3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="by-boto3.txt", Body=b"CRC32 only")
    storage = storage_for(url, config_of(s3_store))
    assert storage.stat(url).other_checksums == ("CRC32",)
    [problem] = preflight_inputs([{"url": url, "path": "/a"}], config_of(s3_store)).problems
    assert problem.startswith(f"inputs[0] {url}: has no CRC64NVME checksum in its storage metadata, which every input "
                              "needs (its checksum is CRC32, which boto3 adds by default); upload it again with one: ")
    assert 'put_object(..., ChecksumAlgorithm="CRC64NVME")' in problem
    assert 'upload_file(..., ExtraArgs={"ChecksumAlgorithm": "CRC64NVME"})' in problem
    assert f"`aws s3 cp --checksum-algorithm CRC64NVME FILE {url}`" in problem


def test_the_fix_the_message_shows_for_boto3_gives_a_crc64nvme(tmp_path, s3_endpoint, s3_bucket, s3_store):
    client = plain_boto3_client(s3_endpoint)
    client.put_object(Bucket=s3_bucket, Key="put.txt", Body=b"put", ChecksumAlgorithm="CRC64NVME")
    src = tmp_path / "up.txt"
    src.write_bytes(b"uploaded")
    client.upload_file(str(src), s3_bucket, "up.txt", ExtraArgs={"ChecksumAlgorithm": "CRC64NVME"})
    result = preflight_inputs([{"url": f"s3://{s3_bucket}/put.txt", "path": "/a"},
                               {"url": f"s3://{s3_bucket}/up.txt", "path": "/b"}], config_of(s3_store))
    assert result.problems == []
    recorded = [entry["crc64nvme"] for index in ("0", "1") for entry in result.verified[index]]
    assert recorded == [crc_of(b"put"), crc_of(b"uploaded")]


def test_an_object_with_another_checksum_is_refused_naming_it(s3_client, s3_bucket, s3_store):
    url = f"s3://{s3_bucket}/sha.txt"
    s3_client.put_object(Bucket=s3_bucket, Key="sha.txt", Body=b"sha", ChecksumAlgorithm="SHA256")
    assert storage_for(url, config_of(s3_store)).stat(url).other_checksums == ("SHA256",)
    [problem] = preflight_inputs([{"url": url, "path": "/a"}], config_of(s3_store)).problems
    assert "(its checksum is SHA256); upload it again with one: " in problem and "boto3 adds" not in problem


def test_an_object_with_no_checksum_says_so_when_staged_unrecorded_too(tmp_path, s3_client, s3_bucket, s3_store):
    # The same text whether preflight refuses the object or a get with no recorded entry does.
    url = f"s3://{s3_bucket}/bare.txt"
    s3_client.put_object(Bucket=s3_bucket, Key="bare.txt", Body=b"bare")
    storage = storage_for(url, config_of(s3_store))
    assert storage.stat(url).other_checksums == ()
    [problem] = preflight_inputs([{"url": url, "path": "/a"}], config_of(s3_store)).input_problems
    assert "(it has no checksum at all)" in problem.text
    with pytest.raises(StorageError) as raised:
        storage.get(url, tmp_path / "bare.txt", False)
    assert f"{raised.value.url}: {raised.value.reason}" == problem.text


def test_create_mode_names_the_field_of_each_bad_input(make_settings, sqlite_db, s3_endpoint, s3_client, s3_bucket):
    put_verified(s3_client, s3_bucket, "good.txt", b"fine")
    s3_client.put_object(Bucket=s3_bucket, Key="bare.txt", Body=b"no checksum")
    settings = make_settings(s3__endpoint_url=s3_endpoint, s3__access_key_id=ACCESS_KEY_ID,
                             s3__secret_access_key=SECRET_ACCESS_KEY, s3__verify_inputs="create")
    body = {"executors": [{"image": "busybox", "command": ["true"]}],
            "inputs": [{"path": "/a", "url": f"s3://{s3_bucket}/good.txt"}, {"path": "/b", "url": f"s3://{s3_bucket}/bare.txt"}]}
    with build_app(settings, sqlite_db).test_client() as client:
        response = client.post("/v1/tasks", json=body)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "inputs[1].url"
    assert error["reason"].startswith(f"s3://{s3_bucket}/bare.txt: has no CRC64NVME checksum")
    assert "(it has no checksum at all)" in error["reason"]


def test_missing_object_bucket_and_prefix(s3_bucket, s3_store):
    inputs = [
        {"url": f"s3://{s3_bucket}/nope.txt", "path": "/a"},
        {"url": "s3://no-such-bucket-here/x.txt", "path": "/b"},
        {"url": f"s3://{s3_bucket}/empty/", "path": "/c", "type": "DIRECTORY"},
        {"url": "s3://no-such-bucket-here/dir/", "path": "/d", "type": "DIRECTORY"},
    ]
    result = preflight_inputs(inputs, config_of(s3_store))
    assert result.problems == [
        f"inputs[0] s3://{s3_bucket}/nope.txt: no such object",
        f"inputs[1] s3://no-such-bucket-here/x.txt: no such bucket no-such-bucket-here at {s3_store.endpoint_url} (store default)",
        f"inputs[2] s3://{s3_bucket}/empty/: no object under the prefix s3://{s3_bucket}/empty/ (a DIRECTORY input names a key prefix)",
        "inputs[3] s3://no-such-bucket-here/dir/: no such bucket no-such-bucket-here",
    ]


def test_kms_encrypted_object_is_a_problem(s3_client, s3_bucket, s3_store):
    put_verified(s3_client, s3_bucket, "secret.bam", b"sealed", ServerSideEncryption="aws:kms")
    put_verified(s3_client, s3_bucket, "sse-s3.bam", b"fine", ServerSideEncryption="AES256")
    inputs = [{"url": f"s3://{s3_bucket}/secret.bam", "path": "/a"}, {"url": f"s3://{s3_bucket}/sse-s3.bam", "path": "/b"}]
    result = preflight_inputs(inputs, config_of(s3_store))
    assert result.problems == [
        f"inputs[0] s3://{s3_bucket}/secret.bam: is encrypted with SSE-KMS (aws:kms), which this server does not read; "
        "copy it to an object without KMS encryption, or with SSE-S3 (`aws s3 cp --sse AES256 ...`)"
    ]
    assert storage_for(f"s3://{s3_bucket}/secret.bam", config_of(s3_store)).stat(f"s3://{s3_bucket}/secret.bam").encryption == "aws:kms"


def test_preflight_is_concurrent_and_bounded(s3_client, s3_bucket, s3_store):
    for number in range(30):
        put_verified(s3_client, s3_bucket, f"many/{number:02}", str(number).encode())
    inputs = [{"url": f"s3://{s3_bucket}/many/", "path": "/m", "type": "DIRECTORY"}]
    inputs += [{"url": f"s3://{s3_bucket}/many/{n:02}", "path": f"/f{n}"} for n in range(30)]
    result = preflight_inputs(inputs, config_of(s3_store, preflight_concurrency=4))
    assert result.problems == []
    assert [entry["url"] for entry in result.verified["0"]] == [f"s3://{s3_bucket}/many/{n:02}" for n in range(30)]
    assert len(result.verified) == 31


# --- DIRECTORY inputs ------------------------------------------------------------------------


def test_directory_input(tmp_path, s3_client, s3_bucket, s3_store):
    files = {"ref/genome.fa": b">chr1\nACGT\n", "ref/index/a.idx": b"a" * 1000, "ref/index/b.idx": b""}
    for key, data in files.items():
        put_verified(s3_client, s3_bucket, key, data)
    s3_client.put_object(Bucket=s3_bucket, Key="ref/index/", Body=b"")  # a console "folder": skipped
    put_verified(s3_client, s3_bucket, "reference.txt", b"not under ref/")
    config = config_of(s3_store)
    for url in (f"s3://{s3_bucket}/ref/", f"s3://{s3_bucket}/ref"):
        inputs = [{"url": url, "path": "/ref", "type": "DIRECTORY"}]
        result = preflight_inputs(inputs, config)
        assert result.problems == []
        assert [e["url"] for e in result.verified["0"]] == [f"s3://{s3_bucket}/{key}" for key in sorted(files)]
        job, mapper = make_job(tmp_path, inputs)
        assert stage_inputs(job, mapper, config, result.verified) == [f"input /ref ({url}): directory, 1011 bytes, CRC64NVME verified"]
        assert listing(mapper.host_path("/ref")) == ["genome.fa", "index", "index/a.idx", "index/b.idx"]
        assert mapper.host_path("/ref/index/a.idx").read_bytes() == b"a" * 1000
        # Without recorded entries (no preflight), the store's own CRC64NVME is checked.
        assert storage_for(url, config).get(url, tmp_path / "again", True) == 1011
        assert listing(tmp_path / "again") == ["genome.fa", "index", "index/a.idx", "index/b.idx"]
        for path in (tmp_path / "again", tmp_path / "run"):
            __import__("shutil").rmtree(path)


def test_directory_changed_since_preflight(tmp_path, s3_client, s3_bucket, s3_store):
    put_verified(s3_client, s3_bucket, "d/a", b"a")
    put_verified(s3_client, s3_bucket, "d/b", b"b")
    url = f"s3://{s3_bucket}/d/"
    config = config_of(s3_store)
    expected = preflight_inputs([{"url": url, "path": "/d", "type": "DIRECTORY"}], config).verified["0"]
    storage = storage_for(url, config)
    put_verified(s3_client, s3_bucket, "d/c", b"c")
    with pytest.raises(ChangedSinceSubmission, match=f"changed since submission \\(1 object\\(s\\) added: s3://{s3_bucket}/d/c\\)"):
        storage.get(url, tmp_path / "d", True, expected)
    s3_client.delete_object(Bucket=s3_bucket, Key="d/c")
    put_verified(s3_client, s3_bucket, "d/b", b"B")  # same size, other bytes
    with pytest.raises(ChangedSinceSubmission) as raised:
        storage.get(url, tmp_path / "d", True, expected)
    assert raised.value.url == url
    assert raised.value.reason == f"s3://{s3_bucket}/d/b changed since submission (recorded CRC64NVME {crc_of(b'b')}, now {crc_of(b'B')})"
    s3_client.delete_object(Bucket=s3_bucket, Key="d/b")
    with pytest.raises(ChangedSinceSubmission, match=f"1 object\\(s\\) removed: s3://{s3_bucket}/d/b"):
        storage.get(url, tmp_path / "d", True, expected)
    assert listing(tmp_path) == []


def test_directory_key_that_cannot_be_a_file_is_refused(tmp_path, s3_client, s3_bucket, s3_store):
    put_verified(s3_client, s3_bucket, "d/../escape", b"x")
    url = f"s3://{s3_bucket}/d/"
    result = preflight_inputs([{"url": url, "path": "/d", "type": "DIRECTORY"}], config_of(s3_store))
    assert result.problems == [f"inputs[0] {url}: the object key 'd/../escape' cannot be a file under the directory "
                               "(empty, '.' or '..' path segments)"]


# --- changed between preflight and staging ---------------------------------------------------


def test_object_overwritten_after_preflight(tmp_path, s3_client, s3_bucket, s3_store):
    put_verified(s3_client, s3_bucket, "in.txt", b"version one")
    url = f"s3://{s3_bucket}/in.txt"
    config = config_of(s3_store)
    inputs = [{"url": url, "path": "/data/in.txt"}]
    verified = preflight_inputs(inputs, config).verified
    put_verified(s3_client, s3_bucket, "in.txt", b"version two")  # same size: only the bytes tell
    job, mapper = make_job(tmp_path, inputs)
    with pytest.raises(StagingError) as raised:
        stage_inputs(job, mapper, config, verified)
    assert str(raised.value) == (f"input /data/in.txt ({url}): changed since submission "
                                 f"(recorded CRC64NVME {crc_of(b'version one')}, now {crc_of(b'version two')})")
    assert listing(mapper.host_path("/data")) == []  # no partial file, no temporary

    # Without an ETag to pin the object (If-Match), the CRC64NVME of the bytes received tells.
    unpinned = [dict(verified["0"][0], etag=None)]
    with pytest.raises(ChangedSinceSubmission) as raised:
        storage_for(url, config).get(url, tmp_path / "in.txt", False, unpinned)
    assert raised.value.reason == f"changed since submission (recorded CRC64NVME {crc_of(b'version one')}, now {crc_of(b'version two')})"
    s3_client.delete_object(Bucket=s3_bucket, Key="in.txt")
    with pytest.raises(ChangedSinceSubmission, match="now none; the object was deleted"):
        storage_for(url, config).get(url, tmp_path / "in.txt", False, verified["0"])
    assert listing(tmp_path) == ["run", "run/mounts", "run/mounts/data"]


class _BreakingClient:
    """The real client, but the body of the first GetObject breaks off after `after` bytes."""

    def __init__(self, client, after: int):
        self.client, self.after, self.calls = client, after, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_object(self, **params):
        self.calls.append(params)
        response = self.client.get_object(**params)
        if len(self.calls) == 1:
            response["Body"] = _BreakingBody(response["Body"], self.after)
        return response


class _BreakingBody:
    def __init__(self, body, after):
        self.body, self.left = body, after

    def read(self, amount):
        if self.left <= 0:
            raise ResponseStreamingError(error="Connection broken: IncompleteRead")
        chunk = self.body.read(min(amount, self.left))
        self.left -= len(chunk)
        return chunk

    def close(self):
        self.body.close()


def test_a_broken_download_resumes_where_it_stopped(tmp_path, s3_client, s3_bucket, s3_store, monkeypatch):
    data = os.urandom(3 * MIB)
    put_verified(s3_client, s3_bucket, "big.bin", data)
    url = f"s3://{s3_bucket}/big.bin"
    config = config_of(s3_store)
    expected = preflight_inputs([{"url": url, "path": "/x"}], config).verified["0"]
    storage = storage_for(url, config)
    storage.client = breaking = _BreakingClient(storage.client, after=MIB + 7)
    monkeypatch.setattr("tes_cts.storage.s3._backoff", lambda failures: 0)
    assert storage.get(url, tmp_path / "big.bin", False, expected) == len(data)
    assert (tmp_path / "big.bin").read_bytes() == data
    assert [call.get("Range") for call in breaking.calls] == [None, f"bytes={MIB + 7}-"]
    assert all(call["IfMatch"] == expected[0]["etag"] for call in breaking.calls)


# --- outputs ---------------------------------------------------------------------------------


def test_outputs_land_with_their_crc64nvme(tmp_path, s3_client, s3_bucket, s3_endpoint):
    store = make_store(s3_endpoint, name="small-parts", multipart_threshold_bytes=5 * MIB)
    big = os.urandom(20 * MIB)
    outputs = [{"path": f"/out/{name}", "url": f"s3://{s3_bucket}/results/{name}", "type": "FILE"}
               for name in ("empty", "small.txt", "big.bin")]
    job, mapper = make_job(tmp_path, outputs=outputs)
    mapper.host_path("/out").mkdir(parents=True)
    mapper.host_path("/out/empty").write_bytes(b"")
    mapper.host_path("/out/small.txt").write_bytes(b"small result")
    mapper.host_path("/out/big.bin").write_bytes(big)
    staged = stage_outputs(job, mapper, config_of(store))
    assert staged.missing == []
    assert staged.outputs == [
        {"url": f"s3://{s3_bucket}/results/empty", "path": "/out/empty", "size_bytes": 0, "crc64nvme": crc_of(b"")},
        {"url": f"s3://{s3_bucket}/results/small.txt", "path": "/out/small.txt", "size_bytes": 12, "crc64nvme": crc_of(b"small result")},
        {"url": f"s3://{s3_bucket}/results/big.bin", "path": "/out/big.bin", "size_bytes": 20 * MIB, "crc64nvme": crc_of(big)},
    ]
    for key, data in (("empty", b""), ("small.txt", b"small result"), ("big.bin", big)):
        stored = head(s3_client, s3_bucket, f"results/{key}")
        assert (stored["ContentLength"], stored["ChecksumCRC64NVME"]) == (len(data), crc_of(data))
    multipart = head(s3_client, s3_bucket, "results/big.bin")
    assert multipart["ChecksumType"] == "FULL_OBJECT" and multipart["ETag"].endswith('-3"')  # parts of 8, 8 and 4 MiB
    assert s3_client.get_object(Bucket=s3_bucket, Key="results/big.bin")["Body"].read() == big
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_part_size():
    assert part_size(20 * MIB) == 8 * MIB
    assert part_size(10 * 1024**3) == 8 * MIB
    assert part_size(100 * 1024**3) == 11 * MIB                     # 100 GiB in at most 10,000 parts, whole MiB
    assert part_size(5 * 1024**4) == 525 * MIB                      # 5 TiB, S3's largest object
    for size in (100 * 1024**3, 5 * 1024**4):
        assert -(-size // part_size(size)) <= 10_000


def _on_send(storage: S3Storage, operation: str, handler):
    storage.client.meta.events.register(f"before-send.s3.{operation}", handler)
    return lambda: storage.client.meta.events.unregister(f"before-send.s3.{operation}", handler)


def test_a_store_recording_another_checksum_is_detected(tmp_path, s3_client, s3_bucket, s3_endpoint):
    # moto, like some stores, keeps the CRC64NVME header it is sent without checking it against
    # the bytes: a header changed in flight is what such a store then reports.
    src = tmp_path / "out.txt"
    src.write_bytes(b"the real bytes")
    url = f"s3://{s3_bucket}/out.txt"
    storage = storage_for(url, config_of(make_store(s3_endpoint, name="tampered-single")))

    def swap_checksum(request, **_):
        request.headers["x-amz-checksum-crc64nvme"] = crc_of(b"other bytes")

    undo = _on_send(storage, "PutObject", swap_checksum)
    try:
        with pytest.raises(ChecksumMismatch) as raised:  # counted apart by the worker's meter
            storage.put(src, url)
    finally:
        undo()
    assert raised.value.reason == (f"store returned CRC64NVME {crc_of(b'other bytes')} for {url}, local "
                                   f"{crc_of(b'the real bytes')}; the object was deleted")
    assert "Contents" not in s3_client.list_objects_v2(Bucket=s3_bucket)


def test_a_multipart_upload_whose_bytes_changed_in_flight_is_detected(tmp_path, s3_client, s3_bucket, s3_endpoint):
    # Here moto computes the whole object's CRC64NVME from the bytes it stored, and a part's
    # bytes are changed in flight (its own checksum header left as it was).
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * MIB))
    url = f"s3://{s3_bucket}/big.bin"
    storage = storage_for(url, config_of(make_store(s3_endpoint, name="tampered-part", multipart_threshold_bytes=5 * MIB)))

    def flip_a_byte(request, **_):
        if "partNumber=2" in request.url:
            body = bytearray(request.body.read())
            body[100] ^= 0xFF
            request.body = bytes(body)

    undo = _on_send(storage, "UploadPart", flip_a_byte)
    try:
        with pytest.raises(StorageError) as raised:
            storage.put(src, url)
    finally:
        undo()
    assert raised.value.reason.startswith("store returned CRC64NVME ")
    assert raised.value.reason.endswith(f" for {url}, local {crc_of(src.read_bytes())}; the object was deleted")
    assert "Contents" not in s3_client.list_objects_v2(Bucket=s3_bucket)


def test_a_failing_multipart_upload_leaves_no_upload_open(tmp_path, s3_client, s3_bucket, s3_endpoint):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(16 * MIB))
    url = f"s3://{s3_bucket}/big.bin"
    storage = storage_for(url, config_of(make_store(s3_endpoint, name="failing-part", multipart_threshold_bytes=5 * MIB)))
    sent = []

    def drop_part_two(request, **_):
        sent.append(request.url)
        if "partNumber=2" in request.url:
            raise ConnectionClosedError(endpoint_url=request.url)

    undo = _on_send(storage, "UploadPart", drop_part_two)
    try:
        with pytest.raises(StorageError, match="Connection was closed before we received a valid response"):
            storage.put(src, url)
    finally:
        undo()
    assert sum("partNumber=2" in u for u in sent) == 2  # retried (max_attempts=2), then given up
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert "Contents" not in s3_client.list_objects_v2(Bucket=s3_bucket)


# --- stores: resolution, allow-lists, credentials, endpoints ---------------------------------


def test_named_store_default_store_and_key_prefixes(tmp_path, s3_client, s3_bucket, s3_endpoint):
    put_verified(s3_client, s3_bucket, "lab-a/in.txt", b"lab a")
    put_verified(s3_client, s3_bucket, "lab-b/in.txt", b"lab b")
    unreachable = make_store(f"http://127.0.0.1:{_free_port()}", name="default")
    named = make_store(s3_endpoint, name="lab", buckets=(s3_bucket,), key_prefixes=("lab-a/",))
    config = config_of(unreachable, named)
    result = preflight_inputs([{"url": f"s3://{s3_bucket}/lab-a/in.txt", "path": "/a"},
                               {"url": f"s3://{s3_bucket}/lab-b/in.txt", "path": "/b"},
                               {"url": "s3://other-bucket/in.txt", "path": "/c"}], config)
    assert list(result.verified) == ["0"]
    assert result.problems[0] == (f"inputs[1] s3://{s3_bucket}/lab-b/in.txt: key 'lab-b/in.txt' is not under a key "
                                  "prefix store lab allows (allowed: 'lab-a/'); see the setting key_prefixes of that store")
    assert result.problems[1].startswith(f"inputs[2] s3://other-bucket/in.txt: cannot reach S3 endpoint {unreachable.endpoint_url}")
    src = tmp_path / "x"
    src.write_bytes(b"x")
    with pytest.raises(StorageError, match="allowed: 'lab-a/'"):
        storage_for(f"s3://{s3_bucket}/lab-a/x", config).put(src, f"s3://{s3_bucket}/lab-b/x")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_check_s3_stores(s3_endpoint, s3_bucket):
    check_s3_stores(config_of(make_store(s3_endpoint, name="lab", buckets=(s3_bucket,))))
    check_s3_stores(config_of())  # nothing configured, nothing to check

    port = _free_port()
    with pytest.raises(StorageError) as raised:
        check_s3_stores(config_of(make_store(f"http://127.0.0.1:{port}")))
    assert raised.value.reason.startswith(f"cannot reach S3 endpoint http://127.0.0.1:{port} (store default): "
                                          f"Could not connect to the endpoint URL")

    with pytest.raises(StorageError) as raised:
        check_s3_stores(config_of(make_store(s3_endpoint, name="lab", buckets=(s3_bucket, "missing-bucket"))))
    assert raised.value.reason == f"bucket missing-bucket of store lab at {s3_endpoint} does not exist"


def test_wrong_credentials_are_named_and_the_secret_never_shown(s3_endpoint, s3_bucket, s3_client):
    iam = boto3.client("iam", endpoint_url=s3_endpoint, region_name="us-east-1",
                       aws_access_key_id="admin", aws_secret_access_key="admin")
    iam.create_user(UserName=f"u-{s3_bucket}")
    key = iam.create_access_key(UserName=f"u-{s3_bucket}")["AccessKey"]
    put_verified(s3_client, s3_bucket, "in.txt", b"x")
    wrong = make_store(s3_endpoint, name="wrong-key")
    known = make_store(s3_endpoint, name="known-key", access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"])
    wrong_secret = make_store(s3_endpoint, name="wrong-secret", access_key_id=key["AccessKeyId"])
    with rejecting_credentials(s3_endpoint):
        with pytest.raises(StorageError) as raised:
            check_s3_stores(config_of(wrong))
        with pytest.raises(StorageError) as raised_secret:
            check_s3_stores(config_of(wrong_secret))
        # A known key without any policy: ListBuckets is denied, which proves the key is accepted.
        check_s3_stores(config_of(known))
        result = preflight_inputs([{"url": f"s3://{s3_bucket}/in.txt", "path": "/a"},
                                   {"url": f"s3://{s3_bucket}/d/", "path": "/d", "type": "DIRECTORY"}], config_of(wrong))
    assert raised.value.reason == (f"S3 endpoint {s3_endpoint} rejected the credentials of store wrong-key: "
                                   "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.")
    assert raised_secret.value.reason.startswith(f"S3 endpoint {s3_endpoint} rejected the credentials of store "
                                                 "wrong-secret: SignatureDoesNotMatch: ")
    assert result.problems[0].startswith(f"inputs[0] s3://{s3_bucket}/in.txt: access denied (HTTP 403)")
    assert result.problems[1] == (f"inputs[1] s3://{s3_bucket}/d/: S3 endpoint {s3_endpoint} rejected the credentials "
                                  "of store wrong-key: InvalidAccessKeyId: The AWS Access Key Id you provided does not "
                                  "exist in our records.")
    for text in (str(raised.value), str(raised_secret.value), *result.problems, repr(wrong), repr(storage_for(f"s3://{s3_bucket}/x", config_of(wrong)))):
        assert SECRET_ACCESS_KEY not in text


def test_input_staged_without_recorded_entries_is_checked_against_the_store(tmp_path, s3_client, s3_bucket, s3_store):
    put_verified(s3_client, s3_bucket, "in.txt", b"checked anyway")
    s3_client.put_object(Bucket=s3_bucket, Key="plain.txt", Body=b"no crc64nvme")
    config = config_of(s3_store)
    storage = storage_for(f"s3://{s3_bucket}/in.txt", config)
    assert storage.get(f"s3://{s3_bucket}/in.txt", tmp_path / "in.txt", False) == 14
    with pytest.raises(StorageError, match="has no CRC64NVME checksum"):
        storage.get(f"s3://{s3_bucket}/plain.txt", tmp_path / "plain.txt", False)
    assert listing(tmp_path) == ["in.txt"]


def test_put_of_an_unreadable_file(tmp_path, s3_bucket, s3_store):
    url = f"s3://{s3_bucket}/x"
    with pytest.raises(StorageError, match="cannot read .*/missing: No such file or directory"):
        storage_for(url, config_of(s3_store)).put(Path(tmp_path / "missing"), url)


class _SseCClient:
    """The real client, but HEAD says what S3 says of an SSE-C object read with its key (moto
    does not model SSE-C)."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def head_object(self, **params):
        return dict(self.client.head_object(**params), SSECustomerAlgorithm="AES256")


def test_sse_c_object_is_a_problem(s3_client, s3_bucket, s3_store, monkeypatch):
    put_verified(s3_client, s3_bucket, "ssec.bin", b"sealed")
    real = __import__("tes_cts.storage.s3", fromlist=["client_for"]).client_for
    monkeypatch.setattr("tes_cts.storage.s3.client_for", lambda store, connections=10: _SseCClient(real(store, connections)))
    result = preflight_inputs([{"url": f"s3://{s3_bucket}/ssec.bin", "path": "/a"}], config_of(s3_store))
    assert result.problems == [f"inputs[0] s3://{s3_bucket}/ssec.bin: is encrypted with a customer-provided key (SSE-C), "
                               "which this server does not hold; copy it to an object without SSE-C, or with SSE-S3 "
                               "(`aws s3 cp --sse AES256 ...`)"]
