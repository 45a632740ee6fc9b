"""The logs extension: an executor's full stdout or stderr, in parts (offset and length, or a
Range), live while it runs and whole once it ended, only to its task's owner (and admins).

First the file module and the range rules without a server, then a live `tes-cts serve` with
basic auth, its embedded poller and the real engine."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tes_cts.api.log_parts import ByteRange, RangeNotSatisfiable, Slice, requested
from tes_cts.api.parameters import InvalidParameters
from tes_cts.auth.hashing import hash_password
from tes_cts.jobfiles import executor_log, run_dir_in
from tes_cts.model.states import Phase
from tes_cts.tasks import executor_logs
from tes_cts.tasks.executor_logs import Absence, LogNotThere, open_executor_log
from tes_cts.tasks.log_access import ExecutorLogNotFound, absence_detail, run_attempt

from .auth_servers import basic_auth, toml_table
from .builders import task_record
from .docker_env import docker_env

TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
TASK_ID = "b3dtaskid"


# -- the file module ---------------------------------------------------------------------------


def written_log(runs: Path, content: bytes, stream: str = "stdout") -> Path:
    path = executor_log(run_dir_in(runs, TASK_ID, 1), 0, stream)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def absence(runs: Path, task_id: str = TASK_ID, stream: str = "stdout") -> Absence:
    with pytest.raises(LogNotThere) as missing:
        open_executor_log(runs, task_id, 1, 0, stream).close()
    return missing.value.absence


@pytest.fixture
def open_descriptors(tmp_path):
    """Every test of the file module leaves no descriptor open on its files (not a count of all
    of them: threads other tests left in this process open and close their own meanwhile)."""
    yield
    assert [target for target in map(_target, os.listdir("/proc/self/fd")) if target.startswith(str(tmp_path))] == []


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:  # closed meanwhile
        return ""


def test_a_log_is_read_whole_or_in_parts_as_bytes(tmp_path, open_descriptors):
    content = b"line 1\ncaf\xc3\xa9 \xff\n"
    written_log(tmp_path, content)
    with open_executor_log(tmp_path, TASK_ID, 1, 0, "stdout") as log:
        assert log.size == len(content)
        assert log.read(0) == content
        assert log.read(5, 4) == content[5:9]
        assert log.read(0, 0) == b""
        assert log.read(len(content)) == log.read(len(content) + 100) == b""


def test_one_read_holds_at_most_max_read_bytes(tmp_path, monkeypatch, open_descriptors):
    written_log(tmp_path, b"0123456789" * 3)
    monkeypatch.setattr(executor_logs, "MAX_READ_BYTES", 8)
    with open_executor_log(tmp_path, TASK_ID, 1, 0, "stdout") as log:
        assert log.read(0) == log.read(0, 100) == b"01234567"
        assert log.read(25) == b"56789"


def test_a_growing_log_is_read_up_to_its_size_when_opened(tmp_path, open_descriptors):
    path = written_log(tmp_path, b"first\n")
    with open_executor_log(tmp_path, TASK_ID, 1, 0, "stdout") as log:
        with open(path, "ab") as growing:
            growing.write(b"second\n")
        assert (log.size, log.read(0)) == (6, b"first\n")
    with open_executor_log(tmp_path, TASK_ID, 1, 0, "stdout") as log:
        assert log.read(6) == b"second\n"


def test_a_missing_run_directory_and_a_log_not_written_are_told_apart(tmp_path, open_descriptors):
    runs = tmp_path / "runs"
    assert absence(runs) is Absence.NO_RUN_DIR  # not even the runs directory
    (runs / TASK_ID).mkdir(parents=True)
    assert absence(runs) is Absence.NO_RUN_DIR  # the task's, but not the attempt's
    (runs / TASK_ID / "1").mkdir()
    assert absence(runs) is Absence.NOT_WRITTEN  # no logs directory yet
    written_log(runs, b"out\n", stream="stdout")
    assert absence(runs, stream="stderr") is Absence.NOT_WRITTEN


@pytest.mark.parametrize("planted", ["task directory", "logs directory", "log file", "fifo", "directory"])
def test_no_symbolic_link_is_followed_and_only_a_plain_file_is_read(tmp_path, planted, open_descriptors):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    secret = outside / TASK_ID / "1" / "logs" / "executor-0.stdout"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"not the task's\n")
    log = executor_log(run_dir_in(runs, TASK_ID, 1), 0, "stdout")
    if planted == "task directory":
        runs.mkdir()
        (runs / TASK_ID).symlink_to(outside / TASK_ID)
    else:
        log.parent.parent.mkdir(parents=True)
        if planted == "logs directory":
            log.parent.symlink_to(secret.parent)
        else:
            log.parent.mkdir()
            {"log file": lambda: log.symlink_to(secret), "fifo": lambda: os.mkfifo(log),
             "directory": log.mkdir}[planted]()
    assert absence(runs) is Absence.NOT_A_FILE


@pytest.mark.parametrize("task_id, attempt, executor, stream", [
    ("..", 1, 0, "stdout"), (".", 1, 0, "stdout"), ("a/b", 1, 0, "stdout"), ("", 1, 0, "stdout"),
    ("nul\0", 1, 0, "stdout"), (TASK_ID, 0, 0, "stdout"), (TASK_ID, 1, -1, "stdout"),
    (TASK_ID, 1, 0, "stdin"), (TASK_ID, 1, 0, "../../job.json"),
])
def test_names_that_no_run_directory_has_are_refused_before_any_file_is_opened(tmp_path, task_id, attempt,
                                                                                executor, stream):
    with pytest.raises(ValueError):
        open_executor_log(tmp_path, task_id, attempt, executor, stream)


# -- which logs a task has, and why one is missing ---------------------------------------------


def record_with_attempts(phase: Phase, *entries: dict):
    record = task_record(TASK_ID, phase=phase)
    record.logs = [{"logs": [], "outputs": [], "system_logs": [], **entry} for entry in entries]
    return record


STARTED = {"start_time": "2025-01-01T00:00:00Z"}


@pytest.mark.parametrize("attempt, executor, stream, said", [
    (1, 0, "stdout", "has 1 attempt(s): no attempt 1"),
    (0, 1, "stdout", "has 1 executor(s): no executor 1"),
    (0, 0, "stdlog", "no log 'stdlog': an executor's logs are stdout and stderr"),
])
def test_an_attempt_executor_or_stream_the_task_lacks_is_named(attempt, executor, stream, said):
    with pytest.raises(ExecutorLogNotFound, match=re.escape(said)):
        run_attempt(record_with_attempts(Phase.RUNNING, STARTED), attempt, executor, stream)


def test_an_attempt_not_started_has_no_logs_and_a_started_one_is_the_next_run_directory():
    with pytest.raises(ExecutorLogNotFound, match="attempt 0 of task .* has not started"):
        run_attempt(record_with_attempts(Phase.CREATED, {}), 0, 0, "stdout")
    assert run_attempt(record_with_attempts(Phase.RUNNING, STARTED, STARTED), 1, 0, "stderr") == 2


@pytest.mark.parametrize("phase, attempts, missing, said", [
    (Phase.COMPLETE, 1, Absence.NO_RUN_DIR, "removed after the retention period (poller.run_retention); "
                                            "the FULL view keeps its tail"),
    (Phase.RUNNING, 1, Absence.NO_RUN_DIR, "is not written yet"),
    (Phase.RUNNING, 2, Absence.NO_RUN_DIR, "the attempt left no run directory"),
    (Phase.RUNNING, 1, Absence.NOT_WRITTEN, "is not written yet: the executor has not started"),
    (Phase.EXECUTOR_ERROR, 1, Absence.NOT_WRITTEN, "was never written: the executor did not run"),
    (Phase.RUNNING, 1, Absence.NOT_A_FILE, "is not a plain file"),
])
def test_why_a_log_is_missing_is_said_from_the_task(phase, attempts, missing, said):
    record = record_with_attempts(phase, *[STARTED] * attempts)
    detail = absence_detail(record, 0, 0, "stdout", missing)
    assert detail.startswith(f"the stdout of executor 0 in attempt 0 of task {TASK_ID} ") and said in detail


# -- the part a request asks for ---------------------------------------------------------------


def test_offset_and_length_or_a_range_of_another_unit_ask_for_a_slice():
    assert requested(None, None, None) == Slice(0, None)
    assert requested(None, 7, 3) == Slice(7, 3)
    assert requested("items=0-1", 7, None) == Slice(7, None)  # RFC 9110: an unknown unit is ignored
    with pytest.raises(InvalidParameters, match="Range: give either the Range header or offset and length"):
        requested("bytes=0-1", 7, None)


@pytest.mark.parametrize("header, within", [
    ("bytes=2-5", (2, 4)), ("bytes=2-", (2, None)), ("bytes=-3", (7, None)), ("bytes=-30", (0, None)),
    ("bytes=9-100", (9, 92)), (" bytes = 0-0 ", (0, 1)),
])
def test_one_byte_range_is_served_within_the_log(header, within):
    assert isinstance(requested(header, None, None), ByteRange)
    assert requested(header, None, None).within(10) == within


@pytest.mark.parametrize("header, size, said", [
    ("bytes=10-", 10, "starts at byte 10 of a log of 10 bytes"), ("bytes=-0", 10, "the last 0 bytes"),
    ("bytes=-3", 0, "the log is empty"), ("bytes=5-2", 10, "ends before it starts"),
    ("bytes=a-b", 10, "is not a byte range"), ("bytes=-", 10, "is not a byte range"),
    ("bytes=0-1,4-5", 10, "one range at a time, not 2"),
])
def test_a_range_that_cannot_be_served_says_why(header, size, said):
    with pytest.raises(RangeNotSatisfiable, match=said) as unsatisfiable:
        requested(header, None, None).within(size)
    assert unsatisfiable.value.size == size


def test_a_browser_may_ask_for_a_range_and_read_the_logs_headers(make_settings, sqlite_db):
    from tes_cts.wiring import build_app

    origin = {"Origin": "https://app.example.org"}
    with build_app(make_settings(cors__allow_origins=[origin["Origin"]]), sqlite_db).test_client() as client:
        preflight = client.options("/ga4gh/tes/v1/tasks/some-id/logs/0/0/stdout", headers={
            **origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"})
        unknown = client.get("/ga4gh/tes/v1/tasks/some-id/logs/0/0/stdout", headers=origin)
    assert preflight.status_code == 200 and "range" in preflight.headers["access-control-allow-headers"].lower()
    assert unknown.status_code == 404
    exposed = unknown.headers["access-control-expose-headers"].lower()
    assert "content-range" in exposed and "x-log-size" in exposed


# -- over a live server ------------------------------------------------------------------------


PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "root": "root-pw-3"}
SLOW_LINES = b"".join(f"line {i}\n".encode() for i in range(1, 31))
NOT_UTF8 = b"caf\xc3\xa9 \xff\n"


@pytest.fixture(scope="module")
def server(live_servers, docker_image):
    return live_servers.start({
        "DOCKER_HOST": docker_env()["DOCKER_HOST"],
        "TES_CTS_POLLER__INTERVAL_S": "0.2",
        "TES_CTS_AUTH__PROVIDERS": '["basic"]',
        "TES_CTS_AUTH__ADMINS": '["basic:root"]',
        "TES_CTS_AUTH__BASIC__USERS": toml_table({name: hash_password(pw) for name, pw in PASSWORDS.items()}),
    }, poller=True)


@pytest.fixture(scope="module")
def users():
    return {name: basic_auth(name, password) for name, password in PASSWORDS.items()}


def submit(server, headers, *commands: str) -> str:
    body = {"executors": [{"image": "tes-cts-test/busybox:1", "command": ["sh", "-c", c]} for c in commands]}
    response = requests.post(server.tasks, json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def task_of(server, headers, task_id, view="FULL") -> dict:
    response = requests.get(f"{server.tasks}/{task_id}", params={"view": view}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_end(server, headers, task_id, timeout=90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = task_of(server, headers, task_id)
        if task["state"] in TERMINAL:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} is still {task['state']} after {timeout}s")


def log_of(server, headers, task_id, where="0/0/stdout", params=None, extra=None) -> requests.Response:
    """GET the log at `where` (ATTEMPT/EXECUTOR/STREAM) with `params`, and `extra` headers."""
    return requests.get(f"{server.tasks}/{task_id}/logs/{where}", params=params, headers={**headers, **(extra or {})},
                        timeout=30)


@dataclass
class Followed:
    """What a client following executor 0's stdout from its first byte saw, one read every 0.1 s."""

    task_id: str
    got: bytes = b""
    sizes_while_running: list[int] = field(default_factory=list)
    next_executor_while_running: list[str] = field(default_factory=list)  # executor 1's 404 details
    ended: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def followed(server, users) -> Followed:
    """A task whose executor 0 prints 30 lines over about 3 s (and `done` on stderr), then whose
    executor 1 prints bytes that are not UTF-8; followed with offset = bytes seen."""
    alice = users["alice"]
    seen = Followed(submit(server, alice, "for i in $(seq 30); do echo line $i; sleep 0.1; done; echo done >&2",
                           r"printf 'caf\303\251 \377\n'"))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = task_of(server, alice, seen.task_id, view="MINIMAL")["state"]
        response = log_of(server, alice, seen.task_id, params={"offset": len(seen.got)})
        if response.status_code == 200:
            seen.got += response.content
            if state == "RUNNING" and len(seen.got) < len(SLOW_LINES):
                seen.sizes_while_running.append(int(response.headers["X-Log-Size"]))
                later = log_of(server, alice, seen.task_id, "0/1/stdout")
                if later.status_code == 404:
                    seen.next_executor_while_running.append(later.json()["detail"])
        else:
            assert response.status_code == 404 and state not in TERMINAL, response.text  # not started yet
        if state in TERMINAL and response.status_code == 200 and not response.content:
            seen.ended = task_of(server, alice, seen.task_id)
            return seen
        time.sleep(0.1)
    raise AssertionError(f"task {seen.task_id} did not end within 90 s")


