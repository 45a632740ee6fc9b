"""Storage schemes against real files and a real local HTTP server; CRC64NVME; the choice of an
S3 store by bucket; preflight of local and http inputs. S3 itself: test_s3.py."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tes_cts.storage import ChangedSinceSubmission, ObjectInfo, StorageConfig, StorageError, storage_for
from tes_cts.storage.checksums import Crc64Nvme, crc64nvme_of_file, decode, encode
from tes_cts.storage.config import S3StoreConfig
from tes_cts.storage.file import FileStorage
from tes_cts.storage.http import HttpStorage
from tes_cts.storage.http_addresses import AddressPolicy
from tes_cts.storage.preflight import preflight_inputs
from tes_cts.storage.s3_stores import resolve_store
from tes_cts.urls import without_password

from .s3_server import crc_of

# The tests' HTTP servers listen on loopback, which user URLs may reach only when allowed.
LOOPBACK = ("127.0.0.0/8",)
TRUNCATED_BODY = b"x" * 1000   # sent, then the connection drops; Content-Length promises more
TRUNCATED_LENGTH = 100_000


class _Handler(SimpleHTTPRequestHandler):
    """Serves a directory, plus /truncated (drops the connection midway) and /slow (stalls)."""

    def do_GET(self):
        if self.path == "/truncated":
            self._partial(TRUNCATED_BODY, TRUNCATED_LENGTH, stall=0)
        elif self.path == "/slow":
            self._partial(b"ab", 10, stall=2)
        else:
            super().do_GET()

    def _partial(self, body: bytes, length: int, stall: float):
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        time.sleep(stall)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """(base URL, served directory) of an HTTP server on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(served)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    return outside


