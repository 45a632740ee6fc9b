"""Running the API under gunicorn with uvicorn workers."""

from __future__ import annotations

import gc

from gunicorn.app.base import BaseApplication

from .settings import load_settings

WORKER_CLASS = "uvicorn.workers.UvicornWorker"


class GunicornServer(BaseApplication):
    """Each worker process builds its own app (and so its own store connections) after fork."""

    def __init__(self, overrides: dict):
        self.overrides = overrides
        self.settings = load_settings(overrides)
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
        from .api.app import create_app

        app = create_app(load_settings(self.overrides))
        # Everything loaded so far (Connexion's parsed spec, modules) lives as long as the
        # worker: keep it out of the collector's full passes, which otherwise stall requests.
        gc.freeze()
        return app
