"""One contract suite for every TaskDatabase: SQLite, mongomock, and a real MongoDB when
TES_CTS_TEST_MONGO_URI is set (each test then gets its own database, dropped afterwards).

Filters that SQLite may answer from different indexes run on `each_path_db`, which adds a SQLite
database that never reads a name prefix as a range of the name index (every prefix counts as
common), so both ways give the same answers. SQLite's query plans, WAL checkpoints and
migration are tested in test_database_sqlite.py."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace

import mongomock
import pymongo
import pytest

from tes_cts.database import DatabaseUnavailable, DuplicateTaskId, mongo, open_database, sqlite_select
from tes_cts.database.mongo import MongoTaskDatabase
from tes_cts.database.sqlite import SCHEMA_VERSION, SqliteTaskDatabase
from tes_cts.model.query import Cursor, StoredView, TaskQuery, TaskSummary, ViewPage
from tes_cts.model.record import TaskRecord, new_task_id
from tes_cts.model.states import Phase, TesState
from tes_cts.model.views import View, render_task, view_json
from tes_cts.settings import load_settings
from tes_cts.tasks.cancel import DIRECT_CANCEL_MAX_CHARS
from tes_cts.urls import without_password

from .builders import task_record, view_page_of
from .helpers import SPEC_TAG_TABLE

MONGO_URI = os.environ.get("TES_CTS_TEST_MONGO_URI")


KINDS = ["sqlite", "mongomock", *(["mongodb"] if MONGO_URI else [])]
MONGO_KINDS = [kind for kind in KINDS if kind != "sqlite"]


def open_kind(kind: str, request, tmp_path):
    """A new, empty task database of `kind`, closed (and for a real MongoDB dropped) after the
    test."""
    if kind in ("sqlite", "sqlite-walk"):
        opened = SqliteTaskDatabase(tmp_path / "not-yet-created" / "tasks.sqlite3")
    elif kind == "mongomock":
        opened = MongoTaskDatabase(mongomock.MongoClient(), "tes_cts_test")
    else:
        client = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=5000)
        name = f"tes_cts_test_{uuid.uuid4().hex}"
        request.addfinalizer(client.close)
        request.addfinalizer(lambda: client.drop_database(name))
        opened = MongoTaskDatabase(client, name)
    request.addfinalizer(opened.close)
    return opened


@pytest.fixture(params=KINDS)
def any_db(request, tmp_path):
    """Each kind of task database in turn, new and empty."""
    return open_kind(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "sqlite-walk", *MONGO_KINDS])
def each_path_db(request, tmp_path, monkeypatch):
    """As any_db, plus SQLite walking tasks in page order for every name prefix."""
    if request.param == "sqlite-walk":
        monkeypatch.setattr(sqlite_select, "RARE_BELOW", 0)
    return open_kind(request.param, request, tmp_path)


@pytest.fixture(params=MONGO_KINDS)
def mongo_database(request):
    """Each kind of MongoDB in turn (mongomock, a real server when there is one): a client and the
    name of a database of its own, dropped afterwards."""
    name = f"tes_cts_test_{uuid.uuid4().hex}"
    if request.param == "mongomock":
        return mongomock.MongoClient(), name
    client = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=5000)
    request.addfinalizer(client.close)
    request.addfinalizer(lambda: client.drop_database(name))
    return client, name


def newest_first(records: list[TaskRecord]) -> list[str]:
    return [r.id for r in sorted(records, key=lambda r: (r.created_us, r.id), reverse=True)]


def ids(records: list[TaskRecord]) -> list[str]:
    return [r.id for r in records]


def page_ids(page: ViewPage) -> list[str]:
    return [task["id"] for task in json.loads(f"[{page.joined}]")]


def all_pages(db, page_size: int, **filters) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page = db.query(TaskQuery(limit=page_size, after=after, **filters))
        seen += ids(page)
        if len(page) < page_size:
            return seen
        after = Cursor(page[-1].created_us, page[-1].id)


def all_view_pages(db, page_size: int, view: View, **filters) -> list[str]:
    """all_pages through view_page: the ids of every page, following each next_after."""
    seen: list[str] = []
    after = None
    while True:
        page = db.view_page(TaskQuery(limit=page_size, after=after, **filters), view)
        seen += page_ids(page)
        if page.next_after is None:
            return seen
        after = page.next_after


# -- insert and get ---------------------------------------------------------------------------


def test_insert_then_get_round_trips_a_full_record(any_db):
    record = TaskRecord(
        id=new_task_id(),
        owner="alice",
        created_us=1_763_722_323_123_456,
        phase=Phase.CREATED,
        task={
            "name": "align reads",
            "description": "bwa mem",
            "inputs": [{"url": "s3://bucket/reads.fq", "path": "/data/reads.fq", "type": "FILE"}],
            "outputs": [{"url": "s3://bucket/out.bam", "path": "/data/out.bam", "type": "FILE"}],
            "resources": {"cpu_cores": 4, "ram_gb": 7.5, "preemptible": False, "zones": ["a", "b"]},
            "executors": [
                {"image": "bwa:0.7", "command": ["bwa", "mem"], "env": {"A.B": "1", "$X": "2"}},
                {"image": "samtools", "command": ["samtools", "sort"], "workdir": "/data"},
            ],
            "volumes": ["/scratch"],
            "tags": {"project": "p1", "empty": "", "dotted.key": "v", "$dollar": "w"},
        },
        logs=[
            {
                "start_time": "2026-11-21T10:52:03.123456Z",
                "logs": [{"exit_code": 0, "stdout": "ok\n", "start_time": "2026-11-21T10:52:04Z"}],
                "outputs": [{"url": "s3://bucket/out.bam", "path": "/data/out.bam", "size_bytes": "12"}],
                "metadata": {"crc64nvme:/data/out.bam": "AAAAAAAAAAA="},
                "system_logs": ["attempt 1"],
            }
        ],
        lease={"owner": "poller-1", "expires_us": 1_763_722_400_000_000},
        version=3,
    ).with_phase(Phase.PREFLIGHT, "claimed", at_us=1_763_722_324_000_000)

    any_db.insert(record)

    assert any_db.get(record.id) == record
    assert record.version == 3


def test_insert_of_an_existing_id_raises_and_keeps_the_first(any_db):
    first = task_record("same-id", name="first")
    any_db.insert(first)

    with pytest.raises(DuplicateTaskId):
        any_db.insert(task_record("same-id", name="second"))

    assert any_db.get("same-id") == first


def test_get_unknown_id_is_none(any_db):
    assert any_db.get("no-such-task") is None


# -- order and paging -------------------------------------------------------------------------


def test_query_is_newest_first_with_equal_times_by_id_descending(any_db):
    records = [
        task_record("b", created_us=5),
        task_record("a", created_us=9),
        task_record("d", created_us=5),
        task_record("c", created_us=5),
        task_record("e", created_us=1),
    ]
    for record in records:
        any_db.insert(record)

    assert ids(any_db.query(TaskQuery(limit=10))) == ["a", "d", "c", "b", "e"]
    assert ids(any_db.query(TaskQuery(limit=2))) == ["a", "d"]
    assert any_db.query(TaskQuery(limit=0)) == []


def test_keyset_paging_returns_every_task_exactly_once(any_db):
    # Runs of equal creation times that straddle page boundaries.
    records = [task_record(f"t{i:02d}", created_us=100 + i // 3) for i in range(25)]
    for record in records:
        any_db.insert(record)

    for page_size in (1, 4, 7, 25, 30):
        assert all_pages(any_db, page_size) == newest_first(records)
        for view in (View.MINIMAL, View.BASIC):
            assert all_view_pages(any_db, page_size, view) == newest_first(records)


PAGE_FILTERS = {
    "none": {},
    "tag": {"tags": {"k": "v"}},
    "tag key": {"tags": {"k": ""}},
    "two tags": {"tags": {"k": "v", "j": ""}},
    "state": {"state": TesState.QUEUED},
    "owner": {"owner": "o"},
    "name prefix": {"name_prefix": "n-"},
    "all": {"tags": {"k": "v"}, "state": TesState.QUEUED, "owner": "o", "name_prefix": "n-"},
}


@pytest.mark.parametrize("filters", PAGE_FILTERS.values(), ids=PAGE_FILTERS.keys())
def test_paging_is_stable_when_tasks_arrive_between_pages(each_path_db, filters):
    def matching(task_id, created_us):
        return task_record(task_id, created_us=created_us, owner="o", name=f"n-{task_id}", tags={"k": "v", "j": "1"})

    records = [matching(f"old{i}", 100 + i // 2) for i in range(10)]
    others = [task_record(f"other{i}", created_us=100 + i, owner="p", name="m", phase=Phase.RUNNING) for i in range(5)]
    for record in records + others:
        each_path_db.insert(record)

    first = each_path_db.query(TaskQuery(limit=4, **filters))
    seen = ids(first)
    after = Cursor(first[-1].created_us, first[-1].id)
    late = 0
    while True:
        late += 1
        each_path_db.insert(matching(f"new{late}", 1_000 + late))
        page = each_path_db.query(TaskQuery(limit=4, after=after, **filters))
        if not page:
            break
        seen += ids(page)
        after = Cursor(page[-1].created_us, page[-1].id)

    assert seen == newest_first(records if filters else records + others)


# -- filters ----------------------------------------------------------------------------------


def test_owner_filter(any_db):
    records = [task_record(owner=owner, created_us=i) for i, owner in enumerate("abab c")]
    for record in records:
        any_db.insert(record)

    for owner in ("a", "b", "c", " ", "nobody"):
        expected = newest_first([r for r in records if r.owner == owner])
        assert ids(any_db.query(TaskQuery(limit=50, owner=owner))) == expected


LAST = chr(0x10FFFF)  # the greatest code point: no prefix range ends just after it
NAMES = [
    "a.b", "axb", "a*", "aa", "a(1)", "a", "100%", "100x", "100", "a_b", "aXb", "a[1]", "a1]",
    "$x", "x$", "^x", "x", "A.B", "a\\d", "ad", "", None,
    "é", "éa", "e", "f", "日本", "日", "\ud7ff", "\ud7ffx", "\ue000", "\uffff", "\U00010000",
    LAST, LAST + "a", LAST + LAST, "a" + LAST, "a" + LAST + "b", "b",
]
PREFIXES = [
    "a.", "a*", "a(", "a_", "100%", "$", "^", "x$", "a", ".", "*", "%", "_", "A", "",
    "a[", "[", "a\\", "\\d", "é", "e", "日", "\ud7ff", "\uffff", LAST, LAST + LAST, "a" + LAST,
]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_name_prefix_is_literal(each_path_db, prefix):
    records = [task_record(name=name, created_us=i) for i, name in enumerate(NAMES)]
    for record in records:
        each_path_db.insert(record)

    expected = newest_first(
        [r for r in records if prefix == "" or (r.name is not None and r.name.startswith(prefix))]
    )
    assert ids(each_path_db.query(TaskQuery(limit=50, name_prefix=prefix))) == expected
    assert page_ids(each_path_db.view_page(TaskQuery(limit=50, name_prefix=prefix), View.MINIMAL)) == expected


def test_state_filter(any_db):
    phases = [Phase.CREATED, Phase.PREFLIGHT, Phase.RUNNING, Phase.STAGING_OUT, Phase.COMPLETE]
    records = [task_record(phase=phase, created_us=i) for i, phase in enumerate(phases)]
    for record in records:
        any_db.insert(record)

    for state in (TesState.QUEUED, TesState.RUNNING, TesState.COMPLETE, TesState.CANCELED):
        expected = newest_first([r for r in records if r.state == state])
        assert ids(any_db.query(TaskQuery(limit=50, state=state))) == expected




@pytest.mark.parametrize("tag_filter, tags, matches", SPEC_TAG_TABLE)
def test_tag_filter_follows_the_spec_table(any_db, tag_filter, tags, matches):
    task = task_record(tags=tags, created_us=2)
    any_db.insert(task)
    any_db.insert(task_record(tags=None, created_us=1))

    found = ids(any_db.query(TaskQuery(limit=10, tags=tag_filter)))

    assert found == ([task.id] if matches else [])


def test_tag_keys_with_dots_and_dollars_are_plain_keys(any_db):
    odd = task_record("odd", tags={"a.b": "1", "$c": "2", "d": "x.y"}, created_us=2)
    plain = task_record("plain", tags={"a": "1", "c": "2", "b": "1"}, created_us=1)
    any_db.insert(odd)
    any_db.insert(plain)

    def found(tag_filter):
        return ids(any_db.query(TaskQuery(limit=10, tags=tag_filter)))

    assert found({"a.b": "1"}) == ["odd"]
    assert found({"a.b": ""}) == ["odd"]
    assert found({"$c": "2", "d": "x.y"}) == ["odd"]
    assert found({"a": ""}) == ["plain"]
    assert found({"a.b": "2"}) == []
    assert found({"$c": "", "a": ""}) == []
    assert found({"$exists": ""}) == []


def test_combined_filters_with_paging(each_path_db):
    records = []
    for i in range(40):
        records.append(
            task_record(
                f"t{i:02d}",
                owner="alice" if i % 2 else "bob",
                created_us=500 + i // 4,
                name=f"run.{i % 3}",
                tags={"project": "p1" if i % 5 else "p2", "batch": str(i % 2)},
                phase=Phase.RUNNING if i % 7 else Phase.COMPLETE,
            )
        )
    for record in records:
        each_path_db.insert(record)

    filters = {
        "owner": "alice",
        "name_prefix": "run.",
        "state": TesState.RUNNING,
        "tags": {"project": "p1", "batch": ""},
    }
    expected = newest_first(
        [
            r
            for r in records
            if r.owner == "alice" and r.state == TesState.RUNNING and r.tags["project"] == "p1"
        ]
    )
    assert len(expected) > 6
    assert all_pages(each_path_db, 3, **filters) == expected
    assert all_view_pages(each_path_db, 3, View.MINIMAL, **filters) == expected
    assert all_pages(each_path_db, 3, **{**filters, "name_prefix": "run.1"}) == [
        i for i in expected if next(r for r in records if r.id == i).name == "run.1"
    ]


# -- compare-and-set --------------------------------------------------------------------------


def test_compare_and_set_persists_changes_and_increments_the_version(any_db):
    record = task_record(name="before", tags={"old": "1"})
    any_db.insert(record)

    moved = record.with_phase(Phase.PREFLIGHT, "claimed")
    moved.task["tags"] = {"new": "2"}
    moved.task["name"] = "after"
    moved.lease = {"owner": "poller-1", "expires_us": 42}
    assert any_db.compare_and_set(moved, expected_version=0)
    assert moved.version == 1

    moved = moved.with_phase(Phase.SUBMITTED, "backend accepted")
    assert any_db.compare_and_set(moved, expected_version=1)
    assert moved.version == 2

    assert any_db.get(record.id) == moved

    def found(**filters):
        return ids(any_db.query(TaskQuery(limit=10, **filters)))

    assert found(tags={"new": "2"}) == [record.id]
    assert found(tags={"old": ""}) == []
    assert found(state=TesState.INITIALIZING) == [record.id]
    assert found(state=TesState.QUEUED) == []
    assert found(name_prefix="after") == [record.id]
    assert found(name_prefix="before") == []


def test_compare_and_set_with_a_stale_version_changes_nothing(any_db):
    record = task_record(tags={"k": "v"})
    any_db.insert(record)
    winner = record.with_phase(Phase.PREFLIGHT, "first")
    assert any_db.compare_and_set(winner, expected_version=0)

    loser = record.with_phase(Phase.CANCELED, "too late")
    loser.task["tags"] = {"other": "x"}
    assert not any_db.compare_and_set(loser, expected_version=0)

    assert loser.version == 0
    assert any_db.get(record.id) == winner
    assert ids(any_db.query(TaskQuery(limit=10, tags={"other": ""}))) == []
    assert ids(any_db.query(TaskQuery(limit=10, tags={"k": "v"}))) == [record.id]


def test_compare_and_set_on_an_unknown_id_is_false(any_db):
    ghost = task_record("ghost")

    assert not any_db.compare_and_set(ghost, expected_version=0)
    assert any_db.get("ghost") is None
    assert ghost.version == 0


# -- stored views -----------------------------------------------------------------------------


def verbose_record(**fields) -> TaskRecord:
    """A task with everything BASIC leaves out: an input's content, executor stdout and stderr,
    system logs."""
    record = task_record(
        name="views", tags={"k": "v"},
        inputs=[{"path": "/data/script.sh", "content": "echo secret-content"},
                {"url": "s3://bucket/in", "path": "/data/in", "type": "FILE"}],
        **fields,
    )
    record.logs = [{"start_time": "2026-01-01T00:00:00Z", "system_logs": ["secret-system-log"],
                    "logs": [{"exit_code": 0, "stdout": "secret-stdout", "stderr": "secret-stderr"}],
                    "outputs": [{"url": "s3://bucket/out", "path": "/data/out", "size_bytes": 3}]}]
    return record


def assert_views_are_fresh_renders(db, record: TaskRecord) -> None:
    for view in (View.MINIMAL, View.BASIC):
        assert db.get_view(record.id, view) == StoredView(view_json(record, view))
    basic = db.get_view(record.id, View.BASIC).json
    assert json.loads(basic) == render_task(record, View.BASIC)
    for dropped in ("secret-content", "secret-stdout", "secret-stderr", "secret-system-log"):
        assert dropped not in basic
    assert "secret-stdout" in json.dumps(render_task(db.get(record.id), View.FULL))


def test_stored_views_are_fresh_renders_after_insert_and_compare_and_set(any_db):
    record = verbose_record(owner="alice")
    any_db.insert(record)
    assert_views_are_fresh_renders(any_db, record)

    moved = record.with_phase(Phase.RUNNING, "running")
    moved.logs[0]["logs"].append({"exit_code": 1, "stdout": "secret-stdout again", "stderr": "secret-stderr"})
    moved.task["tags"] = {"k": "w"}
    assert any_db.compare_and_set(moved, expected_version=0)
    assert_views_are_fresh_renders(any_db, moved)
    assert json.loads(any_db.get_view(record.id, View.BASIC).json)["state"] == "RUNNING"

    stale = record.with_phase(Phase.CANCELED, "too late")
    assert not any_db.compare_and_set(stale, expected_version=0)
    assert_views_are_fresh_renders(any_db, moved)


@pytest.mark.parametrize("query", [
    TaskQuery(limit=20),
    TaskQuery(limit=3),
    TaskQuery(limit=0),
    TaskQuery(limit=4, after=Cursor(104, "v04")),
    TaskQuery(limit=20, oldest_first=True),
    TaskQuery(limit=3, oldest_first=True, after=Cursor(102, "v02")),
    TaskQuery(limit=20, tags={"k": "1"}),
    TaskQuery(limit=20, tags={"k": "", "j": "x"}),
    TaskQuery(limit=20, state=TesState.RUNNING, owner="o1"),
    TaskQuery(limit=20, name_prefix="v0"),
], ids=repr)
def test_view_pages_list_what_query_lists_as_fresh_renders(each_path_db, query):
    records = [verbose_record(owner=f"o{i % 2}", created_us=100 + i // 2, phase=Phase.RUNNING if i % 3 else Phase.CREATED)
               for i in range(12)]
    for i, record in enumerate(records):
        record.id = f"v{i:02d}"
        record.task["name"] = record.id
        record.task["tags"] = {"k": str(i % 3), "j": "x"}
        each_path_db.insert(record)
    listed = each_path_db.query(replace(query, limit=query.limit + 1))

    for view in (View.MINIMAL, View.BASIC):
        assert each_path_db.view_page(query, view) == view_page_of(listed, query.limit, view)


def test_a_view_of_an_unknown_task_is_none(any_db):
    assert any_db.get_view("no-such-task", View.BASIC) is None
    assert any_db.get_view("no-such-task", View.MINIMAL) is None


def test_with_an_owner_another_users_task_is_none_like_an_unknown_one(any_db):
    any_db.insert(record := task_record(owner="alice"))
    for view in (View.MINIMAL, View.BASIC):
        assert any_db.get_view(record.id, view, owner="bob") is None
        assert any_db.get_view(record.id, view, owner="alice") == any_db.get_view(record.id, view)
    assert any_db.get(record.id, owner="bob") is None
    assert any_db.get(record.id, owner="alice") == any_db.get(record.id)
    assert any_db.get(record.id, owner="") is None  # the local user's owner is an owner like any


def test_full_views_are_not_stored(any_db):
    any_db.insert(record := task_record())

    with pytest.raises(ValueError, match="FULL"):
        any_db.get_view(record.id, View.FULL)
    with pytest.raises(ValueError, match="FULL"):
        any_db.view_page(TaskQuery(limit=5), View.FULL)


@pytest.mark.parametrize("task_id", ["plain", 'quote"back\\slash', "tab\tnew\nline\x01", "del\x7f", "é", "\u2028", "😀"])
def test_minimal_views_are_the_json_python_writes_for_any_id(any_db, task_id):
    any_db.insert(task_record(task_id))

    expected = json.dumps({"id": task_id, "state": "QUEUED"}, separators=(",", ":"))
    assert any_db.get_view(task_id, View.MINIMAL).json == expected
    assert any_db.view_page(TaskQuery(limit=5), View.MINIMAL) == ViewPage(expected, None)


# -- what a cancel reads and writes ----------------------------------------------------------


def test_phase_and_size_are_the_phase_and_the_length_of_the_basic_view(any_db):
    small, large = task_record(owner="alice"), task_record(owner="alice", phase=Phase.RUNNING, description="x" * 5000)
    for record in (small, large):
        any_db.insert(record)

    for record in (small, large):
        assert any_db.phase_and_size(record.id) == (record.phase, len(view_json(record, View.BASIC)))
        assert any_db.phase_and_size(record.id, owner="alice") == any_db.phase_and_size(record.id)
        assert any_db.phase_and_size(record.id, owner="bob") is None
    assert any_db.phase_and_size(large.id)[1] > any_db.phase_and_size(small.id)[1] + 5000
    assert any_db.phase_and_size("no-such-task") is None

    moved = small.with_phase(Phase.PREFLIGHT, "claimed")
    moved.task["description"] = "é" * 100  # a length in characters, as len() counts them
    assert any_db.compare_and_set(moved, expected_version=0)
    assert any_db.phase_and_size(small.id) == (Phase.PREFLIGHT, len(view_json(moved, View.BASIC)))


def requested(db, *task_ids: str) -> None:
    """Cancel requests for `task_ids`, in that order, each at a later microsecond."""
    for task_id in task_ids:
        db.request_cancel(task_id)
        time.sleep(0.002)


def test_cancel_requests_come_oldest_first_and_up_to_the_limit(any_db):
    requested(any_db, "c", "a", "b")

    assert any_db.cancel_requests(10) == ["c", "a", "b"]
    assert any_db.cancel_requests(2) == ["c", "a"]
    assert any_db.cancel_requests(0) == []


def test_a_cancel_request_asked_again_keeps_its_place(any_db):
    requested(any_db, "first", "second", "first")

    assert any_db.cancel_requests(10) == ["first", "second"]


def test_a_dropped_cancel_request_is_gone_and_may_be_asked_again(any_db):
    requested(any_db, "a", "b")

    any_db.drop_cancel_request("a")
    any_db.drop_cancel_request("never-requested")
    assert any_db.cancel_requests(10) == ["b"]
    requested(any_db, "a")
    assert any_db.cancel_requests(10) == ["b", "a"]


def test_a_cancel_request_leaves_the_record_as_it_was(any_db):
    any_db.insert(record := task_record(phase=Phase.RUNNING))

    any_db.request_cancel(record.id)

    assert any_db.get(record.id) == record and any_db.get(record.id).version == 0


# -- MongoDB only -----------------------------------------------------------------------------


def index_keys(collection) -> list[list[tuple[str, int]]]:
    return [[(field, int(direction)) for field, direction in info["key"]]
            for info in collection.index_information().values()]


def test_mongodb_has_an_index_for_every_filter_in_page_order(mongo_database):
    client, name = mongo_database
    tasks = client[name][mongo.COLLECTION]
    tasks.create_index([("tag_pairs.k", 1), ("tag_pairs.v", 1)])  # what version 1 made

    MongoTaskDatabase(client, name).close()

    found = index_keys(tasks)
    newest_first = [("created_us", -1), ("_id", -1)]
    for keys in (
        [("tag_pairs.k", 1), ("tag_pairs.v", 1), *newest_first],
        [("tag_pairs.k", 1), *newest_first],
        [("name", 1), ("created_us", 1), ("_id", 1)],
        [("state", 1), *newest_first],
        [("owner", 1), *newest_first],
        newest_first,
    ):
        assert keys in found
    assert [("tag_pairs.k", 1), ("tag_pairs.v", 1)] not in found


def test_mongodb_gives_version_1_documents_their_views(mongo_database):
    client, name = mongo_database
    records = [verbose_record(owner="alice", created_us=i) for i in range(3)]
    for record in records:  # as version 1 stored them: no basic_view, no schema document
        old = {**record.to_document(), "_id": record.id, "name": record.name,
               "tag_pairs": [{"k": k, "v": v} for k, v in sorted(record.tags.items())]}
        del old["id"]
        client[name][mongo.COLLECTION].insert_one(old)

    database = MongoTaskDatabase(client, name)
    try:
        assert database.query(TaskQuery(limit=10)) == records[::-1]
        for record in records:
            assert_views_are_fresh_renders(database, record)
            assert database.phase_and_size(record.id) == (record.phase, len(view_json(record, View.BASIC)))
        assert database.view_page(TaskQuery(limit=10, tags={"k": "v"}), View.BASIC) == view_page_of(
            records[::-1], 10, View.BASIC)
    finally:
        database.close()
    assert client[name][mongo.SCHEMA_COLLECTION].find_one({"_id": mongo.COLLECTION})["version"] == mongo.SCHEMA_VERSION


def test_mongodb_says_a_document_without_its_view_length_is_too_large_to_cancel_at_once(mongo_database):
    client, name = mongo_database
    database = MongoTaskDatabase(client, name)
    try:
        database.insert(record := task_record(phase=Phase.RUNNING))
        client[name][mongo.COLLECTION].update_one({"_id": record.id}, {"$unset": {"basic_view_chars": ""}})

        phase, size = database.phase_and_size(record.id)
        assert phase is Phase.RUNNING and size > DIRECT_CANCEL_MAX_CHARS
        assert database.compare_and_set(record.with_phase(Phase.CANCELING, "cancel"), expected_version=0)
        assert database.phase_and_size(record.id)[1] == len(view_json(database.get(record.id), View.BASIC))
    finally:
        database.close()


def test_mongodb_refuses_a_newer_schema(mongo_database):
    client, name = mongo_database
    client[name][mongo.SCHEMA_COLLECTION].insert_one({"_id": mongo.COLLECTION, "version": mongo.SCHEMA_VERSION + 1})

    with pytest.raises(DatabaseUnavailable, match="newer"):
        MongoTaskDatabase(client, name)


# -- SQLite only ------------------------------------------------------------------------------


def test_sqlite_data_survives_closing_and_reopening(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    database = SqliteTaskDatabase(path)
    record = task_record(tags={"k": "v"})
    database.insert(record)
    moved = record.with_phase(Phase.PREFLIGHT, "claimed")
    assert database.compare_and_set(moved, expected_version=0)
    database.close()

    reopened = SqliteTaskDatabase(path)
    try:
        assert reopened.get(record.id) == moved
        assert ids(reopened.query(TaskQuery(limit=5, tags={"k": "v"}))) == [record.id]
        assert not reopened.compare_and_set(moved.copy(), expected_version=0)
    finally:
        reopened.close()


def test_sqlite_uses_wal_and_records_its_schema_version(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    SqliteTaskDatabase(path).close()

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_sqlite_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    SqliteTaskDatabase(path).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(DatabaseUnavailable, match="newer"):
        SqliteTaskDatabase(path)


def _race_compare_and_set(path, task_id, worker, barrier, results):
    database = SqliteTaskDatabase(path)
    record = database.get(task_id)
    barrier.wait()
    moved = record.with_phase(Phase.PREFLIGHT, f"claimed by {worker}")
    results.put((worker, database.compare_and_set(moved, expected_version=0)))
    database.close()


def _insert_many(path, worker, count, barrier, results):
    barrier.wait()  # every process opens the brand-new file at once
    database = SqliteTaskDatabase(path)
    for i in range(count):
        database.insert(task_record(f"w{worker}-{i:03d}", created_us=i))
    results.put((worker, count))
    database.close()


def _run_processes(target, args_of_worker, workers: int) -> dict:
    """Run `target(*args_of_worker(n), barrier, results)` in `workers` spawned processes, all
    released at once by the barrier; returns {worker: outcome} from what they put in results."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*args_of_worker(worker), barrier, results))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return dict(results.get(timeout=5) for _ in processes)