def test_a_running_executors_log_grows_and_a_follower_gets_every_byte_once(followed):
    assert followed.ended["state"] == "COMPLETE", followed.ended
    assert followed.got == SLOW_LINES
    growing = sorted(set(followed.sizes_while_running))
    assert len(growing) >= 2 and growing[0] < len(SLOW_LINES), followed.sizes_while_running
    assert followed.next_executor_while_running, "executor 1 was never seen missing while executor 0 ran"
    assert "is not written yet: the executor has not started" in followed.next_executor_while_running[0]


def test_after_the_end_the_whole_log_is_what_was_printed_and_the_full_views_tail_stays(server, users, followed):
    alice = users["alice"]
    whole = log_of(server, alice, followed.task_id)
    assert whole.status_code == 200 and whole.content == SLOW_LINES
    assert whole.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert whole.headers["X-Log-Size"] == str(len(SLOW_LINES)) and whole.headers["Accept-Ranges"] == "bytes"
    assert log_of(server, alice, followed.task_id, "0/0/stderr").content == b"done\n"
    assert log_of(server, alice, followed.task_id, "0/1/stdout").content == NOT_UTF8  # as written, not re-encoded
    executor_log_entry = followed.ended["logs"][0]["logs"][0]
    assert (executor_log_entry["stdout"], executor_log_entry["stderr"]) == (SLOW_LINES.decode(), "done\n")


