"""Running the API under gunicorn with uvicorn workers."""

from __future__ import annotations

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

    def load(self):
        from .api.app import create_app

        return create_app(load_settings(self.overrides))
