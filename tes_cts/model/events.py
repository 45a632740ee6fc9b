"""A task's state changes as events: one per entry of its history, numbered in the order the
store published them, which is each task's own order.

The store writes them with the change itself (SQLite: triggers in the same statement; MongoDB: a
mark in the same document write, published by the poller), so an event is never lost and never
published twice. Readers (the event stream, webhooks) ask for the events after the last number
they saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskEvent:
    seq: int        # 1, 2, ...: increasing in publication order, with gaps
    task_id: str
    owner: str
    state: str      # TES state after the change
    phase: str
    reason: str
    time: str       # RFC 3339, as the history has it

    def data(self) -> dict:
        """What a client is sent of the event (no owner: a client sees only its own, or is an admin)."""
        return {"id": self.task_id, "state": self.state, "phase": self.phase, "reason": self.reason, "time": self.time}


@dataclass(frozen=True)
class EventQuery:
    """The events after `after`, oldest first, at most `limit`; `owner` None is every owner's,
    an empty `states` every state."""

    after: int = 0
    limit: int = 1000
    owner: str | None = None
    task_id: str | None = None
    states: frozenset[str] = field(default_factory=frozenset)
