"""`tes-cts storage cp|stat|add-checksum`, run as the real command against moto's S3 server
(tests/s3_server.py), and the transfer functions `tes-cts run` calls (tes_cts.client.transfer),
in-process, for what a subprocess cannot arrange.

The command reads its store as the aws CLI would: each test gives it AWS_ENDPOINT_URL and keys in
its environment, and no config file of the developer's."""

from __future__ import annotations

import fcntl
import inspect
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tes_cts.client import transfer
from tes_cts.client.transfer import download, store_from_environment, upload
from tes_cts.storage import StorageError
from tes_cts.storage.s3 import S3Storage, _FileSlice, client_for

from .s3_server import (  # noqa: F401
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    crc_of,
    put_verified,
    rejecting_credentials,
    s3_bucket,
    s3_client,
    s3_endpoint,
)

MIB = 1024 * 1024
PROJECT = Path(__file__).resolve().parent.parent


def aws_environment(endpoint: str, home: Path, **changes: str) -> dict[str, str]:
    """The process environment with the test endpoint and keys as the only AWS configuration."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "TES_"))}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
               AWS_REGION=REGION, AWS_CONFIG_FILE=str(home / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"), AWS_EC2_METADATA_DISABLED="true")
    env.update(changes)
    return env


@pytest.fixture
def cli(s3_endpoint, tmp_path):
    """Run `tes-cts storage ARGS...`; keyword arguments change its environment."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "tes_cts.cli", "storage", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, timeout=120,
                              env=aws_environment(s3_endpoint, tmp_path, **env))

    return run


@pytest.fixture
def aws_env(s3_endpoint, tmp_path, monkeypatch):
    """The same environment for in-process calls of tes_cts.client.transfer."""
    for name in [name for name in os.environ if name.startswith(("AWS_", "TES_"))]:
        monkeypatch.delenv(name)
    for name, value in aws_environment(s3_endpoint, tmp_path).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


def head(client, bucket: str, key: str) -> dict:
    return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")


