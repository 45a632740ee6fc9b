"""Staging inputs into a job's mounts and outputs out of them, with real files and HTTP (S3:
test_s3.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tes_cts.jobfiles import Job
from tes_cts.storage import StorageConfig
from tes_cts.storage.preflight import preflight_inputs
from tes_cts.worker.paths import FileMapper
from tes_cts.worker.staging import StagingError, stage_inputs, stage_outputs

from .s3_server import crc_of
from .test_storage import LOOPBACK, http_server, listing, outside, root  # noqa: F401 (fixtures)


@pytest.fixture
def make_job(tmp_path, root):
    # Glob characters in the run directory must not count when matching wildcard outputs.
    run_dir = tmp_path / "run[1]"
    run_dir.mkdir()

    def make(inputs=(), outputs=(), file_roots=None) -> tuple[Job, FileMapper]:
        task = {"executors": [{"image": "busybox", "command": ["true"]}], "inputs": list(inputs), "outputs": list(outputs)}
        roots = (str(root),) if file_roots is None else tuple(file_roots)
        return (Job(task_id="t1", attempt=1, task=task, run_dir=str(run_dir), file_roots=roots, http_allow=LOOPBACK),
                FileMapper(run_dir))

    return make


def config_of(job: Job) -> StorageConfig:
    return StorageConfig(file_roots=job.file_roots, http_allow=job.http_allow)


def stage_in(job: Job, mapper: FileMapper, verified=None) -> list[str]:
    return stage_inputs(job, mapper, config_of(job), verified or {})


def stage_out(job: Job, mapper: FileMapper):
    return stage_outputs(job, mapper, config_of(job))


def file_input(path, url, kind="FILE"):
    return {"path": path, "url": url, "type": kind}


def output(path, url, kind="FILE", **more):
    return {"path": path, "url": url, "type": kind, **more}


def produce(mapper: FileMapper, files: dict[str, str]) -> None:
    """What an executor would have written: container path -> text."""
    for path, text in files.items():
        host = mapper.host_path(path)
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_text(text)


def temporaries(directory: Path) -> list[str]:
    return [name for name in listing(directory) if name.endswith(".tmp")]


# --- inputs ----------------------------------------------------------------------------------


def test_content_inputs(make_job):
    job, mapper = make_job(inputs=[
        {"path": "/data/hello.txt", "content": "hello\n", "type": "FILE"},
        {"path": "/data/empty.txt", "content": "", "type": "FILE"},
        {"path": "/deep/er/ünïcode.txt", "content": "héllo ✓ 世界", "type": "FILE"},
    ])
    logs = stage_in(job, mapper)
    assert mapper.host_path("/data/hello.txt").read_bytes() == b"hello\n"
    assert mapper.host_path("/data/empty.txt").read_bytes() == b""
    assert mapper.host_path("/deep/er/ünïcode.txt").read_bytes() == "héllo ✓ 世界".encode("utf-8")
    assert sorted(logs) == sorted([
        "input /data/hello.txt: 6 bytes from content",
        "input /data/empty.txt: 0 bytes from content",
        "input /deep/er/ünïcode.txt: 17 bytes from content",
    ])


def test_file_inputs_file_and_directory(make_job, root):
    (root / "in.txt").write_text("input file")
    (root / "ref" / "sub").mkdir(parents=True)
    (root / "ref" / "a.txt").write_text("a")
    (root / "ref" / "sub" / "b.txt").write_text("bb")
    job, mapper = make_job(inputs=[
        file_input("/data/in.txt", f"file://{root}/in.txt"),
        file_input("/ref", f"{root}/ref", "DIRECTORY"),
    ])
    logs = stage_in(job, mapper)
    assert mapper.host_path("/data/in.txt").read_text() == "input file"
    assert listing(mapper.host_path("/ref")) == ["a.txt", "sub", "sub/b.txt"]
    assert mapper.host_path("/ref/sub/b.txt").read_text() == "bb"
    assert logs == [f"input /ref ({root}/ref): directory, 3 bytes", f"input /data/in.txt (file://{root}/in.txt): 10 bytes"]


def test_an_input_inside_a_directory_input_wins(make_job, root):
    (root / "ref").mkdir()
    (root / "ref" / "a.txt").write_text("from the directory")
    job, mapper = make_job(inputs=[
        {"path": "/ref/a.txt", "content": "from content", "type": "FILE"},
        file_input("/ref", f"{root}/ref", "DIRECTORY"),
    ])
    stage_in(job, mapper)
    assert mapper.host_path("/ref/a.txt").read_text() == "from content"


def test_file_input_outside_the_roots_is_refused(make_job, root, outside):
    (root / "link.txt").symlink_to(outside / "secret.txt")
    for url in (f"file://{outside}/secret.txt", f"file://{root}/link.txt", f"{root}/../outside/secret.txt"):
        job, mapper = make_job(inputs=[file_input("/data/in.txt", url)])
        with pytest.raises(StagingError, match="storage.file_roots") as raised:
            stage_in(job, mapper)
        assert str(raised.value).startswith(f"input /data/in.txt ({url}): ")
        assert not mapper.host_path("/data/in.txt").exists()


def test_missing_file_input(make_job, root):
    job, mapper = make_job(inputs=[file_input("/data/in.txt", f"file://{root}/nope")])
    with pytest.raises(StagingError) as raised:
        stage_in(job, mapper)
    assert str(raised.value) == f"input /data/in.txt (file://{root}/nope): no such file or directory"


def test_file_input_changed_between_preflight_and_staging(make_job, root):
    (root / "in.txt").write_text("as submitted")
    (root / "ref").mkdir()
    (root / "ref" / "a.txt").write_text("a")
    job, mapper = make_job(inputs=[file_input("/data/in.txt", f"file://{root}/in.txt"),
                                   file_input("/ref", f"{root}/ref", "DIRECTORY")])
    verified = preflight_inputs(job.task["inputs"], config_of(job)).verified
    assert stage_in(job, mapper, verified) == [
        f"input /ref ({root}/ref): directory, 1 bytes, CRC64NVME verified",
        f"input /data/in.txt (file://{root}/in.txt): 12 bytes, CRC64NVME verified",
    ]
    (root / "in.txt").write_text("edited later")  # same size, other bytes
    shutil.rmtree(mapper.root)
    with pytest.raises(StagingError) as raised:
        stage_in(job, mapper, verified)
    assert str(raised.value) == (f"input /data/in.txt (file://{root}/in.txt): changed since submission "
                                 f"(recorded CRC64NVME {crc_of(b'as submitted')}, now {crc_of(b'edited later')})")
    assert not mapper.host_path("/data/in.txt").exists()
    assert temporaries(mapper.root) == []


def test_http_input(make_job, http_server):
    base, served = http_server
    (served / "remote.txt").write_bytes(b"over http")
    job, mapper = make_job(inputs=[file_input("/data/remote.txt", f"{base}/remote.txt")])
    assert stage_in(job, mapper) == [f"input /data/remote.txt ({base}/remote.txt): 9 bytes"]
    assert mapper.host_path("/data/remote.txt").read_bytes() == b"over http"


def test_http_input_404(make_job, http_server):
    base, _ = http_server
    job, mapper = make_job(inputs=[file_input("/data/in.txt", f"{base}/missing.txt")])
    with pytest.raises(StagingError, match=f"input /data/in.txt \\({base}/missing.txt\\): .*HTTP 404"):
        stage_in(job, mapper)
    assert listing(mapper.host_path("/data")) == []


def test_http_input_truncated_leaves_no_partial_file(make_job, http_server):
    base, _ = http_server
    job, mapper = make_job(inputs=[file_input("/data/in.bin", f"{base}/truncated")])
    with pytest.raises(StagingError, match="broke off before the whole file arrived|ended after"):
        stage_in(job, mapper)
    assert listing(mapper.host_path("/data")) == []


def test_s3_input_without_a_store(make_job):
    job, mapper = make_job(inputs=[file_input("/data/in.txt", "s3://bucket/key.txt")])
    with pytest.raises(StagingError) as raised:
        stage_in(job, mapper)
    assert str(raised.value) == ("input /data/in.txt (s3://bucket/key.txt): no S3 store is configured (settings "
                                 "s3.endpoint_url, s3.region, s3.access_key_id, s3.secret_access_key; or named stores "
                                 "s3.stores.NAME.*)")


def test_inputs_stop_at_the_first_failure(make_job, root):
    job, mapper = make_job(inputs=[
        {"path": "/a/first.txt", "content": "1", "type": "FILE"},
        file_input("/b/second.txt", f"{root}/missing"),
        {"path": "/c/third.txt", "content": "3", "type": "FILE"},
    ])
    with pytest.raises(StagingError, match="/b/second.txt"):
        stage_in(job, mapper)
    assert not mapper.host_path("/c/third.txt").exists()


# --- outputs ---------------------------------------------------------------------------------


def test_file_output(make_job, root):
    job, mapper = make_job(outputs=[output("/data/out.txt", f"file://{root}/results/out%20put.txt")])
    produce(mapper, {"/data/out.txt": "result!"})
    staged = stage_out(job, mapper)
    assert staged.outputs == [{"url": f"file://{root}/results/out%20put.txt", "path": "/data/out.txt", "size_bytes": 7,
                               "crc64nvme": crc_of(b"result!")}]
    assert (root / "results" / "out put.txt").read_text() == "result!"
    assert staged.missing == []
    assert staged.system_logs == [f"output /data/out.txt: 1 files, 7 bytes to file://{root}/results/out%20put.txt"]


def test_directory_output_is_flattened(make_job, root):
    job, mapper = make_job(outputs=[output("/data/outdir", f"{root}/dest", "DIRECTORY")])
    produce(mapper, {"/data/outdir/a.txt": "a", "/data/outdir/sub/b.txt": "bb", "/data/outdir/sub/deeper/c.txt": "ccc"})
    mapper.host_path("/data/outdir/empty").mkdir()
    staged = stage_out(job, mapper)
    assert staged.outputs == [
        {"url": f"{root}/dest/a.txt", "path": "/data/outdir/a.txt", "size_bytes": 1, "crc64nvme": crc_of(b"a")},
        {"url": f"{root}/dest/sub/b.txt", "path": "/data/outdir/sub/b.txt", "size_bytes": 2, "crc64nvme": crc_of(b"bb")},
        {"url": f"{root}/dest/sub/deeper/c.txt", "path": "/data/outdir/sub/deeper/c.txt", "size_bytes": 3, "crc64nvme": crc_of(b"ccc")},
    ]
    assert (root / "dest" / "sub" / "deeper" / "c.txt").read_text() == "ccc"
    assert staged.missing == []


def test_wildcard_output(make_job, root):
    job, mapper = make_job(outputs=[output("/data/*.txt", f"file://{root}/dest", path_prefix="/data")])
    produce(mapper, {"/data/one.txt": "1", "/data/two.txt": "22", "/data/skip.log": "no", "/data/dir.txt/inner": "333"})
    staged = stage_out(job, mapper)
    assert staged.outputs == [
        {"url": f"file://{root}/dest/dir.txt/inner", "path": "/data/dir.txt/inner", "size_bytes": 3, "crc64nvme": crc_of(b"333")},
        {"url": f"file://{root}/dest/one.txt", "path": "/data/one.txt", "size_bytes": 1, "crc64nvme": crc_of(b"1")},
        {"url": f"file://{root}/dest/two.txt", "path": "/data/two.txt", "size_bytes": 2, "crc64nvme": crc_of(b"22")},
    ]
    assert listing(root / "dest") == ["dir.txt", "dir.txt/inner", "one.txt", "two.txt"]
    assert (root / "dest" / "two.txt").read_text() == "22"
    assert staged.system_logs == [f"output /data/*.txt (3 matches): 3 files, 6 bytes to file://{root}/dest"]


def test_wildcard_with_a_deeper_match_and_a_shorter_prefix(make_job, root):
    job, mapper = make_job(outputs=[output("/work/run/sample?/[ab].csv", f"{root}/dest", path_prefix="/work")])
    produce(mapper, {"/work/run/sample1/a.csv": "a1", "/work/run/sample2/b.csv": "b2", "/work/run/sample2/c.csv": "c2"})
    staged = stage_out(job, mapper)
    assert [o["url"] for o in staged.outputs] == [f"{root}/dest/run/sample1/a.csv", f"{root}/dest/run/sample2/b.csv"]
    assert listing(root / "dest") == ["run", "run/sample1", "run/sample1/a.csv", "run/sample2", "run/sample2/b.csv"]


def test_wildcard_matching_nothing_is_not_an_error(make_job, root):
    job, mapper = make_job(outputs=[output("/data/*.bam", f"{root}/dest", path_prefix="/data")])
    produce(mapper, {"/data/other.txt": "x"})
    staged = stage_out(job, mapper)
    assert staged.outputs == [] and staged.missing == []
    assert staged.system_logs == ["output /data/*.bam: the pattern matched nothing"]


def test_missing_output_is_reported_and_the_others_still_staged(make_job, root):
    job, mapper = make_job(outputs=[
        output("/data/absent.txt", f"{root}/absent.txt"),
        output("/data/absent_dir", f"{root}/absent_dir", "DIRECTORY"),
        output("/data/present.txt", f"{root}/present.txt"),
    ])
    produce(mapper, {"/data/present.txt": "here"})
    staged = stage_out(job, mapper)
    assert staged.missing == ["output /data/absent.txt: not produced by the task", "output /data/absent_dir: not produced by the task"]
    assert [o["path"] for o in staged.outputs] == ["/data/present.txt"]
    assert listing(root) == ["present.txt"]


def test_output_of_the_wrong_type_is_reported(make_job, root):
    job, mapper = make_job(outputs=[output("/data/dir", f"{root}/a"), output("/data/file", f"{root}/b", "DIRECTORY")])
    produce(mapper, {"/data/dir/x": "x", "/data/file": "f"})
    staged = stage_out(job, mapper)
    assert staged.missing == [
        "output /data/dir: is a directory; declare the output's type DIRECTORY",
        "output /data/file: is a file, but the output's type is DIRECTORY",
    ]
    assert listing(root) == []


def test_symlink_escapes_are_refused(make_job, root, outside):
    job, mapper = make_job(outputs=[
        output("/data/out.txt", f"{root}/file.txt"),
        output("/data/outdir", f"{root}/dir", "DIRECTORY"),
        output("/data/*.log", f"{root}/logs", path_prefix="/data"),
    ])
    produce(mapper, {"/data/outdir/fine.txt": "fine", "/data/ok.log": "ok"})
    secret = outside / "secret.txt"
    mapper.host_path("/data").joinpath("out.txt").symlink_to(secret)
    mapper.host_path("/data/outdir").joinpath("shadow").symlink_to(secret)
    mapper.host_path("/data/outdir").joinpath("etc").symlink_to(outside)
    mapper.host_path("/data").joinpath("x.log").symlink_to(secret)
    staged = stage_out(job, mapper)
    assert [o["path"] for o in staged.outputs] == ["/data/outdir/fine.txt", "/data/ok.log"]
    assert len(staged.missing) == 4
    assert staged.missing[0].startswith("output /data/out.txt: refused: ")
    for path in ("/data/outdir/shadow", "/data/outdir/etc", "/data/x.log"):
        assert f"output {path}: refused: it leads outside the task's directory through a symbolic link" in staged.missing
    assert not any(str(outside) in m or str(secret) in m for m in staged.missing)  # nothing of the host
    assert "secret" not in "".join(p.read_text() for p in root.rglob("*") if p.is_file())


def test_symlink_inside_the_mounts_is_followed_once(make_job, root):
    job, mapper = make_job(outputs=[output("/data/outdir", f"{root}/dir", "DIRECTORY")])
    produce(mapper, {"/data/outdir/a.txt": "a"})
    mapper.host_path("/data/outdir").joinpath("loop").symlink_to(mapper.host_path("/data/outdir"))
    staged = stage_out(job, mapper)
    assert [o["path"] for o in staged.outputs] == ["/data/outdir/a.txt"]


def test_upload_to_a_location_without_a_root_fails(make_job, tmp_path, outside):
    job, mapper = make_job(outputs=[output("/data/out.txt", f"file://{outside}/out.txt")])
    produce(mapper, {"/data/out.txt": "x"})
    with pytest.raises(StagingError, match="storage.file_roots") as raised:
        stage_out(job, mapper)
    assert str(raised.value).startswith(f"output /data/out.txt (file://{outside}/out.txt): ")
    assert listing(outside) == ["secret.txt"]

    job, mapper = make_job(outputs=[output("/data/out.txt", f"file://{tmp_path}/out.txt")], file_roots=())
    with pytest.raises(StagingError, match="disabled on this server.*storage.file_roots"):
        stage_out(job, mapper)


def test_output_upload_failure_stops_staging_and_leaves_no_temporary(make_job, root, monkeypatch):
    job, mapper = make_job(outputs=[output("/data/a.txt", f"{root}/a.txt"), output("/data/b.txt", f"{root}/b.txt")])
    produce(mapper, {"/data/a.txt": "a" * 5000, "/data/b.txt": "b"})

    def full_disk(source, target):
        target.write(source.read(100))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tes_cts.storage.file.copy_stream", full_disk)
    with pytest.raises(StagingError, match="output /data/a.txt .*No space left on device"):
        stage_out(job, mapper)
    assert listing(root) == []
    assert temporaries(mapper.root) == []


def test_http_and_s3_outputs_fail_with_a_reason(make_job):
    job, mapper = make_job(outputs=[output("/data/out.txt", "https://example.org/out.txt")])
    produce(mapper, {"/data/out.txt": "x"})
    with pytest.raises(StagingError, match="accepted for inputs only"):
        stage_out(job, mapper)
    job, mapper = make_job(outputs=[output("/data/out.txt", "s3://bucket/out.txt")])
    with pytest.raises(StagingError, match="no S3 store is configured"):
        stage_out(job, mapper)


def test_no_temporaries_after_input_failures(make_job, root, http_server):
    base, served = http_server
    (root / "tree").mkdir()
    (root / "tree" / "ok.txt").write_text("ok")
    (root / "tree" / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(root / "tree" / "fifo")
    for item in (file_input("/in/tree", f"{root}/tree", "DIRECTORY"), file_input("/in/t.bin", f"{base}/truncated")):
        job, mapper = make_job(inputs=[item])
        with pytest.raises(StagingError):
            stage_in(job, mapper)
        assert listing(mapper.host_path("/in")) == []



def test_unreadable_directory_in_an_output_is_reported(make_job, root, monkeypatch):
    job, mapper = make_job(outputs=[output("/data/outdir", f"{root}/dir", "DIRECTORY")])
    produce(mapper, {"/data/outdir/a.txt": "a", "/data/outdir/locked/b.txt": "b"})
    locked = str(mapper.host_path("/data/outdir/locked"))
    real_scandir = os.scandir

    def scandir(path="."):  # what chmod 0 does, except to root
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    staged = stage_out(job, mapper)
    assert [o["path"] for o in staged.outputs] == ["/data/outdir/a.txt"]
    assert staged.missing == ["output /data/outdir/locked: cannot be read: Permission denied"]
