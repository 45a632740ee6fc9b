"""Task phases, the TES state each one shows, and the one table of legal phase changes.

A task's TES state is always derived from its phase; nothing stores one without the other.
Every change goes through `check_transition`, and the store applies it as a compare-and-set on
the record's version, so a race surfaces as a failed update rather than a corrupted task.
"""

from enum import StrEnum


class TesState(StrEnum):
    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    PREEMPTED = "PREEMPTED"
    CANCELING = "CANCELING"


class Phase(StrEnum):
    CREATED = "created"
    PREFLIGHT = "preflight"
    SUBMITTED = "submitted"
    STAGING_IN = "staging_in"
    RUNNING = "running"
    STAGING_OUT = "staging_out"
    COMPLETE = "complete"
    EXECUTOR_ERROR = "executor_error"
    SYSTEM_ERROR = "system_error"
    CANCELING = "canceling"
    CANCELED = "canceled"


STATE_OF_PHASE: dict[Phase, TesState] = {
    Phase.CREATED: TesState.QUEUED,
    Phase.PREFLIGHT: TesState.QUEUED,
    Phase.SUBMITTED: TesState.INITIALIZING,
    Phase.STAGING_IN: TesState.INITIALIZING,
    Phase.RUNNING: TesState.RUNNING,
    Phase.STAGING_OUT: TesState.RUNNING,
    Phase.COMPLETE: TesState.COMPLETE,
    Phase.EXECUTOR_ERROR: TesState.EXECUTOR_ERROR,
    Phase.SYSTEM_ERROR: TesState.SYSTEM_ERROR,
    Phase.CANCELING: TesState.CANCELING,
    Phase.CANCELED: TesState.CANCELED,
}

TERMINAL_PHASES = frozenset({Phase.COMPLETE, Phase.EXECUTOR_ERROR, Phase.SYSTEM_ERROR, Phase.CANCELED})
TERMINAL_STATES = frozenset(STATE_OF_PHASE[p] for p in TERMINAL_PHASES)

_FAILED = {Phase.SYSTEM_ERROR}
_CANCEL = {Phase.CANCELING}
# Back to CREATED is a retry: a new attempt after a system fault, or a claim whose lease expired.
_RETRY = {Phase.CREATED}

# from-phase -> phases it may move to. RUNNING -> RUNNING is the move to the next executor.
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.CREATED: frozenset({Phase.PREFLIGHT, Phase.CANCELED} | _FAILED),
    Phase.PREFLIGHT: frozenset({Phase.SUBMITTED} | _FAILED | _CANCEL | _RETRY),
    Phase.SUBMITTED: frozenset({Phase.STAGING_IN} | _FAILED | _CANCEL | _RETRY),
    Phase.STAGING_IN: frozenset({Phase.RUNNING} | _FAILED | _CANCEL | _RETRY),
    Phase.RUNNING: frozenset({Phase.RUNNING, Phase.STAGING_OUT} | _FAILED | _CANCEL | _RETRY),
    Phase.STAGING_OUT: frozenset(
        {Phase.COMPLETE, Phase.EXECUTOR_ERROR} | _FAILED | _CANCEL | _RETRY
    ),
    Phase.CANCELING: frozenset({Phase.CANCELED}),
    Phase.COMPLETE: frozenset(),
    Phase.EXECUTOR_ERROR: frozenset(),
    Phase.SYSTEM_ERROR: frozenset(),
    Phase.CANCELED: frozenset(),
}


class IllegalTransition(Exception):
    """A phase change the table does not allow: a bug in the caller, never something to retry."""

    def __init__(self, task_id: str, current: Phase, target: Phase):
        super().__init__(f"task {task_id}: illegal transition {current} -> {target}")
        self.task_id = task_id
        self.current = current
        self.target = target


def is_allowed(current: Phase, target: Phase) -> bool:
    return target in TRANSITIONS[current]


def check_transition(task_id: str, current: Phase, target: Phase) -> None:
    if not is_allowed(current, target):
        raise IllegalTransition(task_id, current, target)