def test_sqlite_compare_and_set_race_between_processes_has_one_winner(tmp_path):
    path = tmp_path / "tasks.sqlite3"
    database = SqliteTaskDatabase(path)
    record = task_record()
    database.insert(record)
    workers = 6

    outcomes = _run_processes(_race_compare_and_set, lambda w: (path, record.id, w), workers)

    winners = [worker for worker, won in outcomes.items() if won]
    assert len(outcomes) == workers and len(winners) == 1
    stored = database.get(record.id)
    assert stored.version == 1
    assert stored.history[-1]["reason"] == f"claimed by {winners[0]}"
    database.close()


def test_sqlite_concurrent_inserts_from_processes_all_land(tmp_path):
    path = tmp_path / "new" / "tasks.sqlite3"
    workers, each = 4, 50

    assert _run_processes(_insert_many, lambda w: (path, w, each), workers) == {
        w: each for w in range(workers)
    }

    database = SqliteTaskDatabase(path)
    landed = all_pages(database, 64)
    assert sorted(landed) == sorted(f"w{w}-{i:03d}" for w in range(workers) for i in range(each))
    database.close()


def test_sqlite_compare_and_set_race_between_threads_has_one_winner(tmp_path):
    database = SqliteTaskDatabase(tmp_path / "tasks.sqlite3")
    record = task_record()
    database.insert(record)
    workers = 8
    barrier = threading.Barrier(workers)

    def attempt(worker):
        barrier.wait()
        return database.compare_and_set(record.with_phase(Phase.PREFLIGHT, f"by {worker}"), 0)

    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(attempt, range(workers)))

    assert outcomes.count(True) == 1
    assert database.get(record.id).version == 1
    database.close()


