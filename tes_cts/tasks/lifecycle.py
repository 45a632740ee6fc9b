"""Moving a task between phases: checked against the transition table, stored by compare-and-set."""

from __future__ import annotations

from typing import Callable

from ..database.base import TaskDatabase
from ..model.record import TaskRecord
from ..model.states import Phase, check_transition


def move(
    store: TaskDatabase,
    record: TaskRecord,
    phase: Phase,
    reason: str,
    change: Callable[[TaskRecord], None] | None = None,
) -> TaskRecord | None:
    """Move `record` to `phase`, recording why; returns the stored record, or None if the task
    changed since `record` was read (the caller re-reads and decides again).

    Raises IllegalTransition if the table does not allow the move.
    """
    check_transition(record.id, record.phase, phase)
    moved = record.with_phase(phase, reason)
    if change is not None:
        change(moved)
    if store.compare_and_set(moved, expected_version=record.version):
        return moved
    return None


def update(store: TaskDatabase, record: TaskRecord, change: Callable[[TaskRecord], None]) -> TaskRecord | None:
    """Store a change that is not a phase change (a lease, a note in the logs), by the same
    compare-and-set; returns None if the task changed since `record` was read."""
    updated = record.copy()
    change(updated)
    if store.compare_and_set(updated, expected_version=record.version):
        return updated
    return None
