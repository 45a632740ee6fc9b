"""What a user's cancel does to a task, whoever applies it: the API at once for a task small enough
to rewrite within the request, the poller from the request the API recorded otherwise (or when
the API's one try lost to a concurrent write)."""

from __future__ import annotations

from ..database.base import TaskDatabase
from ..model.record import TaskRecord
from ..model.states import TERMINAL_PHASES, Phase
from .lifecycle import move

# The longest BASIC view (in characters) of a task the API cancels itself: reading and rewriting
# such a record takes about 10 ms (500 executors). A 12 MB view (100,000 executors) takes seconds,
# during which each progress update of the poller would win the compare-and-set; such a task gets
# a request instead, one small write, applied by the poller, which writes its progress itself.
DIRECT_CANCEL_MAX_CHARS = 64 * 1024


def finished_for_cancel(phase: Phase) -> bool:
    """Nothing is left for a cancel to do: the task is finished, or being canceled already."""
    return phase in TERMINAL_PHASES or phase is Phase.CANCELING


def apply_cancel(database: TaskDatabase, record: TaskRecord) -> bool:
    """Move `record` as a cancel does: a task no poller has claimed yet to CANCELED, any other to
    CANCELING, which the poller's reconciler finishes (it stops the job). True when the cancel is
    done with (moved, or nothing to do); False when the compare-and-set lost to a concurrent write
    and the task must be read again."""
    if finished_for_cancel(record.phase):
        return True
    if record.phase is Phase.CREATED:
        moved = move(database, record, Phase.CANCELED, "canceled by the user before dispatch")
    else:
        moved = move(database, record, Phase.CANCELING, "cancel requested by the user")
    return moved is not None