def listing(directory: Path) -> list[str]:
    """Every entry under `directory`, hidden ones included: temporaries would show here."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


# --- file ------------------------------------------------------------------------------------


def test_file_get_copies_a_file_and_keeps_it_executable(root, tmp_path):
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    dest = tmp_path / "dest"
    dest.mkdir()
    written = FileStorage([str(root)]).get(f"file://{root}/run.sh", dest / "run.sh", is_dir=False)
    assert written == 18
    assert (dest / "run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.access(dest / "run.sh", os.X_OK)
    assert listing(dest) == ["run.sh"]


def test_file_get_accepts_bare_paths_and_percent_decodes_file_urls(root, tmp_path):
    (root / "a b é.txt").write_text("spaced")
    storage = FileStorage([str(root)])
    assert storage.get(f"file://{root}/a%20b%20%C3%A9.txt", tmp_path / "one", is_dir=False) == 6
    assert storage.get(f"{root}/a b é.txt", tmp_path / "two", is_dir=False) == 6
    assert (tmp_path / "one").read_text() == (tmp_path / "two").read_text() == "spaced"


def test_file_get_copies_a_directory_tree(root, tmp_path):
    tree = root / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "top.txt").write_text("top")
    (tree / "sub" / "mid.txt").write_text("middle")
    (tree / "sub" / "deeper" / "ünï.txt").write_text("deep")
    (tree / "sub" / "link.txt").symlink_to(tree / "top.txt")  # inside the roots: copied as a file
    dest = tmp_path / "dest"
    written = FileStorage([str(root)]).get(f"file://{tree}", dest, is_dir=True)
    assert written == 3 + 6 + 4 + 3
    assert listing(dest) == ["empty", "sub", "sub/deeper", "sub/deeper/ünï.txt", "sub/link.txt", "sub/mid.txt", "top.txt"]
    assert (dest / "sub" / "deeper" / "ünï.txt").read_text() == "deep"
    assert not (dest / "sub" / "link.txt").is_symlink()
    assert listing(tmp_path / "root") == listing(root)  # nothing written beside the source


def test_file_get_type_mismatch_and_missing(root, tmp_path):
    (root / "file.txt").write_text("x")
    (root / "dir").mkdir()
    storage = FileStorage([str(root)])
    with pytest.raises(StorageError, match="is a file, not a directory"):
        storage.get(f"{root}/file.txt", tmp_path / "d1", is_dir=True)
    with pytest.raises(StorageError, match="is a directory, not a file"):
        storage.get(f"{root}/dir", tmp_path / "d2", is_dir=False)
    with pytest.raises(StorageError, match="no such file or directory") as raised:
        storage.get(f"file://{root}/nope", tmp_path / "d3", is_dir=False)
    assert raised.value.url == f"file://{root}/nope"
    assert str(raised.value).startswith(f"file://{root}/nope: ")
    assert not any(p.name.startswith("d") for p in tmp_path.iterdir())


def test_file_outside_the_roots_is_refused(root, outside, tmp_path):
    storage = FileStorage([str(root)])
    with pytest.raises(StorageError, match="not under an allowed file root.*storage.file_roots"):
        storage.get(f"file://{outside}/secret.txt", tmp_path / "x", is_dir=False)
    with pytest.raises(StorageError, match="storage.file_roots"):
        storage.stat(f"{outside}/secret.txt")
    with pytest.raises(StorageError, match="storage.file_roots"):  # '..' is resolved before the check
        storage.get(f"{root}/../outside/secret.txt", tmp_path / "x", is_dir=False)
    assert not (tmp_path / "x").exists()


def test_file_symlink_out_of_a_root_is_refused(root, outside, tmp_path):
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linkdir").symlink_to(outside)
    tree = root / "tree"
    tree.mkdir()
    (tree / "fine.txt").write_text("fine")
    (tree / "escape").symlink_to(outside / "secret.txt")
    storage = FileStorage([str(root)])
    with pytest.raises(StorageError, match="leads through a symbolic link to a file that .*storage.file_roots") as refused:
        storage.get(f"file://{root}/link.txt", tmp_path / "a", is_dir=False)
    assert str(outside) not in str(refused.value)  # where the link leads is the host's business
    with pytest.raises(StorageError, match="storage.file_roots"):
        storage.get(f"file://{root}/linkdir", tmp_path / "b", is_dir=True)
    with pytest.raises(StorageError, match="escape leads through a symbolic link to a file that .*storage.file_roots"):
        storage.get(f"file://{tree}", tmp_path / "c", is_dir=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "root"]


def test_file_symlink_loop_is_refused(root, tmp_path):
    tree = root / "tree"
    tree.mkdir()
    (tree / "again").symlink_to(tree)
    with pytest.raises(StorageError, match="again is a symlink loop"):
        FileStorage([str(root)]).get(str(tree), tmp_path / "dest", is_dir=True)
    assert not (tmp_path / "dest").exists()


def test_file_urls_are_disabled_without_roots(root, tmp_path):
    (root / "a.txt").write_text("a")
    with pytest.raises(StorageError, match="disabled on this server.*storage.file_roots"):
        FileStorage([]).get(f"{root}/a.txt", tmp_path / "a", is_dir=False)
    with pytest.raises(StorageError, match="disabled on this server.*storage.file_roots"):
        FileStorage([]).put(root / "a.txt", f"{root}/b.txt")


def test_file_stat(root):
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "one").write_text("1")
    (root / "dir" / "sub" / "two").write_text("22")
    storage = FileStorage([str(root)])
    assert storage.stat(f"file://{root}/dir/one") == ObjectInfo(1, False, crc_of(b"1"))  # computed: a file stores none
    assert storage.stat(f"file://{root}/dir") == ObjectInfo(3, True, None)
    with pytest.raises(StorageError, match="no such file"):
        storage.stat(f"file://{root}/none")


def test_file_put_creates_parents_and_leaves_no_temporary(root, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 10)
    storage = FileStorage([str(root)])
    url = f"file://{root}/new/deep%20er/out.bin"
    assert storage.put(src, url) == ObjectInfo(2560, False, crc_of(src.read_bytes()))
    assert (root / "new" / "deep er" / "out.bin").read_bytes() == src.read_bytes()
    assert storage.put(src, url).size == 2560  # replaces
    assert listing(root) == ["new", "new/deep er", "new/deep er/out.bin"]


def test_file_put_outside_roots_or_through_a_symlink_is_refused(root, outside, tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("data")
    (root / "out").symlink_to(outside)
    storage = FileStorage([str(root)])
    with pytest.raises(StorageError, match="storage.file_roots"):
        storage.put(src, f"file://{outside}/new.txt")
    with pytest.raises(StorageError, match="leads through a symbolic link to a file that .*storage.file_roots"):
        storage.put(src, f"file://{root}/out/new.txt")
    assert listing(outside) == ["secret.txt"]


def test_file_put_failure_midway_leaves_nothing(root, tmp_path, monkeypatch):
    src = tmp_path / "src.txt"
    src.write_text("data" * 1000)

    def full_disk(source, target):
        target.write(source.read(100))
        target.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tes_cts.storage.file.copy_stream", full_disk)
    (root / "dir").mkdir()
    with pytest.raises(StorageError, match="No space left on device"):
        FileStorage([str(root)]).put(src, f"{root}/dir/out.txt")
    assert listing(root) == ["dir"]


def test_file_put_onto_a_directory_is_refused(root, tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("x")
    (root / "dir").mkdir()
    with pytest.raises(StorageError, match="is a directory"):
        FileStorage([str(root)]).put(src, f"{root}/dir")


def test_file_join():
    storage = FileStorage(["/r"])
    assert storage.join("file:///r/out", "a b/c%.txt") == "file:///r/out/a%20b/c%25.txt"
    assert storage.join("file:///r/out/", "x") == "file:///r/out/x"
    assert storage.join("/r/out", "a b/c.txt") == "/r/out/a b/c.txt"
    with pytest.raises(StorageError, match="not a plain relative path"):
        storage.join("/r/out", "../escape")


# --- http ------------------------------------------------------------------------------------


def test_http_get_and_stat(http_server, tmp_path):
    base, served = http_server
    (served / "data.bin").write_bytes(os.urandom(3_000_000))  # several chunks
    storage = HttpStorage(LOOPBACK)
    assert storage.stat(f"{base}/data.bin") == ObjectInfo(3_000_000, False, None)
    assert storage.get(f"{base}/data.bin", tmp_path / "data.bin", is_dir=False) == 3_000_000
    assert (tmp_path / "data.bin").read_bytes() == (served / "data.bin").read_bytes()


def test_http_404(http_server, tmp_path):
    base, _ = http_server
    storage = HttpStorage(LOOPBACK)
    with pytest.raises(StorageError, match="HTTP 404") as raised:
        storage.get(f"{base}/missing.txt", tmp_path / "m.txt", is_dir=False)
    assert raised.value.url == f"{base}/missing.txt"
    with pytest.raises(StorageError, match="HEAD with HTTP 404"):
        storage.stat(f"{base}/missing.txt")
    assert listing(tmp_path) == ["served"]


def test_http_truncated_download_leaves_no_partial_file(http_server, tmp_path):
    base, _ = http_server
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(StorageError, match="broke off before the whole file arrived|ended after") as raised:
        HttpStorage(LOOPBACK).get(f"{base}/truncated", dest / "t.bin", is_dir=False)
    assert str(raised.value).startswith(f"{base}/truncated: ")
    assert listing(dest) == []


def test_http_read_timeout_leaves_no_partial_file(http_server, tmp_path):
    base, _ = http_server
    with pytest.raises(StorageError, match="sent nothing for 0.3 s"):
        HttpStorage(LOOPBACK, read_timeout=0.3).get(f"{base}/slow", tmp_path / "s.bin", is_dir=False)
    assert listing(tmp_path) == ["served"]


def test_http_connection_refused(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StorageError, match="cannot connect"):
        HttpStorage(LOOPBACK).get(f"http://127.0.0.1:{port}/x", tmp_path / "x", is_dir=False)


def test_http_is_for_single_file_inputs_only(tmp_path):
    storage = HttpStorage(LOOPBACK)
    with pytest.raises(StorageError, match="http\\(s\\) URLs are accepted for inputs only"):
        storage.put(tmp_path, "https://example.org/out.txt")
    with pytest.raises(StorageError, match="DIRECTORY input needs a file:// or s3:// URL"):
        storage.get("https://example.org/dir/", tmp_path / "d", is_dir=True)
    assert storage.join("https://example.org/d", "a b") == "https://example.org/d/a%20b"


# --- the mux ---------------------------------------------------------------------------------


def test_storage_for_picks_by_scheme(root):
    config = StorageConfig(file_roots=(str(root),))
    assert isinstance(storage_for(f"file://{root}/x", config), FileStorage)
    assert isinstance(storage_for(f"{root}/x", config), FileStorage)
    assert storage_for(f"{root}/x", config).roots == (str(root),)
    assert isinstance(storage_for("http://example.org/x", config), HttpStorage)
    assert isinstance(storage_for("https://example.org/x", config), HttpStorage)
    with pytest.raises(StorageError, match="no S3 store is configured \\(settings s3.endpoint_url"):
        storage_for("s3://bucket/key", config)
    with pytest.raises(StorageError, match="unsupported URL scheme"):
        storage_for("ftp://example.org/x", config)


def test_urls_are_shown_without_passwords():
    assert without_password("https://user:pw@example.org/x") == "https://user:***@example.org/x"
    assert without_password("https://example.org/x?a=b") == "https://example.org/x?a=b"
    with pytest.raises(StorageError) as raised:
        HttpStorage().put(Path("/x"), "https://user:pw@example.org/x")
    assert "pw" not in str(raised.value)


# --- CRC64NVME -------------------------------------------------------------------------------


def test_crc64nvme_forms_and_incremental(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    assert encode(0) == "AAAAAAAAAAA=" and decode("AAAAAAAAAAA=") == 0
    assert decode(crc_of(data)) == int.from_bytes(__import__("base64").b64decode(crc_of(data)), "big")
    running = Crc64Nvme()
    view = memoryview(data)
    for start in range(0, len(data), 1000_003):
        running.update(view[start:start + 1000_003])
    assert (running.encoded(), running.size) == (crc_of(data), len(data))
    (tmp_path / "f").write_bytes(data)
    assert crc64nvme_of_file(tmp_path / "f", chunk=65536) == (len(data), crc_of(data))
    (tmp_path / "empty").write_bytes(b"")
    assert crc64nvme_of_file(tmp_path / "empty") == (0, "AAAAAAAAAAA=")
    for bad in ("not base64!", "AAAA", "AAAAAAAAAAAAAAAA"):
        with pytest.raises(ValueError):
            decode(bad)


# --- file inputs re-checked against what preflight recorded ----------------------------------


def test_file_get_refuses_a_file_changed_since_preflight(root, tmp_path):
    (root / "in.txt").write_text("before")
    url = f"file://{root}/in.txt"
    entry = {"url": url, "size": 6, "etag": None, "crc64nvme": crc_of(b"before")}
    storage = FileStorage([str(root)])
    assert storage.get(url, tmp_path / "ok", is_dir=False, expected=[entry]) == 6
    (root / "in.txt").write_text("after!")
    with pytest.raises(ChangedSinceSubmission) as raised:
        storage.get(url, tmp_path / "changed", is_dir=False, expected=[entry])
    assert raised.value.url == url
    assert raised.value.reason == f"changed since submission (recorded CRC64NVME {crc_of(b'before')}, now {crc_of(b'after!')})"
    (root / "in.txt").write_text("longer now")
    with pytest.raises(ChangedSinceSubmission, match="recorded size 6 bytes, now 10"):
        storage.get(url, tmp_path / "changed", is_dir=False, expected=[entry])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok", "root"]  # no partial file


def test_file_directory_get_downloads_exactly_the_recorded_files(root, tmp_path):
    (root / "ref" / "sub").mkdir(parents=True)
    (root / "ref" / "a.txt").write_text("a")
    (root / "ref" / "sub" / "b.txt").write_text("bb")
    url = f"file://{root}/ref"
    storage = FileStorage([str(root)])
    assert storage.list(url) == [f"{url}/a.txt", f"{url}/sub/b.txt"]
    recorded = preflight_inputs([{"url": url, "path": "/ref", "type": "DIRECTORY"}], StorageConfig(file_roots=(str(root),)))
    assert recorded.problems == []
    assert recorded.verified == {"0": [
        {"url": f"{url}/a.txt", "size": 1, "etag": None, "crc64nvme": crc_of(b"a")},
        {"url": f"{url}/sub/b.txt", "size": 2, "etag": None, "crc64nvme": crc_of(b"bb")},
    ]}
    expected = recorded.verified["0"]
    assert storage.get(url, tmp_path / "one", is_dir=True, expected=expected) == 3
    (root / "ref" / "new.txt").write_text("new")
    with pytest.raises(ChangedSinceSubmission, match=f"changed since submission \\(1 object\\(s\\) added: {url}/new.txt\\)"):
        storage.get(url, tmp_path / "two", is_dir=True, expected=expected)
    (root / "ref" / "new.txt").unlink()
    (root / "ref" / "a.txt").unlink()
    with pytest.raises(ChangedSinceSubmission, match="removed: .*/ref/a.txt"):
        storage.get(url, tmp_path / "two", is_dir=True, expected=expected)
    (root / "ref" / "a.txt").write_text("A")
    with pytest.raises(ChangedSinceSubmission) as raised:
        storage.get(url, tmp_path / "two", is_dir=True, expected=expected)
    assert raised.value.reason.startswith(f"{url}/a.txt changed since submission (recorded CRC64NVME {crc_of(b'a')}, now {crc_of(b'A')}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "root"]


# --- which S3 store serves a bucket ----------------------------------------------------------


def _store(name, buckets=(), prefixes=()):
    return S3StoreConfig(name=name, endpoint_url=f"https://{name}.example.org", region="r", access_key_id="AK",
                         secret_access_key="secret", buckets=buckets, key_prefixes=prefixes,
                         multipart_threshold_bytes=8 * 1024 * 1024)


def test_s3_store_resolution_by_bucket():
    default, archive, scratch = _store("default"), _store("archive", ("cold", "older")), _store("scratch", ("tmp-1",))
    stores = (archive, default, scratch)
    assert resolve_store("s3://cold/k", stores) is archive
    assert resolve_store("s3://older/dir/", stores) is archive
    assert resolve_store("s3://tmp-1/k", stores) is scratch
    assert resolve_store("s3://anything/k", stores) is default
    with pytest.raises(StorageError) as raised:
        resolve_store("s3://anything/k", (archive, scratch))
    assert raised.value.reason == "no S3 store serves bucket anything (configured: store archive: cold, older; store scratch: tmp-1)"
    with pytest.raises(StorageError, match="no S3 store is configured \\(settings s3.endpoint_url"):
        resolve_store("s3://anything/k", ())
    assert "secret" not in repr(default)


def test_s3_store_key_prefixes():
    lab = _store("lab", ("shared",), ("lab-a/", "public/"))
    assert resolve_store("s3://shared/lab-a/x.bam", (lab,)) is lab
    assert resolve_store("s3://shared/lab-a", (lab,)) is lab  # a DIRECTORY URL without its final '/'
    with pytest.raises(StorageError) as raised:
        resolve_store("s3://shared/lab-b/x.bam", (lab,))
    assert raised.value.reason == ("key 'lab-b/x.bam' is not under a key prefix store lab allows (allowed: 'lab-a/', "
                                   "'public/'); see the setting key_prefixes of that store")
    with pytest.raises(StorageError, match="not under a key prefix"):
        resolve_store("s3://shared/", (lab,))  # the whole bucket


def test_storage_for_s3_checks_the_allow_list():
    from tes_cts.storage.s3 import S3Storage

    config = StorageConfig(s3_stores=(_store("lab", (), ("lab-a/",)),))
    storage = storage_for("s3://bucket/lab-a/x", config)
    assert isinstance(storage, S3Storage) and "secret" not in repr(storage)
    with pytest.raises(StorageError, match="allowed: 'lab-a/'"):
        storage_for("s3://bucket/lab-b/x", config)
    with pytest.raises(StorageError, match="allowed: 'lab-a/'"):  # checked by each verb on the exact key too
        storage.put(Path("/dev/null"), "s3://bucket/lab-b/x")
    assert storage.join("s3://bucket/lab-a/out", "a b/c%.txt") == "s3://bucket/lab-a/out/a b/c%.txt"  # keys are literal


# --- preflight of local and http inputs ------------------------------------------------------


def test_preflight_records_local_files_and_skips_http_and_content(root, outside):
    (root / "in.txt").write_text("local")
    inputs = [
        {"url": f"{root}/in.txt", "path": "/a"},
        {"url": "https://example.org/x", "path": "/b"},
        {"content": "inline", "path": "/c"},
        {"url": f"file://{root}/missing", "path": "/d"},
        {"url": f"file://{outside}/secret.txt", "path": "/e"},
        {"url": "ftp://example.org/x", "path": "/f"},
        {"url": f"file://{root}", "path": "/g"},
    ]
    result = preflight_inputs(inputs, StorageConfig(file_roots=(str(root),), preflight_concurrency=2))
    assert result.verified == {"0": [{"url": f"{root}/in.txt", "size": 5, "etag": None, "crc64nvme": crc_of(b"local")}]}
    assert result.problems[0] == f"inputs[3] file://{root}/missing: no such file or directory"
    assert result.problems[1].startswith(f"inputs[4] file://{outside}/secret.txt: is not under an allowed file root")
    assert result.problems[2].startswith("inputs[5] ftp://example.org/x: unsupported URL scheme")
    assert result.problems[3] == f"inputs[6] file://{root}: is a directory; declare the input's type DIRECTORY"
    assert len(result.problems) == 4


class _Counting(SimpleHTTPRequestHandler):
    """Answers everything 200 and counts the requests: a refused URL must never arrive."""

    requests_seen = 0

    def do_GET(self):
        type(self).requests_seen += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"in")

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def _serve(address: str, handler) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def loopback_service():
    """A server on 127.0.0.1 standing for the service's own API, counting what reaches it."""
    _Counting.requests_seen = 0
    server = _serve("127.0.0.1", _Counting)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "127.1", "0x7f.0.0.1", "[::ffff:127.0.0.1]"])
