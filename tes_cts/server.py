"""Running the API under gunicorn with uvicorn workers."""

from __future__ import annotations

import gc
import socket

from gunicorn.app.base import BaseApplication

from .wiring import build_app, load_checked_settings

WORKER_CLASS = "uvicorn.workers.UvicornWorker"


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

    def load(self):
        app = build_app(load_checked_settings(self.overrides))
        # Everything loaded so far (Connexion's parsed spec, modules) lives as long as the
        # worker: keep it out of the collector's full passes, which otherwise stall requests.
        gc.freeze()
        return app