def test_offset_and_length_give_a_part_and_an_offset_past_the_end_nothing(server, users, followed):
    alice, size = users["alice"], len(SLOW_LINES)
    part = log_of(server, alice, followed.task_id, params={"offset": 7, "length": 10})
    assert (part.status_code, part.content, part.headers["X-Log-Size"]) == (200, SLOW_LINES[7:17], str(size))
    assert log_of(server, alice, followed.task_id, params={"offset": 200}).content == SLOW_LINES[200:]
    for offset in (size, size + 1000):
        past = log_of(server, alice, followed.task_id, params={"offset": offset})
        assert (past.status_code, past.content, past.headers["X-Log-Size"]) == (200, b"", str(size))


def test_a_range_header_gives_a_partial_answer_or_416(server, users, followed):
    alice, size = users["alice"], len(SLOW_LINES)
    parts = (("bytes=7-16", (7, 16)), ("bytes=-8", (size - 8, size - 1)), ("bytes=200-", (200, size - 1)))
    for header, expected in parts:
        part = log_of(server, alice, followed.task_id, extra={"Range": header})
        assert part.status_code == 206, part.text
        assert part.content == SLOW_LINES[expected[0]:expected[1] + 1]
        assert part.headers["Content-Range"] == f"bytes {expected[0]}-{expected[1]}/{size}"
    for header in (f"bytes={size}-", "bytes=0-1,5-6"):
        refused = log_of(server, alice, followed.task_id, extra={"Range": header})
        assert refused.status_code == 416 and refused.headers["Content-Range"] == f"bytes */{size}", refused.text
        assert refused.json()["title"] == "Range Not Satisfiable"
    both = log_of(server, alice, followed.task_id, params={"offset": 1}, extra={"Range": "bytes=0-1"})
    assert both.status_code == 400 and both.json()["errors"][0]["field"] == "Range"