def test_a_user_url_never_reaches_loopback_however_spelled(loopback_service, tmp_path, host):
    url = f"http://{host}:{loopback_service}/ga4gh/tes/v1/tasks?view=FULL"
    for reach in (lambda: HttpStorage().stat(url), lambda: HttpStorage().get(url, tmp_path / "x", is_dir=False)):
        with pytest.raises(StorageError, match="is not reachable from this service"):
            reach()
    assert _Counting.requests_seen == 0 and not (tmp_path / "x").exists()


def test_a_refusal_says_the_same_whether_something_listens_or_not(loopback_service):
    closed = free_port_on("127.0.0.1")
    messages = []
    for port in (loopback_service, closed):
        with pytest.raises(StorageError) as caught:
            HttpStorage().stat(f"http://127.0.0.1:{port}/x")
        messages.append(str(caught.value).replace(str(port), "PORT"))
    assert messages[0] == messages[1]


def test_a_redirect_to_a_refused_address_is_refused(loopback_service):
    class Redirecting(_Counting):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{loopback_service}/secret")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

    redirector = _serve("127.0.0.2", Redirecting)  # stands for an allowed host that redirects
    try:
        with pytest.raises(StorageError, match="host 127.0.0.1 is not reachable from this service"):
            HttpStorage(("127.0.0.2",)).stat(f"http://127.0.0.2:{redirector.server_address[1]}/moved")
    finally:
        redirector.shutdown()
        redirector.server_close()
    assert _Counting.requests_seen == 0


def test_the_allow_list_opens_chosen_networks_and_host_names(loopback_service):
    assert HttpStorage(("127.0.0.0/8",)).stat(f"http://127.0.0.1:{loopback_service}/in").size == 2
    assert HttpStorage(("localhost",)).stat(f"http://localhost:{loopback_service}/in").size == 2
    with pytest.raises(StorageError, match="not reachable"):
        HttpStorage(("10.0.0.0/8",)).stat(f"http://127.0.0.1:{loopback_service}/in")
    assert _Counting.requests_seen == 2


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1",
                                     "0.0.0.0", "::1", "fe80::1", "fc00::1", "224.0.0.1", "::ffff:10.0.0.1"])
def test_non_public_addresses_are_refused_and_public_ones_allowed(address):
    policy = AddressPolicy()
    assert not policy.allows("h", ipaddress.ip_address(address))
    assert policy.allows("h", ipaddress.ip_address("93.184.215.14"))
    assert policy.allows("h", ipaddress.ip_address("2606:4700::1111"))


def free_port_on(address: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]
