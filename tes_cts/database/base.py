"""The `TaskDatabase` contract every task database implements.

Databases hold records and apply compare-and-set on the record version; they know no state rules.
The query they answer is `model.query.TaskQuery`. Besides records, they answer MINIMAL and BASIC
views as JSON text (`model.views.view_json`) without decoding a record: BASIC is stored with
every write, in the same transaction, and MINIMAL is built from the id and state. They also keep
the cancels users asked for, apart from the records: a request is one small write that no
progress update of the task can lose to, and the poller applies it (`poller/cancels.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager

from ..model.events import EventQuery, TaskEvent
from ..model.query import StoredView, TaskQuery, TaskSummary, ViewPage
from ..model.record import TaskRecord
from ..model.states import Phase
from ..model.views import View

# The views a database keeps rendered, as JSON text. FULL shows what BASIC drops (input contents,
# executor output, system logs): it is rendered from the record (`get`, `query`), never stored.
STORED_VIEWS = frozenset({View.MINIMAL, View.BASIC})


class DuplicateTaskId(Exception):
    pass


class DatabaseUnavailable(Exception):
    """The store cannot be opened or reached; the message says which one and why (no secrets)."""


class TaskDatabase(ABC):
    @abstractmethod
    def insert(self, record: TaskRecord) -> None:
        """Store a new record (its version as given). Raises DuplicateTaskId if the id exists."""

    @abstractmethod
    def get(self, task_id: str, owner: str | None = None) -> TaskRecord | None:
        """The record with this id, or None; with `owner`, None also if it is not that owner's
        (another user's record is not read: "not yours" costs what "not found" costs)."""

    @abstractmethod
    def get_view(self, task_id: str, view: View, owner: str | None = None) -> StoredView | None:
        """The task's MINIMAL or BASIC view as `view_json` renders the stored record, or None;
        with `owner`, None also if it is not that owner's (then not read, as for `get`).

        Raises ValueError for a view that is not stored (FULL: use `get`).
        """

    @abstractmethod
    def phase_and_size(self, task_id: str, owner: str | None = None) -> tuple[Phase, int] | None:
        """The task's phase and the length of its stored BASIC view, without reading its record,
        or None; with `owner`, None also if it is not that owner's. The length is a cheap measure
        of what reading and rewriting the record costs; a store that has not measured a task's
        view says a length above any real one.
        """

    @abstractmethod
    def query(self, query: TaskQuery) -> list[TaskRecord]:
        """Up to `query.limit` records matching every filter, strictly after `query.after`."""

    @abstractmethod
    def query_summaries(self, query: TaskQuery) -> list[TaskSummary]:
        """The same tasks as `query(query)`, as summaries."""

    @abstractmethod
    def view_page(self, query: TaskQuery, view: View) -> ViewPage:
        """The tasks `query(query)` lists, as their MINIMAL or BASIC views, and where the next
        page starts if more tasks than `query.limit` match.

        Raises ValueError for a view that is not stored (FULL: use `query`).
        """

    @abstractmethod
    def compare_and_set(self, record: TaskRecord, expected_version: int) -> bool:
        """Replace the stored record with `record` if its stored version is `expected_version`.

        On success the stored version becomes expected_version + 1 and `record.version` is set to
        it; returns False, storing nothing, if the version differs or the task does not exist.
        """

    @abstractmethod
    def request_cancel(self, task_id: str) -> None:
        """Record that the task's cancel was asked for, committed when this returns: one small
        write beside the record, which it leaves as it is. A request already pending is kept
        with its first time."""

    @abstractmethod
    def cancel_requests(self, limit: int) -> list[str]:
        """The ids of up to `limit` tasks whose cancel request is pending, oldest request first."""

    @abstractmethod
    def drop_cancel_request(self, task_id: str) -> None:
        """Forget the task's cancel request, once it is applied (nothing if there is none)."""

    @abstractmethod
    def count_by_state(self, owner: str | None = None) -> dict[str, int]:
        """How many tasks are in each TES state (those with none left out): every owner's, or
        `owner`'s; read from counts the store keeps, not by counting tasks."""

    @abstractmethod
    def events(self, query: EventQuery) -> list[TaskEvent]:
        """The published events `query` asks for (model/events.py), oldest first."""

    @abstractmethod
    def last_event_seq(self) -> int:
        """The number of the latest published event (0 if none): where a reader that wants only
        what happens from now on starts."""

    @abstractmethod
    def publish_events(self) -> int:
        """Publish the events of writes that could not publish them themselves (MongoDB); how
        many. The poller calls it every cycle; a store whose writes publish (SQLite) does nothing."""

    @abstractmethod
    def prune_events(self, before: str) -> int:
        """Forget the events older than the RFC 3339 time `before`, but the newest one (numbers
        go on from it); how many."""

    @abstractmethod
    def delivery(self, receiver: str) -> tuple[int | None, int]:
        """How far the events went to `receiver` (a webhook): the last event delivered (or
        passed over as a dead letter), and how many were dead letters; (None, 0) never asked."""

    @abstractmethod
    def record_delivery(self, receiver: str, seq: int, dead_letter: bool = False) -> None:
        """The events up to `seq` went to `receiver` (the one at `seq` given up on, if `dead_letter`)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


def check_stored(view: View) -> None:
    """Raise ValueError unless the database answers `view` as stored text."""
    if view not in STORED_VIEWS:
        raise ValueError(f"the {view.value} view is not stored: render it from the record")


@contextmanager
def unavailable_on(driver_errors: tuple[type[BaseException], ...], store_name: str):
    """Turn a driver's failure (locked past the timeout, server gone, disk full) into
    DatabaseUnavailable, so callers above the store never handle driver exceptions."""
    try:
        yield
    except driver_errors as exc:
        raise DatabaseUnavailable(f"{store_name} is unavailable: {exc}") from exc
