"""The shared store for more than one host: one MongoDB collection, one document per task.

A document is `TaskRecord.to_document()` with the id as `_id`, plus fields kept only for queries
and views, left out when a record is read: `name`, `tag_pairs`, `basic_view` (the BASIC view as
`view_json` renders it, rewritten with every write) and `basic_view_chars` (its length, what a
cancel reads to choose between moving the task at once and leaving it to the poller). Tags are
stored as [{k, v}] because tag keys may contain `.` or `$`, which a dotted-path query on the
`task.tags` map would misread. Storing such keys inside `task` needs MongoDB 5.0 or later.

Every filter has an index. Those on a tag pair, a tag key, the state and the owner go on with the
creation time and id, so their matches come newest first and a page stops early (the tag indexes
are multikey on `tag_pairs`; the fields after it are scalars, which an index can sort by). The
name index serves an anchored regex of the escaped prefix as a range; MongoDB's planner decides
between it and a walk newest first. Opening the collection creates missing indexes, drops the one
version 1 made for tags, and gives the documents version 1 wrote their `basic_view`.

Cancels asked for and not yet applied by the poller are documents {_id: task id, requested_us} of
the collection `cancel_requests`, indexed oldest first. Neither it nor `basic_view_chars` changes
SCHEMA_VERSION: a new collection is created by its first write, and a document written before
`basic_view_chars` existed counts as too large to cancel at once until its next write.

A task's events (its state changes) are published from a mark in its document, as
`mongo_events.py` describes; version 3 counts the history of older documents as published.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from ..clock import now_us
from ..model.events import EventQuery, TaskEvent
from ..model.query import Cursor, StoredView, TaskQuery, TaskSummary, ViewPage, tag_pairs
from ..model.record import TaskRecord
from ..model.states import Phase, TesState
from ..model.views import View, minimal_json, view_json
from ..urls import without_password
from .base import DatabaseUnavailable, DuplicateTaskId, TaskDatabase, check_stored, unavailable_on
from .mongo_events import PENDING, PUBLISHED, MongoEvents, mark_all_published, mark_pending

COLLECTION = "tasks"
CANCEL_REQUESTS = "cancel_requests"
# One document {_id: COLLECTION, version}: the version of the documents' form. 2 added basic_view,
# 3 the events' fields (mongo_events.py).
SCHEMA_COLLECTION = "schema"
SCHEMA_VERSION = 3
# Also the longest any operation waits for a reachable server: fail fast, let clients retry.
SERVER_SELECTION_TIMEOUT_MS = 5000

_NEWEST_FIRST = [("created_us", DESCENDING), ("_id", DESCENDING)]
_OLDEST_FIRST = [("created_us", ASCENDING), ("_id", ASCENDING)]
INDEXES = [
    [("owner", ASCENDING), *_NEWEST_FIRST],
    [("state", ASCENDING), *_NEWEST_FIRST],
    _NEWEST_FIRST,
    [("tag_pairs.k", ASCENDING), ("tag_pairs.v", ASCENDING), *_NEWEST_FIRST],
    [("tag_pairs.k", ASCENDING), *_NEWEST_FIRST],
    [("name", ASCENDING), ("created_us", ASCENDING), ("_id", ASCENDING)],
]
_OBSOLETE_INDEXES = ["tag_pairs.k_1_tag_pairs.v_1"]
_QUERY_ONLY_FIELDS = {"name": 0, "tag_pairs": 0, "basic_view": 0, "basic_view_chars": 0, PENDING: 0, PUBLISHED: 0}
_REQUESTS_OLDEST_FIRST = [("requested_us", ASCENDING), ("_id", ASCENDING)]
# The length phase_and_size says of a document written before basic_view_chars: above any real one.
_UNMEASURED_CHARS = 1 << 62
_VIEW_FIELDS = {View.MINIMAL: {"created_us": 1, "state": 1}, View.BASIC: {"created_us": 1, "basic_view": 1}}


class MongoTaskDatabase(TaskDatabase):
    """Give it a connected client (also a mongomock one), or a URI for a client of its own."""

    def __init__(self, client_or_uri, database_name: str):
        self._owns_client = isinstance(client_or_uri, str)
        self._where = f"MongoDB at {without_password(client_or_uri) if self._owns_client else 'the given client'}"
        self._client = None
        try:
            self._client = (
                MongoClient(client_or_uri, serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS)
                if self._owns_client
                else client_or_uri
            )
            self._client.admin.command("ping")
            database = self._client[database_name]
            self._tasks = database[COLLECTION]
            self._cancel_requests = database[CANCEL_REQUESTS]
            _create_indexes(self._tasks)
            self._cancel_requests.create_index(_REQUESTS_OLDEST_FIRST)
            self._events = MongoEvents(database)
            _upgrade(database[SCHEMA_COLLECTION], self._tasks)
        except DatabaseUnavailable:
            self.close()
            raise
        except PyMongoError as exc:
            self.close()
            # from None: the message already says what failed, and the cause's repr could
            # carry the URI.
            raise DatabaseUnavailable(
                f"cannot use {self._where} (database {database_name!r}): {exc}"
            ) from None

    def insert(self, record: TaskRecord) -> None:
        with self._unavailable():
            try:
                self._tasks.insert_one({**mark_pending(_document(record, record.version)), PUBLISHED: 0})
            except DuplicateKeyError:
                raise DuplicateTaskId(record.id) from None

    def get(self, task_id: str, owner: str | None = None) -> TaskRecord | None:
        with self._unavailable():
            doc = self._tasks.find_one(_by_id(task_id, owner), _QUERY_ONLY_FIELDS)
            return _record(doc) if doc else None

    def get_view(self, task_id: str, view: View, owner: str | None = None) -> StoredView | None:
        check_stored(view)
        with self._unavailable():
            doc = self._tasks.find_one(_by_id(task_id, owner), _VIEW_FIELDS[view])
        return StoredView(_view_text(doc, view)) if doc else None

    def phase_and_size(self, task_id: str, owner: str | None = None) -> tuple[Phase, int] | None:
        with self._unavailable():
            doc = self._tasks.find_one(_by_id(task_id, owner), {"phase": 1, "basic_view_chars": 1})
        return (Phase(doc["phase"]), doc.get("basic_view_chars", _UNMEASURED_CHARS)) if doc else None

    def query(self, query: TaskQuery) -> list[TaskRecord]:
        return [_record(doc) for doc in self._find(query, _QUERY_ONLY_FIELDS)]

    def query_summaries(self, query: TaskQuery) -> list[TaskSummary]:
        return [TaskSummary(doc["_id"], doc["created_us"], TesState(doc["state"]))
                for doc in self._find(query, {"_id": 1, "created_us": 1, "state": 1})]

    def view_page(self, query: TaskQuery, view: View) -> ViewPage:
        check_stored(view)
        docs = self._find(replace(query, limit=query.limit + 1), _VIEW_FIELDS[view])
        page = docs[:max(query.limit, 0)]
        more = len(docs) > len(page) and page
        return ViewPage(",".join(_view_text(doc, view) for doc in page),
                        Cursor(page[-1]["created_us"], page[-1]["_id"]) if more else None)

    def _find(self, query: TaskQuery, projection: dict) -> list[dict]:
        with self._unavailable():
            if query.limit < 1:  # MongoDB reads limit 0 as "no limit"
                return []
            order = _OLDEST_FIRST if query.oldest_first else _NEWEST_FIRST
            return list(self._tasks.find(_filter(query), projection).sort(order).limit(query.limit))

    def compare_and_set(self, record: TaskRecord, expected_version: int) -> bool:
        with self._unavailable():
            # $set of every field, not a replacement: what the event publisher keeps stays.
            changed = mark_pending(_document(record, expected_version + 1))
            del changed["_id"]
            result = self._tasks.update_one({"_id": record.id, "version": expected_version}, {"$set": changed})
            if result.matched_count != 1:
                return False
            record.version = expected_version + 1
            return True

    def request_cancel(self, task_id: str) -> None:
        with self._unavailable():
            try:
                self._cancel_requests.update_one({"_id": task_id}, {"$setOnInsert": {"requested_us": now_us()}},
                                                 upsert=True)
            except DuplicateKeyError:  # a concurrent request inserted it first: it is pending
                pass

    def cancel_requests(self, limit: int) -> list[str]:
        with self._unavailable():
            if limit < 1:  # MongoDB reads limit 0 as "no limit"
                return []
            found = self._cancel_requests.find({}, {"_id": 1}).sort(_REQUESTS_OLDEST_FIRST).limit(limit)
            return [doc["_id"] for doc in found]

    def drop_cancel_request(self, task_id: str) -> None:
        with self._unavailable():
            self._cancel_requests.delete_one({"_id": task_id})

    def count_by_state(self, owner: str | None = None) -> dict[str, int]:
        # Answered from the index on (state, ...) or (owner, ...): MongoDB keeps no counts.
        with self._unavailable():
            matched = [] if owner is None else [{"$match": {"owner": owner}}]
            return {group["_id"]: group["tasks"] for group in
                    self._tasks.aggregate([*matched, {"$group": {"_id": "$state", "tasks": {"$sum": 1}}}])}

    def events(self, query: EventQuery) -> list[TaskEvent]:
        with self._unavailable():
            return self._events.query(query)

    def last_event_seq(self) -> int:
        with self._unavailable():
            return self._events.last_seq()

    def publish_events(self) -> int:
        with self._unavailable():
            return self._events.publish()

    def prune_events(self, before: str) -> int:
        with self._unavailable():
            return self._events.prune(before)

    def delivery(self, receiver: str) -> tuple[int | None, int]:
        with self._unavailable():
            return self._events.delivery(receiver)

    def record_delivery(self, receiver: str, seq: int, dead_letter: bool = False) -> None:
        with self._unavailable():
            self._events.record_delivery(receiver, seq, dead_letter)

    def _unavailable(self):
        # DuplicateKeyError is turned into DuplicateTaskId inside insert, before this sees it.
        return unavailable_on((PyMongoError,), self._where)

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()


def _document(record: TaskRecord, version: int) -> dict:
    doc = {**record.to_document(), "version": version}
    doc["_id"] = doc.pop("id")
    doc["name"] = record.name
    doc["tag_pairs"] = [{"k": key, "v": value} for key, value in tag_pairs(record)]
    doc["basic_view"] = view_json(record, View.BASIC)
    doc["basic_view_chars"] = len(doc["basic_view"])
    return doc


def _view_text(doc: dict, view: View) -> str:
    if view is View.BASIC:
        return doc["basic_view"]
    return minimal_json(doc["_id"], doc["state"])


def _create_indexes(tasks) -> None:
    for keys in INDEXES:
        tasks.create_index(keys)
    found = tasks.index_information()
    for name in _OBSOLETE_INDEXES:
        if name in found:
            tasks.drop_index(name)


def _upgrade(schema, tasks) -> None:
    found = (schema.find_one({"_id": COLLECTION}) or {}).get("version", 1)
    if found > SCHEMA_VERSION:
        raise DatabaseUnavailable(f"the MongoDB collection {COLLECTION!r} has schema version {found}, "
                                  f"newer than this program's {SCHEMA_VERSION}")
    if found < 2:
        _add_missing_views(tasks)
    if found < 3:
        mark_all_published(tasks)
    if found < SCHEMA_VERSION:
        schema.update_one({"_id": COLLECTION}, {"$set": {"version": SCHEMA_VERSION}}, upsert=True)


def _add_missing_views(tasks) -> None:
    """Give each document version 1 stored its `basic_view`. A write since the read (which stores
    the view itself) wins: the view is set only on the version it was rendered from."""
    for doc in tasks.find({"basic_view": {"$exists": False}}, _QUERY_ONLY_FIELDS):
        record = _record(doc)
        view = view_json(record, View.BASIC)
        tasks.update_one({"_id": record.id, "version": record.version, "basic_view": {"$exists": False}},
                         {"$set": {"basic_view": view, "basic_view_chars": len(view)}})


def _record(doc: dict) -> TaskRecord:
    doc["id"] = doc.pop("_id")
    return TaskRecord.from_document(doc)


def _filter(query: TaskQuery) -> dict:
    found: dict = {}
    if query.owner is not None:
        found["owner"] = query.owner
    if query.state is not None:
        found["state"] = query.state.value
    if query.name_prefix:
        found["name"] = {"$regex": "^" + re.escape(query.name_prefix)}
    if query.tags:
        # An empty value asks only that the key exists.
        found["tag_pairs"] = {
            "$all": [
                {"$elemMatch": {"k": key, "v": value} if value else {"k": key}}
                for key, value in query.tags.items()
            ]
        }
    if query.after is not None:
        # Newest first: created_us < c, or created_us == c and _id < id (mirrored for oldest
        # first); the inclusive bound gives the index its range.
        after = query.after
        inclusive, strict = ("$gte", "$gt") if query.oldest_first else ("$lte", "$lt")
        found["created_us"] = {inclusive: after.created_us}
        found["$or"] = [{"created_us": {strict: after.created_us}}, {"_id": {strict: after.task_id}}]
    return found


def _by_id(task_id: str, owner: str | None) -> dict:
    """The filter of one task's lookup, by its id and, if given, its owner."""
    return {"_id": task_id} if owner is None else {"_id": task_id, "owner": owner}
