"""The transition table and the compare-and-set moves built on it."""

from __future__ import annotations

import pytest

from tes_cts.model.record import TaskRecord
from tes_cts.model.states import (
    STATE_OF_PHASE,
    TERMINAL_PHASES,
    TRANSITIONS,
    IllegalTransition,
    Phase,
    TesState,
    check_transition,
)
from tes_cts.tasks.lifecycle import move

from .builders import task_record


def test_every_phase_has_a_state_and_a_row():
    assert set(STATE_OF_PHASE) == set(Phase) == set(TRANSITIONS)


def test_terminal_phases_go_nowhere_and_every_other_phase_can_end():
    for phase in Phase:
        if phase in TERMINAL_PHASES:
            assert TRANSITIONS[phase] == frozenset()
        else:
            assert TRANSITIONS[phase] & (TERMINAL_PHASES | {Phase.CANCELING}), phase


def test_every_non_terminal_phase_reaches_a_terminal_one():
    for start in set(Phase) - TERMINAL_PHASES:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL_PHASES, start


def test_the_happy_path_passes_every_tes_state_in_order():
    path = [Phase.CREATED, Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING,
            Phase.STAGING_OUT, Phase.COMPLETE]
    for current, target in zip(path, path[1:]):
        check_transition("t", current, target)
    states = [STATE_OF_PHASE[p] for p in path]
    assert list(dict.fromkeys(states)) == [TesState.QUEUED, TesState.INITIALIZING, TesState.RUNNING, TesState.COMPLETE]


@pytest.mark.parametrize("current,target", [
    (Phase.CREATED, Phase.COMPLETE),       # a state may not be skipped
    (Phase.CREATED, Phase.RUNNING),
    (Phase.SUBMITTED, Phase.COMPLETE),
    (Phase.RUNNING, Phase.EXECUTOR_ERROR),  # outputs are staged even after an executor failed
    (Phase.CANCELING, Phase.COMPLETE),      # a cancel, once asked, ends in CANCELED
    (Phase.COMPLETE, Phase.CANCELING),
    (Phase.CANCELED, Phase.CREATED),
    (Phase.CREATED, Phase.CANCELING),       # nothing to stop yet: CANCELED directly
])
def test_illegal_moves_are_refused(current, target):
    with pytest.raises(IllegalTransition, match=f"{current} -> {target}"):
        check_transition("t", current, target)


def stored(db) -> TaskRecord:
    record = task_record("t1", created_us=1, executors=[])
    db.insert(record)
    return record


def test_move_appends_history_and_bumps_the_version(sqlite_db):
    record = stored(sqlite_db)
    moved = move(sqlite_db, record, Phase.PREFLIGHT, "claimed by poller p1")
    assert moved.version == record.version + 1
    again = sqlite_db.get("t1")
    assert again.phase is Phase.PREFLIGHT
    assert [(h["state"], h["phase"], h["reason"]) for h in again.history] == [
        ("QUEUED", "created", "task accepted"), ("QUEUED", "preflight", "claimed by poller p1")]
    assert all(h["time"].endswith("Z") for h in again.history)


def test_a_move_from_a_stale_read_stores_nothing(sqlite_db):
    record = stored(sqlite_db)
    assert move(sqlite_db, record, Phase.PREFLIGHT, "first") is not None
    assert move(sqlite_db, record, Phase.CANCELED, "second, from the stale read") is None
    assert sqlite_db.get("t1").phase is Phase.PREFLIGHT


def test_an_illegal_move_raises_and_stores_nothing(sqlite_db):
    record = stored(sqlite_db)
    with pytest.raises(IllegalTransition):
        move(sqlite_db, record, Phase.COMPLETE, "skip everything")
    assert sqlite_db.get("t1").version == record.version


def test_the_change_callback_is_stored_with_the_move(sqlite_db):
    record = stored(sqlite_db)
    move(sqlite_db, record, Phase.PREFLIGHT, "claimed", lambda r: setattr(r, "lease", {"owner": "p1", "expires_us": 9}))
    assert sqlite_db.get("t1").lease == {"owner": "p1", "expires_us": 9}
    assert record.lease is None  # the caller's copy is untouched
