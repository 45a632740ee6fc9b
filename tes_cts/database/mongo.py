"""The shared store for more than one host: one MongoDB collection, one document per task.

A document is `TaskRecord.to_document()` with the id as `_id`, plus two fields kept only for
queries: `name` and `tag_pairs`. Tags are stored as [{k, v}] because tag keys may contain `.` or
`$`, which a dotted-path query on the `task.tags` map would misread. Storing such keys inside
`task` needs MongoDB 5.0 or later.
"""

from __future__ import annotations

import re

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from ..model.query import TaskQuery, TaskSummary, tag_pairs
from ..model.record import TaskRecord
from ..model.states import TesState
from ..urls import without_password
from .base import DatabaseUnavailable, DuplicateTaskId, TaskDatabase, unavailable_on

COLLECTION = "tasks"
# Also the longest any operation waits for a reachable server: fail fast, let clients retry.
SERVER_SELECTION_TIMEOUT_MS = 5000

_NEWEST_FIRST = [("created_us", DESCENDING), ("_id", DESCENDING)]
_OLDEST_FIRST = [("created_us", ASCENDING), ("_id", ASCENDING)]
_INDEXES = [
    [("owner", ASCENDING), *_NEWEST_FIRST],
    [("state", ASCENDING), *_NEWEST_FIRST],
    _NEWEST_FIRST,
    [("tag_pairs.k", ASCENDING), ("tag_pairs.v", ASCENDING)],
]
_QUERY_ONLY_FIELDS = {"name": 0, "tag_pairs": 0}


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
            self._tasks = self._client[database_name][COLLECTION]
            for keys in _INDEXES:
                self._tasks.create_index(keys)
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
                self._tasks.insert_one(_document(record, record.version))
            except DuplicateKeyError:
                raise DuplicateTaskId(record.id) from None

    def get(self, task_id: str) -> TaskRecord | None:
        with self._unavailable():
            doc = self._tasks.find_one({"_id": task_id}, _QUERY_ONLY_FIELDS)
            return _record(doc) if doc else None

    def query(self, query: TaskQuery) -> list[TaskRecord]:
        return [_record(doc) for doc in self._find(query, _QUERY_ONLY_FIELDS)]

    def query_summaries(self, query: TaskQuery) -> list[TaskSummary]:
        return [TaskSummary(doc["_id"], doc["created_us"], TesState(doc["state"]))
                for doc in self._find(query, {"_id": 1, "created_us": 1, "state": 1})]

    def _find(self, query: TaskQuery, projection: dict) -> list[dict]:
        with self._unavailable():
            if query.limit < 1:  # MongoDB reads limit 0 as "no limit"
                return []
            order = _OLDEST_FIRST if query.oldest_first else _NEWEST_FIRST
            return list(self._tasks.find(_filter(query), projection).sort(order).limit(query.limit))

    def compare_and_set(self, record: TaskRecord, expected_version: int) -> bool:
        with self._unavailable():
            result = self._tasks.replace_one(
                {"_id": record.id, "version": expected_version},
                _document(record, expected_version + 1),
            )
            if result.matched_count != 1:
                return False
            record.version = expected_version + 1
            return True

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
    return doc


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