@pytest.mark.parametrize("where, said", [
    ("1/0/stdout", "has 1 attempt(s): no attempt 1"), ("0/2/stdout", "has 2 executor(s): no executor 2"),
    ("0/0/stdin", "no log 'stdin'"),
])
def test_an_attempt_executor_or_stream_the_task_lacks_is_404(server, users, followed, where, said):
    missing = log_of(server, users["alice"], followed.task_id, where)
    assert missing.status_code == 404 and said in missing.json()["detail"], missing.text


def test_another_users_task_is_the_404_of_an_unknown_one_and_an_admin_reads_it(server, users, followed):
    unknown = log_of(server, users["bob"], "nosuchtask")
    theirs = log_of(server, users["bob"], followed.task_id)
    assert unknown.status_code == theirs.status_code == 404
    same_as_unknown = unknown.json()["detail"].replace("nosuchtask", followed.task_id)
    assert theirs.json() == {**unknown.json(), "detail": same_as_unknown}
    admin = log_of(server, users["root"], followed.task_id)
    assert (admin.status_code, admin.content) == (200, SLOW_LINES)


def test_a_removed_run_directory_is_404_saying_the_retention_took_it_and_the_tail_stays(server, users):
    alice = users["alice"]
    task_id = submit(server, alice, "echo kept in the tail")
    assert wait_for_end(server, alice, task_id)["state"] == "COMPLETE"
    assert log_of(server, alice, task_id).content == b"kept in the tail\n"
    shutil.rmtree(server.cwd / "work" / "runs" / task_id)  # what poller.run_retention does
    gone = log_of(server, alice, task_id)
    assert gone.status_code == 404
    assert "removed after the retention period" in gone.json()["detail"]
    assert "the FULL view keeps its tail" in gone.json()["detail"]
    assert task_of(server, alice, task_id)["logs"][0]["logs"][0]["stdout"] == "kept in the tail\n"
