"""The embedded default store: one SQLite file shared by API workers and pollers on one host.

Several processes write to the same file, so the database runs in WAL mode (readers never block
the writer), every write takes the write lock up front (a write is one statement, or a
transaction begun with BEGIN IMMEDIATE: no deadlock when a read transaction would have to
upgrade), and a busy timeout makes a writer wait its turn instead of failing. WAL needs a local
filesystem: do not put the file on NFS.

The schema and the rows of a task are in `sqlite_schema.py`, the SELECT a query runs in
`sqlite_select.py`, the WAL checkpoints in `sqlite_checkpoint.py`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..clock import now_us
from ..model.events import EventQuery, TaskEvent
from ..model.query import Cursor, StoredView, TaskQuery, TaskSummary, ViewPage
from ..model.record import TaskRecord
from ..model.states import Phase, TesState
from ..model.views import View, minimal_json
from .base import DatabaseUnavailable, TaskDatabase, check_stored, unavailable_on
from .sqlite_checkpoint import WalCheckpointer, leave_checkpoints_to_the_thread
from .sqlite_schema import SCHEMA_VERSION, create_schema, insert_task, record_of, update_task, write_transaction
from .sqlite_select import RECORD_COLUMNS, SUMMARY_COLUMNS, choose_driver, page_sql, select_sql, view_columns

__all__ = ["SCHEMA_VERSION", "SqliteTaskDatabase"]

BUSY_TIMEOUT_S = 30.0
MMAP_BYTES = 1 << 30  # address space, not memory: the first GiB of the file is mapped


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
        self._checkpointer: WalCheckpointer | None = None
        self._writers, self._writers_pid = threading.Lock(), os.getpid()
        self._waiting: list[_WaitingInsert] = []  # inserts this process's writer has yet to make
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            create_schema(self._connection())
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(f"cannot open the SQLite store {self.path}: {exc}") from exc

    def insert(self, record: TaskRecord) -> None:
        """Store a new record (DuplicateTaskId if its id exists), committed when this returns.

        The inserts that threads of this process ask for while another is writing are committed
        together, by whichever of them writes next (group commit): a transaction of four tasks
        costs SQLite about a third of four transactions of one, which is what concurrent creates
        are limited by."""
        entry = _WaitingInsert(record)
        writers = self._writer_lock()
        with self._lock:
            self._waiting.append(entry)
        with writers:
            if not entry.done:
                self._insert_waiting(self._connection())
        if entry.error is not None:
            raise entry.error
        self._wrote()

    def _insert_waiting(self, conn: _Connection) -> None:
        """Insert every waiting record: together in one transaction; if the store is unavailable,
        each thread raises that; if anything else fails (a duplicate id), each record in a
        statement of its own, so that the failure is its own record's."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        if len(waiting) > 1:
            try:
                with self._unavailable(), write_transaction(conn):
                    for entry in waiting:
                        insert_task(conn, entry.record)
            except DatabaseUnavailable as exc:
                for entry in waiting:
                    entry.error, entry.done = DatabaseUnavailable(str(exc)), True
                return
            except Exception:  # noqa: BLE001 - found again below, record by record
                pass
            else:
                for entry in waiting:
                    entry.done = True
                return
        for entry in waiting:
            try:
                with self._unavailable():
                    insert_task(conn, entry.record)
            except Exception as exc:  # noqa: BLE001 - raised by the thread that asked
                entry.error = exc
            entry.done = True

    def insert_many(self, records: Iterable[TaskRecord]) -> None:
        """Store new records in one transaction: all of them, or none if an id exists already
        (DuplicateTaskId names it)."""
        with self._unavailable(), self._writing() as conn, write_transaction(conn):
            for record in records:
                insert_task(conn, record)
        self._wrote()

    def get(self, task_id: str, owner: str | None = None) -> TaskRecord | None:
        where, parameters = _by_id(task_id, owner)
        with self._unavailable():
            row = self._connection().execute(f"SELECT doc FROM tasks WHERE {where}", parameters).fetchone()
            return record_of(row[0]) if row else None

    def get_view(self, task_id: str, view: View, owner: str | None = None) -> StoredView | None:
        check_stored(view)
        where, parameters = _by_id(task_id, owner)
        with self._unavailable():
            row = self._connection().execute(
                f"SELECT {view_columns(view)} FROM tasks WHERE {where}", parameters
            ).fetchone()
        if row is None:
            return None
        task_id, _, text = row
        return StoredView(minimal_json(task_id, text) if view is View.MINIMAL else text)

    def phase_and_size(self, task_id: str, owner: str | None = None) -> tuple[Phase, int] | None:
        where, parameters = _by_id(task_id, owner)
        with self._unavailable():
            row = self._connection().execute(
                f"SELECT phase, length(basic_view) FROM tasks WHERE {where}", parameters
            ).fetchone()
        return (Phase(row[0]), row[1]) if row else None

    def query(self, query: TaskQuery) -> list[TaskRecord]:
        return [record_of(doc) for (doc,) in self._select(RECORD_COLUMNS, query)]

    def query_summaries(self, query: TaskQuery) -> list[TaskSummary]:
        return [TaskSummary(task_id, created_us, TesState(state))
                for task_id, created_us, state in self._select(SUMMARY_COLUMNS, query)]

    def view_page(self, query: TaskQuery, view: View) -> ViewPage:
        check_stored(view)
        if query.limit < 1:
            return ViewPage("", None)
        with self._unavailable():
            conn = self._connection()
            sql, params = page_sql(query, view, choose_driver(conn, query))
            joined, read = conn.execute(sql, params).fetchone()
        tasks = json.loads(read)  # [id, created_us, state or length of the text], the page and one more
        page = tasks[:query.limit]
        if view is View.MINIMAL:
            joined = ",".join([minimal_json(task_id, state) for task_id, _, state in page])
        elif len(tasks) > len(page):  # cut off the text of the task after the page, and its comma
            joined = joined[:sum(length for _, _, length in page) + len(page) - 1]
        more = len(tasks) > len(page)
        return ViewPage(joined or "", Cursor(page[-1][1], page[-1][0]) if more else None)

    def select_sql(self, query: TaskQuery, columns: str = RECORD_COLUMNS) -> tuple[str, list]:
        """The SELECT this database runs for `query` now, reading `columns` (expressions on the
        table `tasks`), and its parameters: what to ask EXPLAIN QUERY PLAN about."""
        with self._unavailable():
            return select_sql(query, columns, choose_driver(self._connection(), query))

    def query_plan(self, query: TaskQuery, columns: str = RECORD_COLUMNS) -> list[str]:
        """EXPLAIN QUERY PLAN of `select_sql(query, columns)`: one line per step."""
        sql, params = self.select_sql(query, columns)
        with self._unavailable():
            return [row[3] for row in self._connection().execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    def _select(self, columns: str, query: TaskQuery) -> list[tuple]:
        if query.limit < 1:  # SQLite reads a negative LIMIT as "no limit"
            return []
        sql, params = self.select_sql(query, columns)
        with self._unavailable():
            return self._connection().execute(sql, params).fetchall()

    def compare_and_set(self, record: TaskRecord, expected_version: int) -> bool:
        with self._unavailable(), self._writing() as conn:  # one statement: its own transaction
            updated = update_task(conn, record, expected_version)
        if not updated:
            return False
        self._wrote()
        record.version = expected_version + 1
        return True

    def request_cancel(self, task_id: str) -> None:
        with self._unavailable(), self._writing() as conn:
            conn.execute("INSERT OR IGNORE INTO cancel_requests (task_id, requested_us) VALUES (?, ?)",
                         (task_id, now_us()))
        self._wrote()

    def cancel_requests(self, limit: int) -> list[str]:
        if limit < 1:  # SQLite reads a negative LIMIT as "no limit"
            return []
        with self._unavailable():
            rows = self._connection().execute(
                "SELECT task_id FROM cancel_requests ORDER BY requested_us, task_id LIMIT ?", (limit,)
            ).fetchall()
        return [task_id for (task_id,) in rows]

    def drop_cancel_request(self, task_id: str) -> None:
        with self._unavailable(), self._writing() as conn:
            conn.execute("DELETE FROM cancel_requests WHERE task_id = ?", (task_id,))
        self._wrote()

    def count_by_state(self, owner: str | None = None) -> dict[str, int]:
        with self._unavailable():
            if owner is None:
                rows = self._connection().execute(
                    "SELECT value, tasks FROM task_counts WHERE kind = 'state' AND tasks > 0").fetchall()
            else:  # 'owner_state' values are the state, a space, the owner: one key per state
                keys = [f"{state.value} {owner}" for state in TesState]
                rows = [(value.split(" ", 1)[0], tasks) for value, tasks in self._connection().execute(
                    f"SELECT value, tasks FROM task_counts WHERE kind = 'owner_state' AND tasks > 0 "
                    f"AND value IN ({', '.join('?' * len(keys))})", keys)]
        return dict(rows)

    def events(self, query: EventQuery) -> list[TaskEvent]:
        if query.limit < 1:
            return []
        where, params = ["seq > ?"], [query.after]
        for column, value in (("owner", query.owner), ("task_id", query.task_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.states:
            where.append(f"state IN ({', '.join('?' * len(query.states))})")
            params += sorted(query.states)
        with self._unavailable():
            rows = self._connection().execute(
                f"SELECT {', '.join(_EVENT_COLUMNS)} FROM task_events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                [*params, query.limit]).fetchall()
        return [TaskEvent(*row) for row in rows]

    def last_event_seq(self) -> int:
        with self._unavailable():
            return self._connection().execute("SELECT coalesce(max(seq), 0) FROM task_events").fetchone()[0]

    def publish_events(self) -> int:
        return 0  # the triggers of every write published its events

    def prune_events(self, before: str) -> int:
        with self._unavailable(), self._writing() as conn:
            # The newest stays: the next number is the highest + 1, and must not be one given before.
            pruned = conn.execute("DELETE FROM task_events WHERE time < ? AND seq < (SELECT max(seq) FROM task_events)",
                                  (before,)).rowcount
        self._wrote()
        return pruned

    def delivery(self, receiver: str) -> tuple[int | None, int]:
        with self._unavailable():
            row = self._connection().execute(
                "SELECT delivered_seq, dead_letters FROM event_deliveries WHERE receiver = ?", (receiver,)).fetchone()
        return (row[0], row[1]) if row else (None, 0)

    def record_delivery(self, receiver: str, seq: int, dead_letter: bool = False) -> None:
        with self._unavailable(), self._writing() as conn:
            conn.execute("INSERT INTO event_deliveries (receiver, delivered_seq, dead_letters) VALUES (?, ?, ?) "
                         "ON CONFLICT (receiver) DO UPDATE SET delivered_seq = excluded.delivered_seq, "
                         "dead_letters = dead_letters + excluded.dead_letters", (receiver, seq, int(dead_letter)))
        self._wrote()

    def _unavailable(self):
        # IntegrityError (a duplicate id) is not an OperationalError and passes through.
        return unavailable_on((sqlite3.OperationalError,), f"the SQLite store {self.path}")

    @contextmanager
    def _writing(self):
        """This thread's connection, to write on, once the other threads of the process are done
        writing: they queue on a lock, because waiting on SQLite's lock would mean its busy
        handler's sleeps (1, 2, 5, 10 ms and more), the tail of the latency of concurrent creates.
        Other processes still meet SQLite's lock and the busy timeout."""
        with self._writer_lock():
            yield self._connection()

    def _writer_lock(self) -> threading.Lock:
        if self._writers_pid != os.getpid():  # a fork's child starts with a lock of its own
            with self._lock:
                if self._writers_pid != os.getpid():
                    self._writers, self._writers_pid = threading.Lock(), os.getpid()
                    self._waiting = []
        return self._writers

    def _wrote(self) -> None:
        """Tell this process's checkpointer that the WAL grew, starting it with the first write."""
        checkpointer = self._checkpointer
        if checkpointer is None or checkpointer.pid != os.getpid():
            with self._lock:
                if self._checkpointer is None or self._checkpointer.pid != os.getpid():
                    self._checkpointer = WalCheckpointer(self.path, lambda: _connect(self.path, self.busy_timeout_s),
                                                         self._writer_lock)
                checkpointer = self._checkpointer
        checkpointer.wrote()

    def close(self) -> None:
        with self._lock:
            checkpointer, self._checkpointer = self._checkpointer, None
            # A forked child leaves its parent's connections and checkpointer alone.
            mine = [conn for conn in self._connections if conn.pid == os.getpid()]
            self._connections = weakref.WeakSet()
            self._local = threading.local()
        if checkpointer is not None and checkpointer.pid == os.getpid():
            checkpointer.stop(self.busy_timeout_s)
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


_EVENT_COLUMNS = ("seq", "task_id", "owner", "state", "phase", "reason", "time")  # TaskEvent's fields


class _Connection(sqlite3.Connection):
    """A connection that knows the process that opened it (and, unlike its base class, can be
    weakly referenced)."""

    pid: int


@dataclass
class _WaitingInsert:
    record: TaskRecord
    done: bool = False
    error: Exception | None = None


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
    # Durability: a commit returns once its transaction is in the WAL file. NORMAL does not fsync
    # the WAL at each commit, so a power cut or OS crash may lose the last commits (it cannot
    # corrupt the file), but a killed process (kill -9) loses nothing committed: the WAL is in the
    # OS's cache and the next opener recovers it.
    conn.execute("PRAGMA synchronous = NORMAL")
    # Reads of the database file straight from the OS's page cache, which every connection and
    # process shares, instead of a copy into each connection's own small cache.
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    leave_checkpoints_to_the_thread(conn)
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


def _by_id(task_id: str, owner: str | None) -> tuple[str, tuple]:
    """The WHERE clause of one task's lookup (by its primary key, then its owner) and its values."""
    return ("id = ? AND owner = ?", (task_id, owner)) if owner is not None else ("id = ?", (task_id,))
