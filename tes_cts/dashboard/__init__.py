"""The web dashboard: the task list and each task's page, rendered on the server from the task
store, kept live in the browser by plain ES modules over the API and its event stream."""

from .routes import dashboard_blueprint

__all__ = ["dashboard_blueprint"]
