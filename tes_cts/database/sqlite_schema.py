"""The SQLite schema (version 4), its migrations from versions 1, 2 and 3, and the rows a record
is stored as.

`tasks` holds one row per task: the record as JSON (`doc`), its BASIC view as the JSON text the
API sends (`basic_view`, `model.views.view_json`), and the columns queries filter on. Every write
goes through `insert_task` or `update_task`, one statement that writes the whole row: the stored
view never lags the record. `task_tags` holds one row per tag with the task's creation time, so
that a tag filter reads its index in page order; triggers keep it from the tags in `doc`, in the
same statement. Triggers also keep `task_counts`, how many tasks each owner and each state has
(which choosing a query's index reads) and, since version 4, each owner per state. One statement per write, because Python's sqlite3 lets go of the GIL at every
statement, and taking it back costs a request more than the statement does when others are busy.
`cancel_requests` (new in version 4) holds the cancels asked for and not yet applied by the
poller, one small row per task, so that asking never rewrites a record. `task_events` (new in
version 4) holds one row per history entry a write adds, numbered in commit order: triggers
write them in the task's own statement, so that a state change and its event are one write
(model/events.py). `event_deliveries` says how far each webhook got.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from typing import Iterable

from ..model.record import TaskRecord
from ..model.views import View, view_json
from .base import DatabaseUnavailable, DuplicateTaskId

SCHEMA_VERSION = 4

TABLES = {
    # basic_view stands before doc: reading it then never walks the overflow pages of a long doc.
    "tasks": """CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        name TEXT,
        state TEXT NOT NULL,
        phase TEXT NOT NULL,
        version INTEGER NOT NULL,
        basic_view TEXT NOT NULL,  -- view_json(record, View.BASIC)
        doc TEXT NOT NULL  -- JSON of TaskRecord.to_document(); the columns above are for queries
    )""",
    "task_tags": """CREATE TABLE task_tags (
        task_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created_us INTEGER NOT NULL,  -- the task's
        PRIMARY KEY (task_id, key)
    ) WITHOUT ROWID""",
    # How many tasks each owner and each state has, kept by triggers: what choosing a query's
    # index asks of an owner or a state without reading thousands of index entries.
    "task_counts": """CREATE TABLE task_counts (
        kind TEXT NOT NULL,  -- 'owner' or 'state'
        value TEXT NOT NULL,
        tasks INTEGER NOT NULL,
        PRIMARY KEY (kind, value)
    ) WITHOUT ROWID""",
    # Cancels not yet applied: a few rows at a time (the poller drops each once applied), read
    # oldest first without an index.
    "cancel_requests": """CREATE TABLE cancel_requests (
        task_id TEXT PRIMARY KEY,
        requested_us INTEGER NOT NULL
    ) WITHOUT ROWID""",
    # A new seq is the highest + 1; pruning never removes the newest event, so none is given twice.
    "task_events": """CREATE TABLE task_events (
        seq INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        state TEXT NOT NULL,
        phase TEXT NOT NULL,
        reason TEXT NOT NULL,
        time TEXT NOT NULL  -- RFC 3339 with microseconds: ordered as text
    )""",
    "event_deliveries": """CREATE TABLE event_deliveries (
        receiver TEXT PRIMARY KEY,
        delivered_seq INTEGER NOT NULL,
        dead_letters INTEGER NOT NULL
    ) WITHOUT ROWID""",
}
INDEXES = {
    # With the state in them, a MINIMAL page (id and state) of all tasks or of an owner's is read
    # from the index alone.
    "tasks_by_owner": "tasks (owner, created_us DESC, id DESC, state)",
    "tasks_by_state": "tasks (state, created_us DESC, id DESC)",
    "tasks_by_age": "tasks (created_us DESC, id DESC, state)",
    "tasks_by_name": "tasks (name, created_us DESC, id DESC)",
    "task_tags_by_pair": "task_tags (key, value, created_us DESC, task_id DESC)",
    "task_tags_by_key": "task_tags (key, created_us DESC, task_id DESC)",
    "task_events_by_owner": "task_events (owner, seq)",
    "task_events_by_time": "task_events (time)",
}

# A task's tags, from its doc: json_each yields one row per member of the tags object (and one
# row with a NULL key where the tags are null rather than absent).
_TAGS_OF_NEW = ("INSERT INTO task_tags (task_id, key, value, created_us) "
                "SELECT NEW.id, key, value, NEW.created_us FROM json_each(NEW.doc, '$.task.tags') WHERE key IS NOT NULL")


# What task_counts counts: each kind's value, an SQL expression on a row (NEW, OLD). Since version 4
# also each owner's tasks per state ('owner_state': the state, a space, the owner).
COUNTED = {"owner": "{row}.owner", "state": "{row}.state", "owner_state": "{row}.state || ' ' || {row}.owner"}


def _counted(row: str, change: str) -> str:
    """Statements adding `change` to every count `row` (NEW, OLD) is in."""
    return "".join(f"INSERT INTO task_counts (kind, value, tasks) VALUES ('{kind}', {value.format(row=row)}, {change}) "
                   f"ON CONFLICT (kind, value) DO UPDATE SET tasks = tasks + {change}; " for kind, value in COUNTED.items())


_OLD_HISTORY_LENGTH = "(SELECT json_array_length(OLD.doc, '$.history'))"  # a subquery: computed once


def _events_of_new(first: str) -> str:
    """The events of the history entries of NEW from the `first` one on (an SQL expression)."""
    return ("INSERT INTO task_events (task_id, owner, state, phase, reason, time) "
            "SELECT NEW.id, NEW.owner, json_extract(value, '$.state'), json_extract(value, '$.phase'), "
            "json_extract(value, '$.reason'), json_extract(value, '$.time') "
            f"FROM json_each(NEW.doc, '$.history') WHERE key >= {first} ORDER BY key")


TRIGGERS = {
    "task_tags_at_insert": f"AFTER INSERT ON tasks BEGIN {_TAGS_OF_NEW}; END",
    "task_counts_at_insert": f"AFTER INSERT ON tasks BEGIN {_counted('NEW', '1')}END",
    "task_counts_at_update": "AFTER UPDATE OF owner, state ON tasks "
                             "WHEN OLD.owner IS NOT NEW.owner OR OLD.state IS NOT NEW.state "
                             f"BEGIN {_counted('OLD', '-1')}{_counted('NEW', '1')}END",
    "task_counts_at_delete": f"AFTER DELETE ON tasks BEGIN {_counted('OLD', '-1')}END",
    # Tags are fixed at creation in TES, so an update (every state change) compares and leaves them.
    "task_tags_at_update": "AFTER UPDATE OF doc ON tasks "
                           "WHEN json_extract(OLD.doc, '$.task.tags') IS NOT json_extract(NEW.doc, '$.task.tags') "
                           f"BEGIN DELETE FROM task_tags WHERE task_id = NEW.id; {_TAGS_OF_NEW}; END",
    # Since version 4. A history only grows: what a write adds is what lies past the old length.
    "task_events_at_insert": f"AFTER INSERT ON tasks BEGIN {_events_of_new('0')}; END",
    "task_events_at_update": "AFTER UPDATE OF doc ON tasks "
                             f"BEGIN {_events_of_new(_OLD_HISTORY_LENGTH)}; END",
}
_COUNT_TRIGGERS = ("task_counts_at_insert", "task_counts_at_update", "task_counts_at_delete")
SINCE_V4 = {"tables": ("cancel_requests", "task_events", "event_deliveries"),
             "triggers": ("task_events_at_insert", "task_events_at_update"),
             "indexes": ("task_events_by_owner", "task_events_by_time")}
_UNTIL_V3_TRIGGERS = tuple(name for name in TRIGGERS if name not in SINCE_V4["triggers"])

_COVERING_SINCE_V3 = ("tasks_by_owner", "tasks_by_age")  # version 2 had them without the state

_TASK_COLUMNS = ("id", "owner", "created_us", "name", "state", "phase", "version", "basic_view", "doc")
_INSERT_TASK = (f"INSERT INTO tasks ({', '.join(_TASK_COLUMNS)}) "
                f"VALUES ({', '.join(':' + column for column in _TASK_COLUMNS)})")
_UPDATE_TASK = (f"UPDATE tasks SET {', '.join(f'{column} = :{column}' for column in _TASK_COLUMNS[1:])} "
                "WHERE id = :id AND version = :expected")


def create_schema(conn: sqlite3.Connection) -> None:
    """Bring the file to SCHEMA_VERSION: create it, or migrate an older file, in one transaction
    (processes opening it together wait for the first one's)."""
    if user_version(conn) == SCHEMA_VERSION:
        return
    with write_transaction(conn):
        found = user_version(conn)
        if found == SCHEMA_VERSION:
            return
        if found > SCHEMA_VERSION:
            raise DatabaseUnavailable(
                f"the SQLite store has schema version {found}, newer than this program's {SCHEMA_VERSION}"
            )
        if found == 0:
            _create_tables(conn)
            _create_triggers(conn)
            _create_indexes(conn)
        elif found == 1:
            _migrate_from_v1(conn)  # into new tables: every table of this version
        else:
            if found == 2:
                _migrate_v2_to_v3(conn)
            _migrate_v3_to_v4(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _create_tables(conn: sqlite3.Connection, names: Iterable[str] = TABLES) -> None:
    for name in names:
        conn.execute(TABLES[name])


def _create_triggers(conn: sqlite3.Connection, names: Iterable[str] = TRIGGERS) -> None:
    for name in names:
        conn.execute(f"CREATE TRIGGER {name} {TRIGGERS[name]}")


def _create_indexes(conn: sqlite3.Connection, names: Iterable[str] = INDEXES) -> None:
    for name in names:
        conn.execute(f"CREATE INDEX {name} ON {INDEXES[name]}")


def _migrate_from_v1(conn: sqlite3.Connection) -> None:
    """Copy every version 1 task into new tables through `insert_task` (which adds the BASIC view,
    and whose trigger adds the tags with their creation times), then drop the old tables. A copy
    rather than ALTER TABLE ADD COLUMN, which could only put basic_view after doc."""
    conn.execute("ALTER TABLE tasks RENAME TO tasks_v1")
    conn.execute("ALTER TABLE task_tags RENAME TO task_tags_v1")
    _create_tables(conn)
    _create_triggers(conn, _UNTIL_V3_TRIGGERS)
    old = conn.execute("SELECT id, doc FROM tasks_v1")
    while batch := old.fetchmany(1000):
        for task_id, doc in batch:
            insert_task(conn, _v1_record(task_id, doc))
    _create_triggers(conn, SINCE_V4["triggers"])  # after the copy: no events made up for old changes
    # Dropping the tables drops their indexes, whose names the new ones reuse.
    conn.execute("DROP TABLE task_tags_v1")
    conn.execute("DROP TABLE tasks_v1")
    _create_indexes(conn)


def _migrate_v2_to_v3(conn: sqlite3.Connection) -> None:
    """Version 2 had the same tables but the counts, with the tags written by the program, and
    the indexes of owners and ages without the state."""
    conn.execute(TABLES["task_counts"])
    for kind in ("owner", "state"):
        conn.execute(f"INSERT INTO task_counts (kind, value, tasks) "
                     f"SELECT '{kind}', {kind}, count(*) FROM tasks GROUP BY {kind}")
    _create_triggers(conn, _UNTIL_V3_TRIGGERS)
    for name in _COVERING_SINCE_V3:
        conn.execute(f"DROP INDEX {name}")
        conn.execute(f"CREATE INDEX {name} ON {INDEXES[name]}")


def _migrate_v3_to_v4(conn: sqlite3.Connection) -> None:
    """Version 4 added the cancel requests, the events (those of earlier changes are not made up)
    and each owner's counts per state."""
    for name in _COUNT_TRIGGERS:
        conn.execute(f"DROP TRIGGER {name}")
    _create_triggers(conn, _COUNT_TRIGGERS)
    conn.execute("INSERT INTO task_counts (kind, value, tasks) "
                 f"SELECT 'owner_state', {COUNTED['owner_state'].format(row='tasks')}, count(*) FROM tasks GROUP BY owner, state")
    _create_tables(conn, SINCE_V4["tables"])
    _create_triggers(conn, SINCE_V4["triggers"])
    _create_indexes(conn, SINCE_V4["indexes"])


def _v1_record(task_id: str, doc: str) -> TaskRecord:
    try:
        return record_of(doc)
    except (ValueError, KeyError, TypeError) as exc:
        raise DatabaseUnavailable(f"cannot migrate the SQLite store to schema version {SCHEMA_VERSION}: "
                                  f"task {task_id!r} has an unreadable record ({exc!r}); the file is unchanged") from exc


def user_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


@contextmanager
def write_transaction(conn: sqlite3.Connection):
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # some errors have already rolled back
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert_task(conn: sqlite3.Connection, record: TaskRecord) -> None:
    """Write a new task's rows, at its own version. Raises DuplicateTaskId if the id exists."""
    try:
        conn.execute(_INSERT_TASK, _task_row(record, record.version))
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY":
            raise DuplicateTaskId(record.id) from None
        raise


def update_task(conn: sqlite3.Connection, record: TaskRecord, expected_version: int) -> bool:
    """Rewrite the task's rows at expected_version + 1 if it is stored at `expected_version`."""
    updated = conn.execute(_UPDATE_TASK, {**_task_row(record, expected_version + 1),
                                          "expected": expected_version}).rowcount
    return updated == 1


def record_of(doc: str) -> TaskRecord:
    return TaskRecord.from_document(json.loads(doc))


def _task_row(record: TaskRecord, version: int) -> dict:
    return {
        "id": record.id,
        "owner": record.owner,
        "created_us": record.created_us,
        "name": record.name,
        "state": record.state.value,
        "phase": record.phase.value,
        "version": version,
        "basic_view": view_json(record, View.BASIC),
        "doc": json.dumps({**record.to_document(), "version": version}, separators=(",", ":")),
    }