def body_of(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def assert_one_line_error(result: subprocess.CompletedProcess, *said: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert SECRET_ACCESS_KEY not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tes-cts: "), result.stderr
    for words in said:
        assert words in lines[0]


# --- cp up ----------------------------------------------------------------------------------------


def test_cp_up_stores_the_crc64nvme_of_the_bytes(cli, tmp_path, s3_client, s3_bucket):
    data = os.urandom(MIB + 7)
    (tmp_path / "reads.fq").write_bytes(data)
    result = cli("cp", str(tmp_path / "reads.fq"), f"s3://{s3_bucket}/in/reads.fq")
    assert_succeeded(result)
    assert result.stdout == (f"uploaded {tmp_path / 'reads.fq'} to s3://{s3_bucket}/in/reads.fq: {len(data)} bytes, "
                             f"CRC64NVME {crc_of(data)}\n")
    assert head(s3_client, s3_bucket, "in/reads.fq")["ChecksumCRC64NVME"] == crc_of(data)
    assert body_of(s3_client, s3_bucket, "in/reads.fq") == data


def test_cp_up_to_a_prefix_keeps_the_file_name(cli, tmp_path, s3_client, s3_bucket):
    (tmp_path / "a.txt").write_bytes(b"alpha")
    assert_succeeded(cli("cp", str(tmp_path / "a.txt"), f"s3://{s3_bucket}/in/"))
    assert head(s3_client, s3_bucket, "in/a.txt")["ChecksumCRC64NVME"] == crc_of(b"alpha")


def test_cp_up_again_sends_nothing_but_a_changed_file_is_sent(cli, tmp_path, s3_client, s3_bucket):
    src, url = tmp_path / "a.txt", f"s3://{s3_bucket}/a.txt"
    src.write_bytes(b"first version")
    assert_succeeded(cli("cp", str(src), url))
    again = cli("cp", str(src), url)
    assert_succeeded(again)
    assert again.stdout == f"{url}: already there with the same CRC64NVME ({crc_of(b'first version')}): not sent\n"
    src.write_bytes(b"other version")  # the same size: only the CRC64NVME tells them apart
    changed = cli("cp", str(src), url)
    assert_succeeded(changed)
    assert changed.stdout.startswith(f"uploaded {src} to {url}: ")
    assert body_of(s3_client, s3_bucket, "a.txt") == b"other version"


def test_an_object_without_crc64nvme_is_sent_again(aws_env, tmp_path, s3_client, s3_bucket):
    s3_client.put_object(Bucket=s3_bucket, Key="a.txt", Body=b"same bytes")  # CRC32 only
    (tmp_path / "a.txt").write_bytes(b"same bytes")
    info, sent = upload(tmp_path / "a.txt", f"s3://{s3_bucket}/a.txt")
    assert sent and info.checksum == crc_of(b"same bytes")
    assert head(s3_client, s3_bucket, "a.txt")["ChecksumCRC64NVME"] == crc_of(b"same bytes")
    assert upload(tmp_path / "a.txt", f"s3://{s3_bucket}/a.txt")[1] is False


def test_a_multipart_upload_is_one_full_object_crc64nvme(cli, tmp_path, s3_client, s3_bucket):
    data = os.urandom(12 * MIB + 3)
    (tmp_path / "big.bin").write_bytes(data)
    result = cli("cp", str(tmp_path / "big.bin"), f"s3://{s3_bucket}/big.bin",
                 TES_MULTIPART_THRESHOLD_BYTES=str(5 * MIB))
    assert_succeeded(result)
    stored = head(s3_client, s3_bucket, "big.bin")
    assert stored["ChecksumCRC64NVME"] == crc_of(data)
    assert stored["ChecksumType"] == "FULL_OBJECT" and stored["ETag"].endswith('-2"')  # parts of 8 and 4 MiB
    assert body_of(s3_client, s3_bucket, "big.bin") == data
    back = cli("cp", f"s3://{s3_bucket}/big.bin", str(tmp_path / "back.bin"))
    assert_succeeded(back)
    assert (tmp_path / "back.bin").read_bytes() == data


def test_a_directory_goes_up_and_comes_back(cli, tmp_path, s3_client, s3_bucket):
    tree = tmp_path / "results"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    (tree / "sub" / "b.txt").write_bytes(b"beta")
    up = cli("cp", str(tree), f"s3://{s3_bucket}/run1")
    assert_succeeded(up)
    assert up.stdout.splitlines()[-1] == f"2 files from {tree}: 2 uploaded, 0 already there"
    keys = [item["Key"] for item in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["run1/a.txt", "run1/sub/b.txt"]
    assert head(s3_client, s3_bucket, "run1/sub/b.txt")["ChecksumCRC64NVME"] == crc_of(b"beta")
    again = cli("cp", str(tree), f"s3://{s3_bucket}/run1/")
    assert again.stdout.splitlines()[-1] == f"2 files from {tree}: 0 uploaded, 2 already there"
    down = cli("cp", f"s3://{s3_bucket}/run1/", str(tmp_path / "copy"))
    assert_succeeded(down)
    assert down.stdout == (f"downloaded 2 objects under s3://{s3_bucket}/run1/ to {tmp_path / 'copy'}: 9 bytes, "
                           "the CRC64NVME of each verified\n")
    assert (tmp_path / "copy" / "sub" / "b.txt").read_bytes() == b"beta"
    assert_one_line_error(cli("cp", f"s3://{s3_bucket}/run1/", str(tmp_path / "copy")),
                          "must be absent or an empty directory")


# --- cp down --------------------------------------------------------------------------------------


def test_cp_down_verifies_the_crc64nvme(cli, tmp_path, s3_client, s3_bucket):
    data = os.urandom(2 * MIB)
    put_verified(s3_client, s3_bucket, "in/data.bin", data)
    (tmp_path / "here").mkdir()
    result = cli("cp", f"s3://{s3_bucket}/in/data.bin", str(tmp_path / "here"))
    assert_succeeded(result)
    assert result.stdout == (f"downloaded s3://{s3_bucket}/in/data.bin to {tmp_path / 'here' / 'data.bin'}: "
                             f"{len(data)} bytes, CRC64NVME {crc_of(data)} verified\n")
    assert (tmp_path / "here" / "data.bin").read_bytes() == data


def test_cp_down_of_an_object_without_crc64nvme_is_refused(cli, tmp_path, s3_client, s3_bucket):
    s3_client.put_object(Bucket=s3_bucket, Key="plain.txt", Body=b"unverifiable", ChecksumAlgorithm="CRC32")
    result = cli("cp", f"s3://{s3_bucket}/plain.txt", str(tmp_path / "plain.txt"))
    assert_one_line_error(result, "has no CRC64NVME checksum", "its checksum is CRC32",
                          f"or give it one where it is: `tes-cts storage add-checksum s3://{s3_bucket}/plain.txt`")
    assert not (tmp_path / "plain.txt").exists()


def test_cp_between_two_urls_passes_through_here(cli, s3_client, s3_bucket):
    put_verified(s3_client, s3_bucket, "a/x.txt", b"ex")
    result = cli("cp", f"s3://{s3_bucket}/a/x.txt", f"s3://{s3_bucket}/b/")
    assert_succeeded(result)
    assert result.stdout == (f"copied s3://{s3_bucket}/a/x.txt to s3://{s3_bucket}/b/x.txt through this machine: "
                             f"2 bytes, CRC64NVME {crc_of(b'ex')} verified\n")
    assert head(s3_client, s3_bucket, "b/x.txt")["ChecksumCRC64NVME"] == crc_of(b"ex")


def test_a_download_not_matching_the_expected_crc64nvme_leaves_nothing(aws_env, tmp_path, s3_client, s3_bucket):
    put_verified(s3_client, s3_bucket, "out.txt", b"the real bytes")
    wrong = crc_of(b"other bytes")
    dest = tmp_path / "got" / "out.txt"
    with pytest.raises(StorageError) as raised:
        download(f"s3://{s3_bucket}/out.txt", dest, expected_crc64nvme=wrong)
    assert raised.value.reason == (f"the store holds CRC64NVME {crc_of(b'the real bytes')}, not the expected {wrong}: "
                                   "not downloaded")
    assert not dest.exists()
    info = download(f"s3://{s3_bucket}/out.txt", dest, expected_crc64nvme=crc_of(b"the real bytes"))
    assert dest.read_bytes() == b"the real bytes" and info.checksum == crc_of(b"the real bytes")


def test_received_bytes_not_matching_the_expected_crc64nvme_leave_nothing(aws_env, tmp_path, s3_client, s3_bucket):
    # No CRC64NVME stored: only the bytes received can be compared with the expected one.
    s3_client.put_object(Bucket=s3_bucket, Key="out.txt", Body=b"the real bytes")
    dest = tmp_path / "out.txt"
    wrong = crc_of(b"other bytes")
    with pytest.raises(StorageError) as raised:
        download(f"s3://{s3_bucket}/out.txt", dest, expected_crc64nvme=wrong)
    assert raised.value.reason.startswith(f"the bytes received are not the expected ones (recorded CRC64NVME {wrong}, "
                                          f"now {crc_of(b'the real bytes')})")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    download(f"s3://{s3_bucket}/out.txt", dest, expected_crc64nvme=crc_of(b"the real bytes"))
    assert dest.read_bytes() == b"the real bytes"
    with pytest.raises(StorageError, match="the expected CRC64NVME is not one"):
        download(f"s3://{s3_bucket}/out.txt", dest, expected_crc64nvme="not-base64")


# --- stat -----------------------------------------------------------------------------------------


def test_stat_shows_size_etag_checksums_and_encryption(cli, s3_client, s3_bucket):
    put_verified(s3_client, s3_bucket, "sealed.bam", b"x" * 3000, ServerSideEncryption="aws:kms")
    result = cli("stat", f"s3://{s3_bucket}/sealed.bam")
    assert_succeeded(result)
    etag = head(s3_client, s3_bucket, "sealed.bam")["ETag"]
    assert result.stdout.splitlines() == [
        f"URL            : s3://{s3_bucket}/sealed.bam",
        "Size           : 2.9 KiB (3000 bytes)",
        f"ETag           : {etag}",
        f"CRC64NVME      : {crc_of(b'x' * 3000)}",
        "Other checksums: none",
        "Encryption     : aws:kms",
    ]


def test_stat_of_an_object_with_crc32_only_says_how_to_add_one(cli, s3_client, s3_bucket):
    s3_client.put_object(Bucket=s3_bucket, Key="plain.txt", Body=b"plain", ChecksumAlgorithm="CRC32")
    lines = cli("stat", f"s3://{s3_bucket}/plain.txt").stdout.splitlines()
    assert lines[3] == f"CRC64NVME      : none (`tes-cts storage add-checksum s3://{s3_bucket}/plain.txt` gives it one)"
    assert lines[4:] == ["Other checksums: CRC32", "Encryption     : none, or SSE-S3 (no key needed to read)"]


def test_stat_of_a_prefix_gives_its_total(cli, s3_client, s3_bucket):
    put_verified(s3_client, s3_bucket, "d/a", b"12345")
    put_verified(s3_client, s3_bucket, "d/b", b"678")
    result = cli("stat", f"s3://{s3_bucket}/d/")
    assert result.stdout.splitlines() == [f"URL            : s3://{s3_bucket}/d/", "Type           : prefix",
                                          "Size           : 8 bytes in all"]


# --- add-checksum ---------------------------------------------------------------------------------


def test_add_checksum_gives_a_crc64nvme_and_keeps_bytes_and_metadata(cli, tmp_path, s3_client, s3_bucket):
    data = os.urandom(100_000)
    s3_client.put_object(Bucket=s3_bucket, Key="old.bam", Body=data, ChecksumAlgorithm="CRC32",
                         Metadata={"sample": "NA12878"}, ContentType="application/x-bam")
    url = f"s3://{s3_bucket}/old.bam"
    result = cli("add-checksum", url)
    assert_succeeded(result)
    assert result.stdout == f"{url}: CRC64NVME {crc_of(data)} added, the bytes unchanged\n"
    after = head(s3_client, s3_bucket, "old.bam")
    assert after["ChecksumCRC64NVME"] == crc_of(data)
    assert after["Metadata"] == {"sample": "NA12878"} and after["ContentType"] == "application/x-bam"
    assert body_of(s3_client, s3_bucket, "old.bam") == data
    again = cli("add-checksum", url)
    assert again.stdout == f"{url}: already has CRC64NVME {crc_of(data)}: nothing to do\n"
    assert_succeeded(cli("cp", url, str(tmp_path / "old.bam")))  # now verifiable, as every input must be
    assert (tmp_path / "old.bam").read_bytes() == data


def test_add_checksum_on_a_store_that_drops_it_says_so(aws_env, s3_client, s3_bucket):
    s3_client.put_object(Bucket=s3_bucket, Key="old.bam", Body=b"bytes")
    client = client_for(store_from_environment())

    def drop_checksum(request, **_):  # what Ceph does: the copy is made, its checksum not kept
        request.headers.pop("x-amz-checksum-algorithm", None)

    client.meta.events.register("before-send.s3.CopyObject", drop_checksum)
    try:
        with pytest.raises(StorageError) as raised:
            transfer.add_checksum(f"s3://{s3_bucket}/old.bam")
    finally:
        client.meta.events.unregister("before-send.s3.CopyObject", drop_checksum)
    assert raised.value.reason.startswith("the store did not store the checksum: ")
    assert "Ceph" in raised.value.reason


# --- errors ---------------------------------------------------------------------------------------


def test_a_missing_object_is_one_line(cli, tmp_path, s3_bucket):
    url = f"s3://{s3_bucket}/nothing/here"
    assert_one_line_error(cli("stat", url), f"tes-cts: {url}: no such object")
    assert_one_line_error(cli("cp", url, str(tmp_path / "x")), "no such object")
    assert_one_line_error(cli("add-checksum", url), "no such object")
    assert not (tmp_path / "x").exists()


def test_a_missing_bucket_is_one_line(cli, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"a")
    assert_one_line_error(cli("stat", "s3://no-such-bucket-here/k"), "no such bucket no-such-bucket-here")
    assert_one_line_error(cli("cp", str(tmp_path / "a.txt"), "s3://no-such-bucket-here/k"), "no such bucket")


def test_wrong_credentials_are_one_line_without_the_secret(cli, s3_endpoint, tmp_path, s3_client, s3_bucket):
    put_verified(s3_client, s3_bucket, "in.txt", b"x")
    (tmp_path / "a.txt").write_bytes(b"a")
    with rejecting_credentials(s3_endpoint):
        stat = cli("stat", f"s3://{s3_bucket}/in.txt")
        up = cli("cp", str(tmp_path / "a.txt"), f"s3://{s3_bucket}/d/")
    assert_one_line_error(stat, "access denied (HTTP 403)")
    assert_one_line_error(up, "access denied (HTTP 403)")


def test_bad_arguments_are_one_line(cli, tmp_path, s3_bucket):
    (tmp_path / "a.txt").write_bytes(b"a")
    assert_one_line_error(cli("cp", str(tmp_path / "a.txt"), str(tmp_path / "b.txt")),
                          "neither SRC nor DST is an s3:// URL")
    assert_one_line_error(cli("cp", str(tmp_path / "missing.txt"), f"s3://{s3_bucket}/k"), "No such file or directory")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("cp", str(tmp_path / "empty"), f"s3://{s3_bucket}/k"), "is an empty directory")
    assert_one_line_error(cli("stat", "https://example.org/x"), "is not an s3://bucket/key URL")
    assert_one_line_error(cli("stat", f"s3://{s3_bucket}/k", TES_MULTIPART_THRESHOLD_BYTES="lots"),
                          "TES_MULTIPART_THRESHOLD_BYTES: must be a positive whole number of bytes, not 'lots'")


# --- progress -------------------------------------------------------------------------------------


def test_no_progress_bar_when_stderr_is_not_a_terminal(cli, tmp_path, s3_bucket):
    (tmp_path / "big.bin").write_bytes(os.urandom(6 * MIB))
    assert_succeeded(cli("cp", str(tmp_path / "big.bin"), f"s3://{s3_bucket}/big.bin"))
    assert_succeeded(cli("cp", f"s3://{s3_bucket}/big.bin", str(tmp_path / "back.bin")))


def stderr_on_a_terminal(command: list[str], env: dict[str, str]) -> str:
    """What `command` writes to its stderr when that is a terminal (a pseudo-terminal of 80 columns:
    tqdm draws nothing on one of unknown width)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=terminal, cwd=PROJECT, env=env)
    os.close(terminal)
    written = b""
    try:
        while chunk := os.read(controller, 65536):
            written += chunk
    except OSError:  # EIO: the process closed its end
        pass
    finally:
        os.close(controller)
    assert process.wait(timeout=120) == 0, written
    return written.decode(errors="replace")


def test_a_progress_bar_on_a_terminal_unless_quiet(s3_endpoint, tmp_path, s3_bucket):
    (tmp_path / "big.bin").write_bytes(os.urandom(6 * MIB))
    command = [sys.executable, "-m", "tes_cts.cli", "storage", "cp", str(tmp_path / "big.bin"),
               f"s3://{s3_bucket}/big.bin"]
    env = aws_environment(s3_endpoint, tmp_path)
    assert "6.00M" in stderr_on_a_terminal(command, env)  # the bar's total
    (tmp_path / "big.bin").write_bytes(os.urandom(6 * MIB))
    assert stderr_on_a_terminal([*command, "--quiet"], env) == ""


def test_the_progress_callback_counts_every_byte_once(aws_env, tmp_path, s3_bucket, monkeypatch):
    monkeypatch.setenv("TES_MULTIPART_THRESHOLD_BYTES", str(5 * MIB))
    storage = S3Storage(store_from_environment())
    for size in (3 * MIB, 21 * MIB):  # one PUT; three parts sent in parallel
        (tmp_path / "f").write_bytes(os.urandom(size))
        sent, received = [], []
        storage.put(tmp_path / "f", f"s3://{s3_bucket}/f", sent.append)
        storage.get(f"s3://{s3_bucket}/f", tmp_path / "back", False, None, received.append)
        assert sum(sent) == size and sum(received) == size and len(received) > 1


def test_a_rewound_request_body_takes_its_progress_back(tmp_path):
    (tmp_path / "f").write_bytes(b"0123456789")
    moved = []
    with open(tmp_path / "f", "rb") as handle:
        body = _FileSlice(handle.fileno(), 2, 6, moved.append)
        assert body.read(4) == b"2345"
        body.seek(0)  # botocore retrying the request
        assert body.read() == b"234567"
    assert moved == [4, -4, 6]


# --- the interface `tes-cts run` codes against ------------------------------------------------------


def test_the_transfer_interface():
    assert str(inspect.signature(transfer.upload)) == \
        "(path: 'Path', url: 'str', quiet: 'bool' = False) -> 'tuple[ObjectInfo, bool]'"
    assert str(inspect.signature(transfer.download)) == \
        "(url: 'str', dest: 'Path', expected_crc64nvme: 'str | None' = None, quiet: 'bool' = False) -> 'ObjectInfo'"
    assert str(inspect.signature(transfer.stat)) == "(url: 'str') -> 'ObjectInfo'"
    assert str(inspect.signature(transfer.add_checksum)) == "(url: 'str') -> 'ObjectInfo'"
    assert transfer.MULTIPART_THRESHOLD_BYTES == 64 * MIB


def test_the_store_is_read_as_the_aws_cli_reads_it(tmp_path, monkeypatch):
    for name in [name for name in os.environ if name.startswith(("AWS_", "TES_"))]:
        monkeypatch.delenv(name)
    (tmp_path / "config").write_text("[profile lab]\nregion = eu-west-3\nendpoint_url = https://s3.lab.example\n")
    (tmp_path / "credentials").write_text("[lab]\naws_access_key_id = LABKEY\naws_secret_access_key = labsecret\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_PROFILE", "lab")
    store = store_from_environment()
    assert (store.name, store.endpoint_url, store.region, store.access_key_id, store.secret_access_key) == \
        ("lab", "https://s3.lab.example", "eu-west-3", "LABKEY", "labsecret")
    assert store.multipart_threshold_bytes == 64 * MIB
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://global.example")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("TES_MULTIPART_THRESHOLD_BYTES", "1000")
    store = store_from_environment()
    assert (store.endpoint_url, store.region, store.multipart_threshold_bytes) == \
        ("http://global.example", "us-west-2", 1000)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only.example")
    assert store_from_environment().endpoint_url == "http://s3-only.example"


def test_no_credentials_is_anonymous_and_a_missing_profile_one_line(tmp_path, monkeypatch):
    for name in [name for name in os.environ if name.startswith(("AWS_", "TES_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = store_from_environment()
    assert (store.access_key_id, store.region, store.endpoint_url) == \
        ("", "us-east-1", "https://s3.us-east-1.amazonaws.com")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    assert store_from_environment().max_attempts == 2
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIATEMPORARY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "temporary-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-7c1e")
    temporary = store_from_environment()  # SSO or an assumed role: a key pair with its session token
    assert (temporary.access_key_id, temporary.session_token) == ("ASIATEMPORARY", "session-token-7c1e")
    assert "session-token-7c1e" not in repr(temporary) and "temporary-secret" not in repr(temporary)
    monkeypatch.setenv("AWS_PROFILE", "absent")
    with pytest.raises(StorageError, match="absent"):
        store_from_environment()


def test_a_session_token_is_never_written_to_a_job_file():
    from tes_cts.storage.config import S3StoreConfig, StorageConfig, public_stores

    store = S3StoreConfig(name="default", endpoint_url="http://127.0.0.1:1", region=REGION, access_key_id="ASIA",
                          secret_access_key="secret", session_token="session-token-7c1e", multipart_threshold_bytes=MIB)
    [public] = public_stores(StorageConfig(s3_stores=(store,)))
    assert "session_token" not in public and "secret_access_key" not in public
