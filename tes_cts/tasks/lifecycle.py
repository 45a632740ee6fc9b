"""Moving a task between phases: checked against the transition table, stored by compare-and-set."""

from __future__ import annotations

from typing import Callable, Sequence

from ..database.base import TaskDatabase
from ..metrics import record as metrics
from ..model.record import TaskRecord, history_entry
from ..model.states import Phase, check_transition

Change = Callable[[TaskRecord], None]
# One step of a change: the phase it moves to (None: no phase change), why, and what it sets.
Step = tuple[Phase | None, str, Change | None]


def move(store: TaskDatabase, record: TaskRecord, phase: Phase, reason: str, change: Change | None = None) -> TaskRecord | None:
    """Move `record` to `phase`, recording why; returns the stored record, or None if the task
    changed since `record` was read (the caller re-reads and decides again).

    Raises IllegalTransition if the table does not allow the move.
    """
    return move_through(store, record, [(phase, reason, change)])


def update(store: TaskDatabase, record: TaskRecord, change: Change) -> TaskRecord | None:
    """Store a change that is not a phase change (a lease, a note in the logs), by the same
    compare-and-set; returns None if the task changed since `record` was read."""
    return move_through(store, record, [(None, "", change)])


def move_through(store: TaskDatabase, record: TaskRecord, steps: Sequence[Step]) -> TaskRecord | None:
    """Every step in order, each move checked against the table and recorded in the history,
    all stored by one compare-and-set: a task whose worker raced through several phases since
    the last look still passes every one of them, for the price of one write."""
    changed = record.copy()
    for phase, reason, change in steps:
        if phase is not None:
            check_transition(record.id, changed.phase, phase)
            changed.phase = phase
            changed.history.append(history_entry(phase, reason))
        if change is not None:
            change(changed)
    if store.compare_and_set(changed, expected_version=record.version):
        metrics.transitions(phase for phase, _, _ in steps if phase is not None)  # the one place every move passes
        return changed
    return None
