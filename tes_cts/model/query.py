"""The query a task database answers: filters, keyset position, and the forms a row comes back in
(a summary, a view already rendered as JSON text)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .record import TaskRecord
from .states import TesState


@dataclass(frozen=True)
class Cursor:
    """Position in the newest-first order: the last task of the previous page."""

    created_us: int
    task_id: str


@dataclass(frozen=True)
class TaskQuery:
    """A page of tasks, newest first (by creation time, then id, both descending) unless
    `oldest_first`.

    `tags` maps key -> value; an empty value matches any value but the key must exist.
    `name_prefix` is a literal prefix: no character in it is a wildcard.
    `owner` None means every owner's tasks.
    """

    limit: int
    owner: str | None = None
    name_prefix: str | None = None
    state: TesState | None = None
    tags: dict[str, str] = field(default_factory=dict)
    after: Cursor | None = None
    # The poller dispatches oldest first, so that a busy server never starves an old task;
    # `after` then means "strictly newer than".
    oldest_first: bool = False


def tag_pairs(record: TaskRecord) -> list[tuple[str, str]]:
    """The record's tags as (key, value) pairs, the form every store indexes for tag filters."""
    return sorted(record.tags.items())


@dataclass(frozen=True)
class TaskSummary:
    """What a MINIMAL list needs, read without decoding whole task documents."""

    id: str
    created_us: int
    state: TesState


@dataclass(frozen=True)
class StoredView:
    """One task's view as the database keeps it: compact JSON text, ready to send."""

    json: str


@dataclass(frozen=True)
class ViewPage:
    """A page of tasks' views: their compact JSON texts joined by commas (the inside of a JSON
    array), and, when more tasks follow, the position of the page's last task, after which the
    next page starts."""

    joined: str
    next_after: Cursor | None
