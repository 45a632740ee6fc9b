"""A cancel answers at once whatever the task's size: a small task is moved by the API itself; a
large one (or one whose move lost a race) gets a cancel request, one small write the poller
applies at the start of its next cycle, and which no progress update can lose to.

The large task has 100,000 executors (a 13 MB record): reading it takes about half a second and
rewriting it seconds, so a cancel that did either, while the poller rewrites the task at each
step, would answer late or not at all."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import requests

from tes_cts.database.sqlite import SqliteTaskDatabase
from tes_cts.model.record import TaskRecord
from tes_cts.model.states import Phase
from tes_cts.poller import moves
from tes_cts.poller.cancels import CancelRequests
from tes_cts.tasks.attempts import BACKEND_JOB_ID_KEY
from tes_cts.tasks.cancel import DIRECT_CANCEL_MAX_CHARS
from tes_cts.tasks.service import TaskService
from tes_cts.tasks.validation import ValidationLimits

from .builders import task_record
from .test_poller import phases, poller, scripted_backend  # noqa: F401 (fixtures)

EXECUTORS = 100_000
ANSWERED_WITHIN_S = 1.0


def running(**task_fields) -> TaskRecord:
    """A task whose first attempt runs, as the poller stores it."""
    record = task_record(phase=Phase.RUNNING, **task_fields)
    record.logs = [{"logs": [], "outputs": [], "system_logs": [],
                    "metadata": {"backend": "scripted", "attempt": "1", BACKEND_JOB_ID_KEY: "job-1"}}]
    return record


@pytest.fixture(scope="module")
def large_task() -> TaskRecord:
    """A running task of EXECUTORS executors; built once (it takes seconds), stored by each test."""
    return running(executors=[
        {"image": "busybox:latest", "command": ["sh", "-c", f"echo step {i} && sleep 1"], "workdir": "/data",
         "env": {"STEP": str(i)}}
        for i in range(EXECUTORS)])


def service(database, wakes: list | None = None) -> TaskService:
    return TaskService(database, ValidationLimits(128 * 1024, (), frozenset()),
                       wake_poller=(lambda: wakes.append("woken")) if wakes is not None else None)


class ProgressWriter:
    """The poller's side of the race: another process (as the poller is) rewriting a task at each
    step of its executors, as the reconciler does. Not a thread: decoding and encoding a 13 MB
    record holds the GIL for tenths of a second at a time, which would stall the thread that
    cancels and be counted in its time."""

    def __init__(self, path, task_id: str):
        context = multiprocessing.get_context("spawn")
        self._stop, self._wrote = context.Event(), context.Event()
        self._process = context.Process(target=_rewrite_progress, args=(path, task_id, self._stop, self._wrote))

    def __enter__(self) -> ProgressWriter:
        self._process.start()
        assert self._wrote.wait(timeout=60), "the task was never rewritten"
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._process.join(timeout=60)
        assert self._process.exitcode == 0


def _rewrite_progress(path, task_id: str, stop, wrote) -> None:
    database = SqliteTaskDatabase(path)
    executor = 0
    while not stop.is_set():
        if moves.apply(database, database.get(task_id), moves.running_executor(executor + 1)) is not None:
            executor += 1
            wrote.set()
    database.close()


def timed(call):
    """What `call()` returns, and how many seconds it took."""
    started = time.perf_counter()
    returned = call()
    return returned, time.perf_counter() - started


def test_a_large_task_rewritten_all_along_is_canceled_by_a_request_answered_at_once(sqlite_db, large_task):
    sqlite_db.insert(large_task)
    assert sqlite_db.phase_and_size(large_task.id)[1] > 100 * DIRECT_CANCEL_MAX_CHARS
    wakes = []

    with ProgressWriter(sqlite_db.path, large_task.id):
        _, took = timed(lambda: service(sqlite_db, wakes).cancel(large_task.id))
    print(f"cancel of a task of {EXECUTORS} executors, rewritten meanwhile: {took * 1000:.1f} ms")

    assert took < ANSWERED_WITHIN_S
    assert wakes == ["woken"]
    assert sqlite_db.cancel_requests(10) == [large_task.id]
    assert sqlite_db.phase_and_size(large_task.id)[0] is Phase.RUNNING  # the API left the record alone

    assert CancelRequests(sqlite_db).apply() == [large_task.id]
    assert sqlite_db.phase_and_size(large_task.id)[0] is Phase.CANCELING
    assert sqlite_db.cancel_requests(10) == []
    assert sqlite_db.get(large_task.id).history[-1]["reason"] == "cancel requested by the user"


def test_over_http_a_large_task_is_canceled_by_a_request_answered_at_once(live_servers, large_task):
    server = live_servers.start()  # no poller: the test applies the request as the poller would
    database = SqliteTaskDatabase(server.cwd / "work" / "tes-cts.sqlite3")
    try:
        database.insert(large_task)
        response, took = timed(lambda: requests.post(f"{server.tasks}/{large_task.id}:cancel", timeout=30))
        print(f"cancel over HTTP of a task of {EXECUTORS} executors: {took * 1000:.1f} ms")

        assert response.status_code == 200 and response.json() == {}
        assert took < ANSWERED_WITHIN_S
        assert database.cancel_requests(10) == [large_task.id]
        assert state_over_http(server, large_task.id) == "RUNNING"  # until the poller's next cycle

        CancelRequests(database).apply()
        assert state_over_http(server, large_task.id) == "CANCELING"
    finally:
        database.close()


def state_over_http(server, task_id: str) -> str:
    return requests.get(f"{server.tasks}/{task_id}?view=MINIMAL", timeout=30).json()["state"]


class RacedOnce(SqliteTaskDatabase):
    """A store in which, once, the poller's progress update lands between the reading of a task and
    the compare-and-set that follows: that compare-and-set loses."""

    raced = False

    def compare_and_set(self, record: TaskRecord, expected_version: int) -> bool:
        if not self.raced:
            self.raced = True
            moves.apply(self, self.get(record.id), moves.running_executor(1))
        return super().compare_and_set(record, expected_version)


def test_a_small_task_whose_move_lost_a_race_gets_a_request_the_poller_applies(tmp_path):
    database = RacedOnce(tmp_path / "tasks.sqlite3")
    try:
        database.insert(record := running())
        wakes = []

        service(database, wakes).cancel(record.id)

        assert database.raced and wakes == ["woken"]
        assert database.get(record.id).phase is Phase.RUNNING
        assert database.cancel_requests(10) == [record.id]
        assert CancelRequests(database).apply() == [record.id]
        assert database.get(record.id).phase is Phase.CANCELING
        assert database.cancel_requests(10) == []
    finally:
        database.close()


def test_a_small_task_is_moved_at_once_and_leaves_no_request(sqlite_db):
    sqlite_db.insert(record := running())

    service(sqlite_db).cancel(record.id)

    assert sqlite_db.get(record.id).phase is Phase.CANCELING
    assert sqlite_db.cancel_requests(10) == []


def test_a_queued_task_with_a_request_is_canceled_by_the_next_cycle_and_never_dispatched(
        sqlite_db, scripted_backend, poller):
    sqlite_db.insert(record := task_record())
    sqlite_db.request_cancel(record.id)

    poller.cycle()

    assert phases(sqlite_db, record.id) == ["created", "canceled"]
    assert scripted_backend.submitted == []
    assert sqlite_db.cancel_requests(10) == []


def test_a_dispatched_task_with_a_request_is_stopped_in_the_same_cycle(sqlite_db, scripted_backend, poller):
    sqlite_db.insert(record := task_record())
    poller.cycle()  # submitted
    sqlite_db.request_cancel(record.id)

    poller.cycle()

    assert phases(sqlite_db, record.id) == ["created", "preflight", "submitted", "canceling", "canceled"]
    assert [ref.task_id for ref in scripted_backend.canceled] == [record.id]
    assert sqlite_db.cancel_requests(10) == []


def test_a_request_left_by_a_poller_that_died_after_the_move_is_dropped(sqlite_db):
    sqlite_db.insert(record := running())
    moves.apply(sqlite_db, sqlite_db.get(record.id), moves.Move(Phase.CANCELING, "cancel requested by the user"))
    sqlite_db.request_cancel(record.id)  # the move was made, the drop was not
    sqlite_db.request_cancel("a-task-that-is-gone")
    before = sqlite_db.get(record.id)

    assert sorted(CancelRequests(sqlite_db).apply()) == sorted([record.id, "a-task-that-is-gone"])

    assert sqlite_db.get(record.id) == before
    assert sqlite_db.cancel_requests(10) == []
