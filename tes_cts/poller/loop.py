"""The poller's loop: a cycle reconciles the tasks backends hold, then dispatches queued ones."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from ..backends.base import Backend
from ..database.base import DatabaseUnavailable, TaskDatabase
from .config import PollerConfig
from .dispatch import Dispatcher
from .reconcile import Reconciler

log = logging.getLogger("tes_cts.poller")


class Poller:
    def __init__(self, database: TaskDatabase, backend: Backend, config: PollerConfig, poller_id: str | None = None):
        self.database = database
        self.backend = backend
        self.config = config
        self.id = poller_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.reconciler = Reconciler(database, backend, config)
        self.dispatcher = Dispatcher(database, backend, config, self.id)

    def run(self, stop: threading.Event) -> None:
        log.info("poller %s started (backend %s)", self.id, self.backend.kind)
        while not stop.is_set():
            try:
                self.cycle()
            except DatabaseUnavailable as exc:
                log.warning("store unavailable, retrying: %s", exc)
            except Exception:  # one bad cycle must not stop the service's only reconciler
                log.exception("poller cycle failed; continuing")
            stop.wait(self.config.interval_s)

    def cycle(self) -> None:
        self.reconciler.reconcile()
        self.dispatcher.dispatch()
