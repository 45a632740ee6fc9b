"""The poller's loop: a cycle applies the cancels asked for, reconciles the tasks backends hold,
then dispatches queued ones."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

from ..backends.base import Backend
from ..database.base import DatabaseUnavailable, TaskDatabase
from ..metrics import record as metrics
from ..wakeup import WakeupFifo
from .cancels import CancelRequests
from .config import PollerConfig
from .dispatch import Dispatcher
from .reconcile import Reconciler
from .retention import EventRetention, RunRetention

log = logging.getLogger("tes_cts.poller")


class Poller:
    def __init__(self, database: TaskDatabase, backend: Backend, config: PollerConfig, poller_id: str | None = None,
                 wakeups: WakeupFifo | None = None):
        """`wakeups`, when given, ends the wait between cycles early: a task created or canceled,
        a worker's result written (see wakeup.py). Without it a cycle runs every interval_s."""
        self.database = database
        self.backend = backend
        self.config = config
        self.wakeups = wakeups
        self.id = poller_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.cancels = CancelRequests(database)
        self.reconciler = Reconciler(database, backend, config)
        self.dispatcher = Dispatcher(database, backend, config, self.id)
        self.retention = RunRetention(backend.runs, config.run_retention_s, database)
        self.event_retention = EventRetention(config.event_retention_s, database)

    def run(self, stop: threading.Event) -> None:
        log.info("poller %s started (backend %s)", self.id, self.backend.kind)
        if self.wakeups is not None:
            threading.Thread(target=_wake_when_set, args=(stop, self.wakeups), name="poller-stop", daemon=True).start()
        while not stop.is_set():
            try:
                self.cycle()
            except DatabaseUnavailable as exc:
                log.warning("store unavailable, retrying: %s", exc)
                metrics.poller_cycle_failed("store_unavailable")
            except Exception:  # one bad cycle must not stop the service's only reconciler
                log.exception("poller cycle failed; continuing")
                metrics.poller_cycle_failed("error")
            self._pause(stop)

    def cycle(self) -> None:
        started = time.monotonic()
        handled = len(self.cancels.apply())
        handled += self.reconciler.reconcile()
        handled += self.dispatcher.dispatch()
        self.database.publish_events()  # what this cycle changed, where writes do not publish (MongoDB)
        self.retention.maybe_sweep()
        self.event_retention.maybe_sweep()
        metrics.poller_cycle(time.monotonic() - started, handled)

    def _pause(self, stop: threading.Event) -> None:
        if self.wakeups is None:
            stop.wait(self.config.interval_s)
        else:
            self.wakeups.wait(self.config.interval_s)


def _wake_when_set(stop: threading.Event, wakeups: WakeupFifo) -> None:
    """A stop ends the wait at once, whoever sets it (a signal handler, another thread)."""
    stop.wait()
    wakeups.wake()
