"""SQLite's own machinery, below the contract (test_database_contract.py): the indexes its queries
are driven from (EXPLAIN QUERY PLAN of the very SQL it runs), WAL checkpoints off the request
path and durability across kill -9, the migration from schema version 1, and insert_many."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from tes_cts.database import DuplicateTaskId, sqlite, sqlite_checkpoint, sqlite_select
from tes_cts.database.base import DatabaseUnavailable
from tes_cts.database.sqlite import SCHEMA_VERSION, SqliteTaskDatabase
from tes_cts.database.sqlite_schema import COUNTED, INDEXES, SINCE_V4, TABLES, TRIGGERS
from tes_cts.model.events import EventQuery
from tes_cts.model.query import Cursor, TaskQuery
from tes_cts.model.record import TaskRecord
from tes_cts.model.states import Phase, TesState
from tes_cts.model.views import View

from .builders import task_record, view_page_of

ROOT = Path(__file__).resolve().parent.parent
SORTS = "USE TEMP B-TREE FOR ORDER BY"


@pytest.fixture
def database(tmp_path):
    opened = SqliteTaskDatabase(tmp_path / "tasks.sqlite3")
    yield opened
    opened.close()


# -- query plans ------------------------------------------------------------------------------


@pytest.fixture
def filled(database):
    """40 QUEUED tasks of owner "o" named "n-…" tagged common=1, of which 3 are also tagged
    rare=1; 3 RUNNING tasks of owner "p" tagged common=1."""
    for i in range(40):
        database.insert(task_record(f"t{i:02d}", owner="o", created_us=i, name=f"n-{i}",
                                    tags={"common": "1", **({"rare": "1"} if i % 15 == 0 else {})}))
    for i in range(3):
        database.insert(task_record(f"r{i}", owner="p", created_us=100 + i, name=f"m-{i}", phase=Phase.RUNNING,
                                    tags={"common": "1"}))
    return database


def plan(database, **filters) -> list[str]:
    return database.query_plan(TaskQuery(limit=10, **filters))


@pytest.mark.parametrize("filters", [
    {"tags": {"rare": "1"}},
    {"tags": {"rare": "1"}, "after": Cursor(30, "t30")},
    {"tags": {"rare": "1"}, "oldest_first": True, "after": Cursor(0, "t00")},
    {"tags": {"rare": "1", "common": "1"}},
    {"tags": {"common": "1", "rare": "1"}, "state": TesState.QUEUED, "owner": "o", "name_prefix": "n-"},
], ids=repr)
def test_a_tag_filter_reads_the_tag_pair_index_in_page_order(filled, filters):
    steps = plan(filled, **filters)

    assert steps[0].startswith("SEARCH tagged USING COVERING INDEX task_tags_by_pair (key=? AND value=?")
    assert steps[1] == "SEARCH tasks USING INDEX sqlite_autoindex_tasks_1 (id=?)"
    assert SORTS not in steps
    sql, params = filled.select_sql(TaskQuery(limit=10, **filters))
    assert params[:2] == ["rare", "1"]  # the rarer tag drives


def test_a_tag_key_filter_reads_the_tag_key_index_in_page_order(filled):
    steps = plan(filled, tags={"rare": ""}, after=Cursor(30, "t30"))

    assert steps[0] == "SEARCH tagged USING COVERING INDEX task_tags_by_key (key=? AND (created_us,task_id)<(?,?))"
    assert SORTS not in steps


def test_the_rarest_filter_drives(filled):
    assert plan(filled, tags={"common": "1"}, state=TesState.RUNNING)[0] == \
        "SEARCH tasks USING INDEX tasks_by_state (state=?)"
    assert plan(filled, tags={"common": "1"}, owner="p")[0] == "SEARCH tasks USING INDEX tasks_by_owner (owner=?)"
    assert plan(filled, tags={"common": "1"}, name_prefix="m-")[2] == \
        "SEARCH tasks USING COVERING INDEX tasks_by_name (name>? AND name<?)"


def test_the_owner_is_counted_last_and_no_further_than_the_fewest_matches_found(filled, monkeypatch):
    counts = []
    count = sqlite_select._count

    def counting(conn, driver, limit):
        found = count(conn, driver, limit)
        counts.append((driver.answers or driver.source, limit, found))
        return found

    monkeypatch.setattr(sqlite_select, "_count", counting)
    # Owner "o" has 40 tasks, 11 of them named "n-1…".
    steps = plan(filled, owner="o", name_prefix="n-1")

    assert steps[2] == "SEARCH tasks USING INDEX tasks_by_name (name>? AND name<?)"
    assert counts == [("tasks INDEXED BY tasks_by_name", sqlite_select.RARE_BELOW, 11), ("owner", 11, 11)]


@pytest.mark.parametrize("filters, first_step", [
    ({"state": TesState.QUEUED}, "SEARCH tasks USING INDEX tasks_by_state (state=?)"),
    ({"state": TesState.QUEUED, "after": Cursor(5, "t05")}, "SEARCH tasks USING INDEX tasks_by_state (state=? AND (created_us,id)<(?,?))"),
    ({"owner": "o"}, "SEARCH tasks USING INDEX tasks_by_owner (owner=?)"),
    ({}, "SCAN tasks USING INDEX tasks_by_age"),
    ({"after": Cursor(5, "t05")}, "SEARCH tasks USING INDEX tasks_by_age ((created_us,id)<(?,?))"),
], ids=repr)
def test_state_owner_and_no_filter_read_their_index_in_page_order(filled, filters, first_step):
    steps = plan(filled, **filters)

    assert steps[0] == first_step
    assert SORTS not in steps


def test_a_rare_name_prefix_reads_the_name_index_and_sorts_only_keys(filled):
    steps = plan(filled, name_prefix="m-")

    assert steps[:3] == ["SEARCH tasks USING INDEX sqlite_autoindex_tasks_1 (id=?)", "LIST SUBQUERY 1",
                         "SEARCH tasks USING COVERING INDEX tasks_by_name (name>? AND name<?)"]


def test_a_common_name_prefix_is_checked_along_the_creation_order(filled, monkeypatch):
    monkeypatch.setattr(sqlite_select, "RARE_BELOW", 40)

    assert plan(filled, name_prefix="n-") == ["SCAN tasks USING INDEX tasks_by_age"]
    assert plan(filled, name_prefix="m-")[2] == "SEARCH tasks USING COVERING INDEX tasks_by_name (name>? AND name<?)"
    assert len(filled.query(TaskQuery(limit=50, name_prefix="n-"))) == 40


MIXED_QUERIES = [
    TaskQuery(limit=3, tags={"k": "1", "j": ""}, state=TesState.QUEUED, owner="o1", name_prefix="n-1"),
    TaskQuery(limit=3, tags={"j": ""}, owner="o0", name_prefix="n-", oldest_first=True),
    TaskQuery(limit=5, tags={"k": "2"}, state=TesState.RUNNING, name_prefix="n-0"),
]


@pytest.mark.parametrize("query", MIXED_QUERIES, ids=repr)
def test_every_index_that_could_drive_a_query_gives_the_same_pages(database, monkeypatch, query):
    for i in range(60):
        database.insert(task_record(f"t{i:02d}", owner=f"o{i % 2}", created_us=i // 3, name=f"n-{i % 2}{i}",
                                    phase=Phase.RUNNING if i % 3 else Phase.CREATED,
                                    tags={"k": str(i % 4), **({"j": "x"} if i % 7 else {})}))

    def pages(driver) -> list[str]:
        monkeypatch.setattr(sqlite, "choose_driver", lambda conn, query: driver)
        seen, after = [], None
        while page := database.query(replace(query, after=after)):
            seen += [r.id for r in page]
            after = Cursor(page[-1].created_us, page[-1].id)
        return seen

    expected = pages(sqlite_select.ANY_INDEX)
    assert len(expected) > query.limit
    for driver in sqlite_select.candidate_drivers(query):
        assert pages(driver) == expected, driver.source


# -- writers ----------------------------------------------------------------------------------


def test_the_threads_of_a_process_take_turns_to_write_without_the_busy_timeout(tmp_path):
    # With no busy timeout, a writer meeting SQLite's lock fails at once: every write succeeding
    # shows that the threads waited for each other before BEGIN.
    database = SqliteTaskDatabase(tmp_path / "tasks.sqlite3", busy_timeout_s=0)
    try:
        def write(thread: int) -> None:
            for i in range(40):
                record = task_record(f"w{thread}-{i}")
                database.insert(record)
                assert database.compare_and_set(record.with_phase(Phase.RUNNING, "moved"), expected_version=record.version)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(8)))
        assert len(database.query(TaskQuery(limit=1000, state=TesState.RUNNING))) == 320
    finally:
        database.close()


def traced_statements(monkeypatch) -> list[str]:
    """The writes (BEGIN, INSERT INTO tasks, COMMIT, ROLLBACK) of every connection opened from now."""
    statements: list[str] = []
    connect = sqlite._connect

    def traced(*args):
        conn = connect(*args)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite, "_connect", traced)
    return statements


def writes(statements: list[str]) -> list[str]:
    # A statement whose trigger runs is traced again as the trigger starts: counted once.
    once = [s for i, s in enumerate(statements) if i == 0 or s != statements[i - 1]]
    return [s.split()[0] for s in once if s.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK") or s.startswith("INSERT INTO tasks")]


def wait_for_waiting(database, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(database._waiting) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(database._waiting) == count


def test_inserts_waiting_for_the_writer_are_committed_together_and_a_duplicate_fails_alone(database, monkeypatch):
    database.insert(existing := task_record("taken"))
    fresh = [task_record(f"new-{i}") for i in range(3)]
    outcomes: dict[str, str] = {}
    statements = traced_statements(monkeypatch)

    def insert(record) -> None:
        try:
            database.insert(record)
            outcomes[record.id] = "stored"
        except DuplicateTaskId:
            outcomes[record.id] = "duplicate"

    with database._writer_lock():  # another thread writing: the next four inserts wait
        threads = [threading.Thread(target=insert, args=(record,)) for record in [*fresh, existing]]
        for thread in threads:
            thread.start()
        wait_for_waiting(database, 4)
    for thread in threads:
        thread.join(10)

    assert outcomes == {**{r.id: "stored" for r in fresh}, "taken": "duplicate"}
    assert {r.id for r in database.query(TaskQuery(limit=10))} == {"taken", *(r.id for r in fresh)}
    # One transaction tried all four and met the duplicate; then each got a statement of its own.
    assert writes(statements) == ["BEGIN", "INSERT", "INSERT", "INSERT", "INSERT", "ROLLBACK", *["INSERT"] * 4]


def test_inserts_waiting_for_the_writer_share_one_commit(database, monkeypatch):
    statements = traced_statements(monkeypatch)
    records = [task_record(f"t-{i}") for i in range(5)]
    with database._writer_lock():
        threads = [threading.Thread(target=database.insert, args=(record,)) for record in records]
        for thread in threads:
            thread.start()
        wait_for_waiting(database, 5)
    for thread in threads:
        thread.join(10)

    assert writes(statements) == ["BEGIN", *["INSERT"] * 5, "COMMIT"]
    assert {r.id for r in database.query(TaskQuery(limit=10))} == {r.id for r in records}


# -- WAL checkpoints and durability -----------------------------------------------------------


def tasks_in_the_database_file(path: Path) -> int:
    """Tasks the main database file holds, the WAL ignored: what checkpoints have copied."""
    for _ in range(100):
        # immutable=1 reads the file without locks, so a checkpoint writing it meanwhile makes
        # it look malformed for a moment.
        try:
            with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as conn:
                if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tasks'").fetchone():
                    return 0
                return conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
        except sqlite3.DatabaseError:
            time.sleep(0.02)
    raise AssertionError(f"{path} stayed unreadable for 2 s")


def checkpoint_threads(path: Path) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == f"wal-checkpoint {path}"]


def test_no_commit_checkpoints_the_wal(database, monkeypatch):
    monkeypatch.setattr(sqlite_checkpoint, "CHECKPOINT_INTERVAL_S", 3600)

    for i in range(300):  # well past the 1000 pages of SQLite's automatic checkpoint
        database.insert(task_record(tags={"k": str(i)}, name=f"task {i}"))

    assert (database.path.parent / "tasks.sqlite3-wal").stat().st_size > 1000 * 4096
    assert tasks_in_the_database_file(database.path) == 0


def test_a_thread_checkpoints_soon_after_a_write_and_stops_with_close(database, monkeypatch):
    monkeypatch.setattr(sqlite_checkpoint, "CHECKPOINT_INTERVAL_S", 0.2)
    assert checkpoint_threads(database.path) == []

    database.insert(task_record())
    deadline = time.monotonic() + 10
    while tasks_in_the_database_file(database.path) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert tasks_in_the_database_file(database.path) == 1
    [thread] = checkpoint_threads(database.path)
    assert thread.daemon
    database.close()
    assert not thread.is_alive()


def test_a_large_wal_is_checkpointed_before_the_interval(database, monkeypatch):
    monkeypatch.setattr(sqlite_checkpoint, "CHECKPOINT_INTERVAL_S", 3600)
    monkeypatch.setattr(sqlite_checkpoint, "CHECKPOINT_WAL_BYTES", 256 * 1024)

    database.insert_many(task_record(name=f"task {i}") for i in range(200))
    deadline = time.monotonic() + 10
    while tasks_in_the_database_file(database.path) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert tasks_in_the_database_file(database.path) == 200


def wal_salts(path: Path) -> bytes:
    """The salts in the WAL header, which SQLite changes each time the WAL starts again."""
    with open(path.with_name(path.name + "-wal"), "rb") as wal:
        return wal.read(24)[16:24]


def test_under_writes_that_never_pause_the_wal_still_starts_again(database, monkeypatch):
    monkeypatch.setattr(sqlite_checkpoint, "CHECKPOINT_INTERVAL_S", 0.2)
    writing = threading.Event()
    writing.set()

    def write() -> None:
        while writing.is_set():
            database.insert(task_record(tags={"k": "v"}))

    writer = threading.Thread(target=write)
    writer.start()
    salts = set()
    try:
        deadline = time.monotonic() + 20
        while len(salts) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            salts.add(wal_salts(database.path))
    finally:
        writing.clear()
        writer.join(10)

    assert len(salts) >= 3  # two restarts while the writer never stopped


_INSERT_THEN_WAIT = """
import sys, time
from tes_cts.database import sqlite_checkpoint
from tes_cts.database.sqlite import SqliteTaskDatabase
from tests.builders import task_record
sqlite_checkpoint.CHECKPOINT_INTERVAL_S = 3600  # the task is only in the WAL when the kill comes
database = SqliteTaskDatabase(sys.argv[1])
record = task_record(tags={"k": "v"})
database.insert(record)
print(record.id, flush=True)
time.sleep(60)
"""


def test_a_committed_task_survives_kill_9_of_its_process(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", _INSERT_THEN_WAIT, str(path)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        task_id = child.stdout.readline().strip()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()

    assert child.returncode == -signal.SIGKILL
    assert task_id and tasks_in_the_database_file(path) == 0
    reopened = SqliteTaskDatabase(path)
    try:
        assert reopened.get(task_id).id == task_id
        assert json.loads(f"[{reopened.view_page(TaskQuery(limit=5, tags={'k': 'v'}), View.BASIC).joined}]")[0]["id"] == task_id
    finally:
        reopened.close()


# -- migrations from schema versions 1, 2 and 3 -----------------------------------------------

# The schema version 1 made (its statements, each on one line).
V1_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_us INTEGER NOT NULL, "
    "name TEXT, state TEXT NOT NULL, phase TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS task_tags (task_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
    "PRIMARY KEY (task_id, key)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, created_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, created_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS tasks_by_age ON tasks (created_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS task_tags_by_pair ON task_tags (key, value, task_id)",
    "PRAGMA user_version = 1",
)


def write_v1_file(path: Path, records: list[TaskRecord], broken_doc_of: str | None = None) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in V1_SCHEMA:
            conn.execute(statement)
        for record in records:
            doc = json.dumps({**record.to_document(), "version": record.version}, separators=(",", ":"))
            conn.execute("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (record.id, record.owner, record.created_us, record.name, record.state.value,
                          record.phase.value, record.version, "{broken" if record.id == broken_doc_of else doc))
            conn.executemany("INSERT INTO task_tags VALUES (?, ?, ?)",
                             [(record.id, key, value) for key, value in record.tags.items()])


def v1_records() -> list[TaskRecord]:
    records = []
    for i in range(30):
        record = task_record(f"v1-{i:02d}", owner=f"o{i % 2}", created_us=1_000 + i, name=f"job {i % 4}",
                             tags={"batch": str(i % 3), "all": ""},
                             inputs=[{"path": "/in", "content": "inline input"}])
        if i % 4 == 0:
            record = record.with_phase(Phase.RUNNING, "running", at_us=2_000 + i)
            record.logs = [{"logs": [{"exit_code": 0, "stdout": "out"}], "outputs": [], "system_logs": ["log"]}]
            record.version = 2
        records.append(record)
    return records


def test_a_version_1_file_is_migrated_on_open_with_every_task_listable(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    records = v1_records()
    write_v1_file(path, records)

    database = SqliteTaskDatabase(path)
    try:
        newest_first = sorted(records, key=lambda r: (r.created_us, r.id), reverse=True)
        assert database.query(TaskQuery(limit=100)) == newest_first
        for view in (View.MINIMAL, View.BASIC):
            assert database.view_page(TaskQuery(limit=100), view) == view_page_of(newest_first, 100, view)
        assert [r.id for r in database.query(TaskQuery(limit=100, tags={"batch": "1"}))] == [
            r.id for r in newest_first if r.tags["batch"] == "1"]
        assert [r.id for r in database.query(TaskQuery(limit=100, tags={"all": ""}, oldest_first=True))] == [
            r.id for r in reversed(newest_first)]
        assert [r.id for r in database.query(TaskQuery(limit=100, name_prefix="job 2", owner="o0"))] == [
            r.id for r in newest_first if r.name == "job 2" and r.owner == "o0"]
        assert database.events(EventQuery()) == []  # none made up for the changes before
        assert database.compare_and_set(records[1].with_phase(Phase.PREFLIGHT, "claimed"), expected_version=0)
        assert [e.phase for e in database.events(EventQuery())] == ["preflight"]
    finally:
        database.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert [row[1] for row in conn.execute("PRAGMA table_info(tasks)")][-2:] == ["basic_view", "doc"]
        assert schema_objects(conn) == {*TABLES, *INDEXES, *TRIGGERS}
        assert kept_counts(conn) == counted_now(conn)


def test_a_version_2_file_gets_the_tag_triggers_and_keeps_its_rows(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    database = SqliteTaskDatabase(path)
    old = [task_record(f"v2-{i}", created_us=i, tags={"batch": str(i % 2)}) for i in range(4)]
    database.insert_many(old)
    database.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:  # as version 2 left it
        as_version_3(conn)
        for name in TRIGGERS:
            if name not in SINCE_V4["triggers"]:
                conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE task_counts")
        for name, columns in (("tasks_by_owner", "owner, created_us DESC, id DESC"), ("tasks_by_age", "created_us DESC, id DESC")):
            conn.execute(f"DROP INDEX {name}")
            conn.execute(f"CREATE INDEX {name} ON tasks ({columns})")
        conn.execute("PRAGMA user_version = 2")
        before = stored_rows_of(conn)

    database = opened_keeping(path, before)
    try:
        with closing(sqlite3.connect(path)) as conn:
            indexes = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
            assert indexes == {name: f"CREATE INDEX {name} ON {columns}" for name, columns in INDEXES.items()}
        assert database.query_plan(TaskQuery(limit=5), "tasks.id, tasks.state") == [
            "SCAN tasks USING COVERING INDEX tasks_by_age"]
        database.insert(new := task_record("v2-new", created_us=10, tags={"batch": "1"}))
        moved = old[0].with_phase(Phase.PREFLIGHT, "claimed")
        moved.task["tags"] = {"batch": "1"}
        assert database.compare_and_set(moved, expected_version=old[0].version)
        assert [r.id for r in database.query(TaskQuery(limit=10, tags={"batch": "1"}))] == [
            new.id, old[3].id, old[1].id, old[0].id]
        with closing(sqlite3.connect(path)) as conn:
            assert kept_counts(conn) == counted_now(conn) == {("owner", ""): 5, ("state", "QUEUED"): 5,
                                                              ("owner_state", "QUEUED "): 5}
    finally:
        database.close()


def test_a_version_3_file_gets_the_cancel_requests_and_keeps_its_rows(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    database = SqliteTaskDatabase(path)
    database.insert_many([task_record(f"v3-{i}", created_us=i, tags={"batch": str(i % 2)}) for i in range(4)])
    database.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:  # as version 3 left it
        as_version_3(conn)
        conn.execute("PRAGMA user_version = 3")
        before = stored_rows_of(conn)

    database = opened_keeping(path, before)
    try:
        database.request_cancel("v3-1")
        assert database.cancel_requests(10) == ["v3-1"]
        assert database.events(EventQuery()) == []  # none made up for the changes before
        database.compare_and_set(database.get("v3-2").with_phase(Phase.PREFLIGHT, "claimed"), expected_version=0)
        assert [(e.task_id, e.phase) for e in database.events(EventQuery())] == [("v3-2", "preflight")]
    finally:
        database.close()


def opened_keeping(path, before) -> SqliteTaskDatabase:
    """The older file opened (so migrated), with its rows as they were `before` and every table,
    index and trigger of this version."""
    database = SqliteTaskDatabase(path)
    with closing(sqlite3.connect(path)) as conn:
        assert stored_rows_of(conn) == before
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert schema_objects(conn) == {*TABLES, *INDEXES, *TRIGGERS}
    return database


def schema_objects(conn: sqlite3.Connection) -> set[str]:
    """The names of the tables, indexes and triggers the file's schema made (not SQLite's own)."""
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE sql IS NOT NULL")
            if not name.startswith("sqlite_")}


def as_version_3(conn: sqlite3.Connection) -> None:
    """Take away what version 4 added (its count triggers stay: the migration makes them again)."""
    conn.execute("DELETE FROM task_counts WHERE kind = 'owner_state'")
    for name in SINCE_V4["triggers"]:
        conn.execute(f"DROP TRIGGER {name}")
    for name in SINCE_V4["tables"]:  # with their indexes
        conn.execute(f"DROP TABLE {name}")


def kept_counts(conn: sqlite3.Connection) -> dict:
    return {(kind, value): tasks for kind, value, tasks in conn.execute("SELECT * FROM task_counts") if tasks}


def counted_now(conn: sqlite3.Connection) -> dict:
    return {(kind, value): tasks for kind, value_of in COUNTED.items()
            for value, tasks in conn.execute(f"SELECT {value_of.format(row='tasks')}, count(*) FROM tasks GROUP BY 1")}


def test_the_counts_of_owners_and_states_follow_every_write(database):
    database.insert_many([task_record(f"a{i}", owner="alice") for i in range(3)])
    database.insert(bob := task_record("b0", owner="bob"))
    for record in database.query(TaskQuery(limit=10, owner="alice"))[:2]:
        assert database.compare_and_set(record.with_phase(Phase.RUNNING, "running"), expected_version=record.version)
    moved = bob.with_phase(Phase.PREFLIGHT, "claimed")
    moved.owner = "carol"  # no code path changes an owner; the counts follow it all the same
    assert database.compare_and_set(moved, expected_version=bob.version)

    with closing(sqlite3.connect(database.path)) as conn:
        assert kept_counts(conn) == counted_now(conn) == {
            ("owner", "alice"): 3, ("owner", "carol"): 1, ("state", "QUEUED"): 2, ("state", "RUNNING"): 2,
            ("owner_state", "QUEUED alice"): 1, ("owner_state", "RUNNING alice"): 2, ("owner_state", "QUEUED carol"): 1}
        conn.execute("DELETE FROM tasks WHERE id = 'a0'")
        assert kept_counts(conn) == counted_now(conn)


def test_a_version_1_file_that_cannot_be_migrated_is_left_as_it_was(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    records = v1_records()
    write_v1_file(path, records, broken_doc_of=records[17].id)

    with pytest.raises(DatabaseUnavailable, match="v1-17"):
        SqliteTaskDatabase(path)

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 30
        assert [row[1] for row in conn.execute("PRAGMA table_info(tasks)")][-1] == "doc"


# -- insert_many ------------------------------------------------------------------------------


def stored_rows(database: SqliteTaskDatabase) -> list[list[tuple]]:
    with closing(sqlite3.connect(database.path)) as conn:
        return stored_rows_of(conn)


def stored_rows_of(conn: sqlite3.Connection) -> list[list[tuple]]:
    return [conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in ("tasks", "task_tags")]


def test_insert_many_stores_the_rows_insert_stores(tmp_path):
    records = [task_record(f"m{i}", created_us=i, tags={"k": str(i), "j": ""}) for i in range(5)]
    one_by_one = SqliteTaskDatabase(tmp_path / "one.sqlite3")
    together = SqliteTaskDatabase(tmp_path / "many.sqlite3")
    try:
        for record in records:
            one_by_one.insert(record)
        together.insert_many(iter(records))

        assert stored_rows(together) == stored_rows(one_by_one)
        assert len(stored_rows(together)[1]) == 10
    finally:
        one_by_one.close()
        together.close()


def test_insert_many_is_one_transaction(database):
    database.insert(task_record("taken"))
    batch = [task_record("new-1"), task_record("taken"), task_record("new-2")]

    with pytest.raises(DuplicateTaskId, match="taken"):
        database.insert_many(batch)

    assert [r.id for r in database.query(TaskQuery(limit=10))] == ["taken"]
