"""The embedded default store: one SQLite file shared by API workers and pollers on one host.

Several processes write to the same file, so the database runs in WAL mode (readers never block
the writer), every write takes the write lock up front with BEGIN IMMEDIATE (no deadlock when a
read transaction would have to upgrade), and a busy timeout makes a writer wait its turn instead
of failing. WAL needs a local filesystem: do not put the file on NFS.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path

from ..model.query import TaskQuery, TaskSummary, tag_pairs
from ..model.record import TaskRecord
from ..model.states import TesState
from .base import DatabaseUnavailable, DuplicateTaskId, TaskDatabase, unavailable_on

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        name TEXT,
        state TEXT NOT NULL,
        phase TEXT NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL  -- JSON of TaskRecord.to_document(); the columns above are for queries
    )""",
    """CREATE TABLE IF NOT EXISTS task_tags (
        task_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (task_id, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, created_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, created_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS tasks_by_age ON tasks (created_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS task_tags_by_pair ON task_tags (key, value, task_id)",
)

_COLUMNS = "id, owner, created_us, name, state, phase, version, doc"


class SqliteTaskDatabase(TaskDatabase):
    def __init__(self, path: str | os.PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        # One connection per thread and per process: a connection must never cross a fork
        # (gunicorn --preload) nor be used by two threads at once. The set holds them weakly, so
        # a connection closes when its thread ends (server thread pools retire idle threads).
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create_schema(self._connection())
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(f"cannot open the SQLite store {self.path}: {exc}") from exc

    def insert(self, record: TaskRecord) -> None:
        with self._unavailable():
            conn = self._connection()
            try:
                with _write_transaction(conn):
                    conn.execute(
                        f"INSERT INTO tasks ({_COLUMNS}) VALUES "
                        "(:id, :owner, :created_us, :name, :state, :phase, :version, :doc)",
                        _row(record, record.version),
                    )
                    _write_tags(conn, record)
            except sqlite3.IntegrityError as exc:
                if exc.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY":
                    raise DuplicateTaskId(record.id) from None
                raise

    def get(self, task_id: str) -> TaskRecord | None:
        with self._unavailable():
            row = self._connection().execute("SELECT doc FROM tasks WHERE id = ?", (task_id,)).fetchone()
            return _record(row[0]) if row else None

    def query(self, query: TaskQuery) -> list[TaskRecord]:
        return [_record(doc) for (doc,) in self._select("doc", query)]

    def query_summaries(self, query: TaskQuery) -> list[TaskSummary]:
        return [TaskSummary(task_id, created_us, TesState(state))
                for task_id, created_us, state in self._select("id, created_us, state", query)]

    def _select(self, columns: str, query: TaskQuery) -> list[tuple]:
        with self._unavailable():
            if query.limit < 1:  # SQLite reads a negative LIMIT as "no limit"
                return []
            conditions, params = _conditions(query)
            where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            order = "ASC" if query.oldest_first else "DESC"
            return self._connection().execute(
                f"SELECT {columns} FROM tasks {where} ORDER BY created_us {order}, id {order} LIMIT ?",
                [*params, query.limit],
            ).fetchall()

    def compare_and_set(self, record: TaskRecord, expected_version: int) -> bool:
        with self._unavailable():
            conn = self._connection()
            with _write_transaction(conn):
                updated = conn.execute(
                    "UPDATE tasks SET owner = :owner, created_us = :created_us, name = :name, "
                    "state = :state, phase = :phase, version = :version, doc = :doc "
                    "WHERE id = :id AND version = :expected",
                    {**_row(record, expected_version + 1), "expected": expected_version},
                ).rowcount
                if updated == 1:
                    _write_tags(conn, record)
            if updated != 1:
                return False
            record.version = expected_version + 1
            return True

    def _unavailable(self):
        # IntegrityError (a duplicate id) is not an OperationalError and passes through.
        return unavailable_on((sqlite3.OperationalError,), f"the SQLite store {self.path}")

    def close(self) -> None:
        with self._lock:
            # A forked child leaves its parent's connections alone.
            mine = [conn for conn in self._connections if conn.pid == os.getpid()]
            self._connections = weakref.WeakSet()
            self._local = threading.local()
        for conn in mine:
            conn.close()

    def _connection(self) -> _Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.pid != os.getpid():
            conn = _connect(self.path, self.busy_timeout_s)
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        return conn


class _Connection(sqlite3.Connection):
    """A connection that knows the process that opened it (and, unlike its base class, can be
    weakly referenced)."""

    pid: int


def _connect(path: Path, busy_timeout_s: float) -> _Connection:
    # isolation_level=None: no implicit transactions, we BEGIN and COMMIT ourselves.
    # check_same_thread=False only so that close() may close other threads' connections.
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_s,
        isolation_level=None,
        check_same_thread=False,
        factory=_Connection,
    )
    conn.pid = os.getpid()
    mode = _switch_to_wal(conn, busy_timeout_s)
    if mode != "wal":
        conn.close()
        raise DatabaseUnavailable(f"the SQLite store {path} cannot use WAL journal mode (got {mode!r})")
    # With WAL, NORMAL cannot corrupt the file; a power cut may lose the last commits only.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> str:
    # Leaving the rollback journal takes an exclusive lock without waiting out the busy timeout,
    # so processes that open a new file together retry here. Once the file is in WAL mode (it
    # stays so), this returns at once.
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _create_schema(conn: sqlite3.Connection) -> None:
    if _user_version(conn) == SCHEMA_VERSION:
        return
    with _write_transaction(conn):
        found = _user_version(conn)
        if found > SCHEMA_VERSION:
            raise DatabaseUnavailable(
                f"the SQLite store has schema version {found}, newer than this program's {SCHEMA_VERSION}"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _user_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


@contextmanager
def _write_transaction(conn: sqlite3.Connection):
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # some errors have already rolled back
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _row(record: TaskRecord, version: int) -> dict:
    return {
        "id": record.id,
        "owner": record.owner,
        "created_us": record.created_us,
        "name": record.name,
        "state": record.state.value,
        "phase": record.phase.value,
        "version": version,
        "doc": json.dumps({**record.to_document(), "version": version}, separators=(",", ":")),
    }


def _write_tags(conn: sqlite3.Connection, record: TaskRecord) -> None:
    conn.execute("DELETE FROM task_tags WHERE task_id = ?", (record.id,))
    conn.executemany(
        "INSERT INTO task_tags (task_id, key, value) VALUES (?, ?, ?)",
        [(record.id, key, value) for key, value in tag_pairs(record)],
    )


def _record(doc: str) -> TaskRecord:
    return TaskRecord.from_document(json.loads(doc))


def _conditions(query: TaskQuery) -> tuple[list[str], list]:
    conditions: list[str] = []
    params: list = []
    if query.owner is not None:
        conditions.append("owner = ?")
        params.append(query.owner)
    if query.state is not None:
        conditions.append("state = ?")
        params.append(query.state.value)
    if query.name_prefix:
        # Compared as a plain substring, so no character of the prefix is a wildcard (LIKE
        # would treat % and _ as such). A task without a name never matches a non-empty prefix.
        conditions.append("substr(name, 1, ?) = ?")
        params += [len(query.name_prefix), query.name_prefix]
    for key, value in query.tags.items():
        if value:
            conditions.append(
                "EXISTS (SELECT 1 FROM task_tags WHERE task_id = tasks.id AND key = ? AND value = ?)"
            )
            params += [key, value]
        else:  # an empty value asks only that the key exists
            conditions.append("EXISTS (SELECT 1 FROM task_tags WHERE task_id = tasks.id AND key = ?)")
            params.append(key)
    if query.after is not None:
        # Row-value comparison (the same as created_us < ? OR (created_us = ? AND id < ?)), written
        # this way because SQLite turns it into an index range seek, so deep pages stay cheap.
        conditions.append(f"(created_us, id) {'>' if query.oldest_first else '<'} (?, ?)")
        params += [query.after.created_us, query.after.task_id]
    return conditions, params
