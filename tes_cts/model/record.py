"""The stored form of a task: the accepted TES document plus what the server adds to it."""

from __future__ import annotations

import base64
import copy
import secrets
from dataclasses import dataclass, field, replace

from ..clock import now_us, rfc3339
from .states import STATE_OF_PHASE, Phase, TesState


def new_task_id() -> str:
    """128 random bits in URL-safe base32 (lower case, no padding): opaque and unguessable."""
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


@dataclass
class TaskRecord:
    id: str
    owner: str
    created_us: int
    phase: Phase
    # The TES task as accepted: name, description, inputs, outputs, resources, executors,
    # volumes, tags. Server-set fields (id, state, logs, creation_time) are never kept here.
    task: dict
    logs: list[dict] = field(default_factory=list)
    # [{state, phase, time, reason}], oldest first: the answer to "why is my task in this state?"
    history: list[dict] = field(default_factory=list)
    # Set by a poller that claimed the task: {"owner": poller id, "expires_us": int}.
    lease: dict | None = None
    # What preflight saw of each input object (size, ETag, CRC64NVME): staging re-checks it.
    # See tes_cts.storage.config.VerifiedInputs.
    verified_inputs: dict = field(default_factory=dict)
    version: int = 0

    @property
    def state(self) -> TesState:
        return STATE_OF_PHASE[self.phase]

    @property
    def name(self) -> str | None:
        return self.task.get("name")

    @property
    def tags(self) -> dict[str, str]:
        return self.task.get("tags") or {}

    def with_phase(self, phase: Phase, reason: str, at_us: int | None = None) -> TaskRecord:
        """A deep copy moved to `phase` with the move appended to the history."""
        moved = replace(self, phase=phase, **_deep_copies(self))
        moved.history.append(history_entry(phase, reason, at_us))
        return moved

    def copy(self) -> TaskRecord:
        return replace(self, **_deep_copies(self))

    def to_document(self) -> dict:
        """Plain JSON-able form, shared by every store."""
        return {
            "id": self.id,
            "owner": self.owner,
            "created_us": self.created_us,
            "phase": self.phase.value,
            "state": self.state.value,
            "version": self.version,
            "task": self.task,
            "logs": self.logs,
            "history": self.history,
            "lease": self.lease,
            "verified_inputs": self.verified_inputs,
        }

    @classmethod
    def from_document(cls, doc: dict) -> TaskRecord:
        return cls(
            id=doc["id"],
            owner=doc["owner"],
            created_us=doc["created_us"],
            phase=Phase(doc["phase"]),
            task=doc["task"],
            logs=doc.get("logs") or [],
            history=doc.get("history") or [],
            lease=doc.get("lease"),
            verified_inputs=doc.get("verified_inputs") or {},
            version=doc["version"],
        )


def history_entry(phase: Phase, reason: str, at_us: int | None = None) -> dict:
    """The history's entry for a move to `phase` (at `at_us`, else now) and why."""
    return {
        "state": STATE_OF_PHASE[phase].value,
        "phase": phase.value,
        "time": rfc3339(at_us if at_us is not None else now_us()),
        "reason": reason,
    }


def _deep_copies(record: TaskRecord) -> dict:
    return {
        "task": copy.deepcopy(record.task),
        "logs": copy.deepcopy(record.logs),
        "history": copy.deepcopy(record.history),
        "lease": copy.deepcopy(record.lease),
        "verified_inputs": copy.deepcopy(record.verified_inputs),
    }
