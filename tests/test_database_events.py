"""The events contract on every TaskDatabase (SQLite, mongomock, a real MongoDB when
TES_CTS_TEST_MONGO_URI is set): one event per history entry a write adds, in order, numbered
increasingly; filters; pruning; webhook deliveries; and, on MongoDB, a publish done twice making
no event twice and a write racing the publisher losing nothing."""

from __future__ import annotations

import pytest

from tes_cts.database import mongo_events
from tes_cts.database.mongo import MongoTaskDatabase
from tes_cts.model.events import EventQuery, TaskEvent
from tes_cts.model.states import Phase
from tes_cts.tasks.lifecycle import move_through, update

from .builders import task_record
from .test_database_contract import KINDS, mongo_database, open_kind  # noqa: F401 - fixtures


@pytest.fixture(params=KINDS)
def any_db(request, tmp_path):
    return open_kind(request.param, request, tmp_path)


def published(db, query: EventQuery = EventQuery()) -> list[TaskEvent]:
    db.publish_events()  # what the poller does every cycle (SQLite's writes published already)
    return db.events(query)


def walk(db, record, *phases: Phase):
    """Every phase in one write, as the poller records a worker that raced ahead."""
    return move_through(db, record, [(phase, f"to {phase.value}", None) for phase in phases])


def test_every_history_entry_a_write_adds_is_one_event_in_order(any_db):
    record = task_record(owner="alice")
    any_db.insert(record)
    moved = walk(any_db, any_db.get(record.id), Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN)
    update(any_db, moved, lambda r: r.logs.append({"system_logs": ["a note, no state change"]}))
    events = published(any_db)
    assert [(e.task_id, e.owner, e.state, e.phase, e.reason) for e in events] == [
        (record.id, "alice", "QUEUED", "created", "task accepted"),
        (record.id, "alice", "QUEUED", "preflight", "to preflight"),
        (record.id, "alice", "INITIALIZING", "submitted", "to submitted"),
        (record.id, "alice", "INITIALIZING", "staging_in", "to staging_in")]
    assert [e.time for e in events] == [h["time"] for h in any_db.get(record.id).history]
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4 and any_db.last_event_seq() == seqs[-1]
    assert events[0].data() == {"id": record.id, "state": "QUEUED", "phase": "created", "reason": "task accepted",
                                "time": events[0].time}


def test_a_lost_compare_and_set_publishes_nothing(any_db):
    record = task_record()
    any_db.insert(record)
    stale = any_db.get(record.id)
    walk(any_db, any_db.get(record.id), Phase.PREFLIGHT)
    assert walk(any_db, stale, Phase.CANCELED) is None
    assert [e.phase for e in published(any_db)] == ["created", "preflight"]


def test_events_filter_by_what_comes_after_owner_task_and_state(any_db):
    first, second = task_record(owner="alice"), task_record(owner="bob")
    for record in (first, second):
        any_db.insert(record)
        walk(any_db, any_db.get(record.id), Phase.PREFLIGHT, Phase.SUBMITTED)
    everything = published(any_db)
    assert len(everything) == 6
    assert any_db.events(EventQuery(after=everything[2].seq)) == everything[3:]
    assert any_db.events(EventQuery(limit=2)) == everything[:2]
    assert any_db.events(EventQuery(owner="bob")) == [e for e in everything if e.owner == "bob"]
    assert any_db.events(EventQuery(task_id=first.id, states=frozenset({"INITIALIZING"}))) == [everything[2]]
    assert any_db.events(EventQuery(limit=0)) == []


def test_an_empty_store_has_no_events(any_db):
    assert published(any_db) == [] and any_db.last_event_seq() == 0


def test_old_events_are_pruned_by_time_and_numbers_are_not_given_again(any_db):
    record = task_record()
    any_db.insert(record)
    walk(any_db, any_db.get(record.id), Phase.PREFLIGHT)
    old, new = published(any_db)
    assert any_db.prune_events(new.time) == 1
    assert any_db.events(EventQuery()) == [new]
    walk(any_db, any_db.get(record.id), Phase.SYSTEM_ERROR)
    [newest] = published(any_db, EventQuery(after=new.seq))
    assert newest.seq > new.seq
    assert any_db.prune_events("9999-12-31T00:00:00.000000Z") == 1  # all but the newest
    assert any_db.events(EventQuery()) == [newest]


def test_deliveries_remember_how_far_and_count_dead_letters(any_db):
    assert any_db.delivery("hook") == (None, 0)
    any_db.record_delivery("hook", 4)
    any_db.record_delivery("hook", 5, dead_letter=True)
    any_db.record_delivery("other", 2)
    assert any_db.delivery("hook") == (5, 1) and any_db.delivery("other") == (2, 0)


def test_mongodb_publishing_again_after_a_crash_makes_no_event_twice(mongo_database):
    client, name = mongo_database
    db = MongoTaskDatabase(client, name)
    record = task_record()
    db.insert(record)
    walk(db, db.get(record.id), Phase.PREFLIGHT)
    events = published(db)
    # A publisher that died after copying the events, before clearing the mark:
    client[name]["tasks"].update_one({"_id": record.id}, {"$set": {mongo_events.PENDING: True, mongo_events.PUBLISHED: 0}})
    assert db.publish_events() == 0 and db.events(EventQuery()) == events


def test_mongodb_a_write_between_the_publishers_read_and_its_mark_is_published_next(mongo_database, monkeypatch):
    client, name = mongo_database
    db = MongoTaskDatabase(client, name)
    record = task_record()
    db.insert(record)
    real_insert = mongo_events.MongoEvents._insert

    def insert_then_a_write_comes(self, doc, index, seq, entry):
        walk(db, db.get(record.id), Phase.PREFLIGHT)  # the poller's write, while the publisher works
        monkeypatch.setattr(mongo_events.MongoEvents, "_insert", real_insert)
        return real_insert(self, doc, index, seq, entry)

    monkeypatch.setattr(mongo_events.MongoEvents, "_insert", insert_then_a_write_comes)
    assert [e.phase for e in published(db)] == ["created"]
    assert [e.phase for e in published(db)] == ["created", "preflight"]


def test_mongodb_one_publisher_at_a_time(mongo_database):
    client, name = mongo_database
    first, second = MongoTaskDatabase(client, name), MongoTaskDatabase(client, name)
    first.insert(task_record())
    assert first.publish_events() == 1
    second.insert(task_record())
    assert second.publish_events() == 0  # the first one's lease holds
    assert first.publish_events() == 1


def test_counts_by_state_of_everyone_and_of_one_owner_follow_every_write(any_db):
    alices = [task_record(owner="alice") for _ in range(3)]
    for record in (*alices, task_record(owner="bob b")):
        any_db.insert(record)
    walk(any_db, any_db.get(alices[0].id), Phase.PREFLIGHT, Phase.SUBMITTED)
    walk(any_db, any_db.get(alices[1].id), Phase.CANCELED)
    assert any_db.count_by_state() == {"QUEUED": 2, "INITIALIZING": 1, "CANCELED": 1}
    assert any_db.count_by_state("alice") == {"QUEUED": 1, "INITIALIZING": 1, "CANCELED": 1}
    assert any_db.count_by_state("bob b") == {"QUEUED": 1}
    assert any_db.count_by_state("nobody") == {}