# -- opening a database from settings ---------------------------------------------------------


def test_open_database_defaults_to_sqlite_in_the_work_dir(tmp_path):
    settings = load_settings(
        overrides={"database.kind": "sqlite", "database.sqlite_path": "", "work_dir": str(tmp_path / "work")}
    )

    database = open_database(settings)
    try:
        assert isinstance(database, SqliteTaskDatabase)
        assert (tmp_path / "work" / "tes-cts.sqlite3").exists()
    finally:
        database.close()


def test_open_database_names_an_unreachable_mongodb_without_its_password(monkeypatch):
    monkeypatch.setattr(mongo, "SERVER_SELECTION_TIMEOUT_MS", 200)
    settings = load_settings(
        overrides={
            "database.kind": "mongodb",
            "database.mongodb_uri": "mongodb://tes:s3cret@127.0.0.1:9/?authSource=admin",
        }
    )

    with pytest.raises(DatabaseUnavailable) as raised:
        open_database(settings)

    assert "mongodb://tes:***@127.0.0.1:9/" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_mongodb_uris_are_shown_without_passwords():
    assert without_password("mongodb://u:p@h1:1,h2:2/db") == "mongodb://u:***@h1:1,h2:2/db"
    assert without_password("mongodb+srv://u:p%40ss@cluster.example") == "mongodb+srv://u:***@cluster.example"
    assert without_password("mongodb://user@host") == "mongodb://user@host"
    assert without_password("mongodb://host:27017") == "mongodb://host:27017"


def test_oldest_first_paging_returns_every_task_exactly_once_in_creation_order(any_db):
    records = [task_record(f"t{i:02d}", created_us=100 + i // 3) for i in range(25)]
    for record in records:
        any_db.insert(record)

    oldest_first = newest_first(records)[::-1]
    for page_size in (1, 4, 25, 30):
        assert all_pages(any_db, page_size, oldest_first=True) == oldest_first
    assert ids(any_db.query(TaskQuery(limit=2, oldest_first=True))) == oldest_first[:2]


def test_summaries_match_the_full_query(any_db):
    records = [task_record(f"s{i:02d}", created_us=100 + i // 2, tags={"k": str(i % 3)}) for i in range(9)]
    for record in records:
        any_db.insert(record)
    for query in (TaskQuery(limit=20), TaskQuery(limit=4, tags={"k": "1"}), TaskQuery(limit=3, oldest_first=True),
                  TaskQuery(limit=5, after=Cursor(103, "s06"))):
        full = any_db.query(query)
        assert any_db.query_summaries(query) == [TaskSummary(r.id, r.created_us, r.state) for r in full]
