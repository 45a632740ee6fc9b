"""The cancels the API recorded as requests (a task too large to rewrite within a request, or one
whose move lost a race): each cycle applies them first, so that a task moved to CANCELING is
stopped by the reconciler in the same cycle, and a queued one is CANCELED before dispatch can
claim it.

A request is dropped once its cancel is done with (`tasks.cancel.apply_cancel`), or when its task
is gone; one that lost to a concurrent write stays for the next cycle. A poller that dies between
the move and the drop leaves a request whose task is already canceling: the next cycle drops it.
"""

from __future__ import annotations

import logging

from ..database.base import TaskDatabase
from ..tasks.cancel import apply_cancel

log = logging.getLogger("tes_cts.poller")

# Requests applied per cycle at most: a burst of cancels does not hold up the rest of the cycle.
REQUESTS_PER_CYCLE = 1000


class CancelRequests:
    def __init__(self, database: TaskDatabase, per_cycle: int = REQUESTS_PER_CYCLE):
        self.database = database
        self.per_cycle = per_cycle

    def apply(self) -> list[str]:
        """Apply the pending requests, oldest first: the tasks whose requests were dropped."""
        dropped = []
        for task_id in self.database.cancel_requests(self.per_cycle):
            record = self.database.get(task_id)
            if record is None:
                log.info("task %s: dropped the cancel request of an unknown task", task_id)
            elif apply_cancel(self.database, record):
                log.info("task %s: cancel request applied (the task was %s)", task_id, record.phase)
            else:
                log.debug("task %s: cancel lost to a concurrent write; trying again next cycle", task_id)
                continue
            self.database.drop_cancel_request(task_id)
            dropped.append(task_id)
        return dropped
