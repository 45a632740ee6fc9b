"""The `TaskStore` contract every store implements, and the query it answers.

Stores hold records and apply compare-and-set on the record version; they know no state rules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..tasks.record import TaskRecord
from ..tasks.states import TesState


class DuplicateTaskId(Exception):
    pass


class StoreUnavailable(Exception):
    """The store cannot be opened or reached; the message says which one and why (no secrets)."""


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


class TaskStore(ABC):
    @abstractmethod
    def insert(self, record: TaskRecord) -> None:
        """Store a new record (its version as given). Raises DuplicateTaskId if the id exists."""

    @abstractmethod
    def get(self, task_id: str) -> TaskRecord | None:
        """The record with this id, or None."""

    @abstractmethod
    def query(self, query: TaskQuery) -> list[TaskRecord]:
        """Up to `query.limit` records matching every filter, strictly after `query.after`."""

    @abstractmethod
    def query_summaries(self, query: TaskQuery) -> list[TaskSummary]:
        """The same tasks as `query(query)`, as summaries."""

    @abstractmethod
    def compare_and_set(self, record: TaskRecord, expected_version: int) -> bool:
        """Replace the stored record with `record` if its stored version is `expected_version`.

        On success the stored version becomes expected_version + 1 and `record.version` is set to
        it; returns False, storing nothing, if the version differs or the task does not exist.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


@contextmanager
def unavailable_on(driver_errors: tuple[type[BaseException], ...], store_name: str):
    """Turn a driver's failure (locked past the timeout, server gone, disk full) into
    StoreUnavailable, so callers above the store never handle driver exceptions."""
    try:
        yield
    except driver_errors as exc:
        raise StoreUnavailable(f"{store_name} is unavailable: {exc}") from exc
