"""Task events on MongoDB, which has no triggers and, without a replica set, no transactions.

A write of a task marks its document `events_pending` in the same document write (atomic), and
`events_published` counts the history entries already published. `publish` (the poller, every
cycle) copies each marked document's new entries into `task_events`, numbered from a counter,
then clears the mark if no write came since. An entry's `_id` is `<task>:<index>`, so a publish
cut short and done again never makes an event twice. Only one process publishes at a time (a
lease), so the numbers become visible in order: a reader that saw event N has seen every
event before it.
"""

from __future__ import annotations

import secrets
import time

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..model.events import EventQuery, TaskEvent

EVENTS = "task_events"
COUNTERS = "event_counters"   # {_id: "seq", seq}, {_id: "publisher", holder, until}
DELIVERIES = "event_deliveries"
PENDING = "events_pending"
PUBLISHED = "events_published"
PUBLISHER_LEASE_S = 30.0
PUBLISH_BATCH = 1000
_FIELDS = ("task_id", "owner", "state", "phase", "reason", "time")


class MongoEvents:
    def __init__(self, database):
        self._tasks = database["tasks"]
        self._events = database[EVENTS]
        self._counters = database[COUNTERS]
        self._deliveries = database[DELIVERIES]
        self._me = secrets.token_hex(8)
        self._events.create_index([("seq", ASCENDING)], unique=True)
        self._events.create_index([("owner", ASCENDING), ("seq", ASCENDING)])
        self._events.create_index([("time", ASCENDING)])
        self._tasks.create_index([(PENDING, ASCENDING)], sparse=True)

    def query(self, query: EventQuery) -> list[TaskEvent]:
        if query.limit < 1:  # MongoDB reads limit 0 as "no limit"
            return []
        found: dict = {"seq": {"$gt": query.after}}
        if query.owner is not None:
            found["owner"] = query.owner
        if query.task_id is not None:
            found["task_id"] = query.task_id
        if query.states:
            found["state"] = {"$in": sorted(query.states)}
        docs = self._events.find(found, {"_id": 0}).sort("seq", ASCENDING).limit(query.limit)
        return [TaskEvent(doc["seq"], *(doc[name] for name in _FIELDS)) for doc in docs]

    def last_seq(self) -> int:
        newest = self._events.find_one({}, {"seq": 1}, sort=[("seq", -1)])
        return newest["seq"] if newest else 0

    def publish(self) -> int:
        if not self._hold_lease():
            return 0
        published = 0
        for doc in self._tasks.find({PENDING: True}, {"history": 1, PUBLISHED: 1, "owner": 1, "version": 1}).limit(PUBLISH_BATCH):
            history, done = doc["history"], doc.get(PUBLISHED, 0)
            new = history[done:]
            if new:
                last = self._counters.find_one_and_update({"_id": "seq"}, {"$inc": {"seq": len(new)}}, upsert=True,
                                                          return_document=ReturnDocument.AFTER)["seq"]
                for offset, entry in enumerate(new):
                    published += self._insert(doc, done + offset, last - len(new) + 1 + offset, entry)
            marked = self._tasks.update_one({"_id": doc["_id"], "version": doc["version"]},
                                            {"$set": {PUBLISHED: len(history)}, "$unset": {PENDING: ""}})
            if marked.matched_count == 0:  # written since: published this far, the rest next time
                self._tasks.update_one({"_id": doc["_id"]}, {"$max": {PUBLISHED: len(history)}})
        return published

    def _insert(self, doc: dict, index: int, seq: int, entry: dict) -> int:
        try:
            self._events.insert_one({"_id": f"{doc['_id']}:{index}", "seq": seq, "task_id": doc["_id"],
                                     "owner": doc["owner"], **{name: entry[name] for name in _FIELDS[2:]}})
        except DuplicateKeyError:  # published by a run that stopped before it cleared the mark
            return 0
        return 1

    def _hold_lease(self) -> bool:
        now = time.time()
        try:
            self._counters.find_one_and_update(
                {"_id": "publisher", "$or": [{"until": {"$lt": now}}, {"holder": self._me}]},
                {"$set": {"holder": self._me, "until": now + PUBLISHER_LEASE_S}}, upsert=True)
        except DuplicateKeyError:  # another process holds it
            return False
        return True

    def prune(self, before: str) -> int:
        return self._events.delete_many({"time": {"$lt": before}, "seq": {"$lt": self.last_seq()}}).deleted_count

    def delivery(self, receiver: str) -> tuple[int | None, int]:
        doc = self._deliveries.find_one({"_id": receiver})
        return (doc["delivered_seq"], doc["dead_letters"]) if doc else (None, 0)

    def record_delivery(self, receiver: str, seq: int, dead_letter: bool) -> None:
        self._deliveries.update_one({"_id": receiver}, {"$set": {"delivered_seq": seq},
                                                        "$inc": {"dead_letters": int(dead_letter)}}, upsert=True)


def mark_pending(doc: dict) -> dict:
    """A task document as a write stores it: its events to be published."""
    return {**doc, PENDING: True}


def mark_all_published(tasks) -> None:
    """Documents written before events existed: their history counts as published (no events
    are made up for old changes). A write since the read keeps its mark and publishes the rest."""
    for doc in tasks.find({PUBLISHED: {"$exists": False}}, {"history": 1}):
        tasks.update_one({"_id": doc["_id"], PUBLISHED: {"$exists": False}}, {"$set": {PUBLISHED: len(doc["history"])}})
