"""Running the API under gunicorn with uvicorn workers."""

from __future__ import annotations

import gc
import socket
import sys

from gunicorn.app.base import BaseApplication

from .metrics.process import process_ended
from .wiring import build_app, load_checked_settings

WORKER_CLASS = "uvicorn.workers.UvicornWorker"
# How long a thread that wants the GIL waits for a busy one to hand it over (CPython: 5 ms).
SWITCH_INTERVAL_S = 0.001


class BindError(Exception):
    """The address `serve` should listen on is taken or cannot be used."""


def check_bind(bind: str) -> None:
    """Fail at once, before any poller or worker starts, when HOST:PORT cannot be listened on
    (gunicorn would otherwise retry for five seconds and then exit without a hint)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As gunicorn binds: a port left in TIME_WAIT by a stopped server is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port)))
    except OSError as exc:
        hint = ("another program listens there (a `tes-cts serve` still running?): stop it, or choose "
                "another address with --bind HOST:PORT or server.bind")
        raise BindError(f"cannot listen on {bind}: {exc.strerror or exc}; {hint}") from exc


class GunicornServer(BaseApplication):
    """Each worker process builds its own app (and so its own database connections) after fork."""

    def __init__(self, overrides: dict):
        self.overrides = overrides
        self.settings = load_checked_settings(overrides)
        super().__init__()

    def load_config(self):
        self.cfg.set("bind", [self.settings.server.bind])
        self.cfg.set("workers", self.settings.server.workers)
        self.cfg.set("worker_class", WORKER_CLASS)
        self.cfg.set("accesslog", "-")
        self.cfg.set("graceful_timeout", 10)
        # gunicorn's control socket defaults to one path per user, so a second `serve` would
        # take over (and on exit delete) the first one's; tes-cts does not use it.
        self.cfg.set("control_socket_disable", True)
        self.cfg.set("child_exit", _worker_exited)

    def load(self):
        app = build_app(load_checked_settings(self.overrides))
        # Everything loaded so far (Connexion's parsed spec, modules) lives as long as the
        # worker: keep it out of the collector's full passes, which otherwise stall requests.
        gc.freeze()
        # A small request changes threads several times (event loop, handler thread, back), each
        # time waiting for the GIL behind a request busy deciding a big task, up to the switch
        # interval: 5 ms by CPython's default. At 1 ms, busy threads lose a few per cent.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        return app


def _worker_exited(_server, worker) -> None:
    """gunicorn's hook in the master, for a worker that has exited: its metrics files stay (its
    counts still count) but its live gauges go (metrics/process.py)."""
    process_ended(worker.pid)
