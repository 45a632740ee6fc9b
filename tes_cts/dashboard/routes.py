"""The dashboard's routes: `/` (links to the dashboard and the API's docs), `/dashboard` (the task
list) and `/dashboard/tasks/<id>` (one task), rendered on the server for the caller the request's
credentials name, and the static files of the page's modules.

Pages are authenticated as API calls are (`identify`, from api/security.py): a browser sends
Basic credentials with every request once it has them, so a 401 with the API's challenge makes it
ask. Bearer tokens cannot ride on a navigation: the 401 page then offers a token field, and the
page's script (static/dashboard.js) fetches the same pages with the token from session storage.
"""

from __future__ import annotations

from typing import Callable

import flask
from connexion.exceptions import ProblemException

from ..auth.identity import Identity, RoleMissing
from ..clock import now_us
from ..database.base import DatabaseUnavailable
from ..model.states import TesState
from ..tasks.paging import BadListRequest
from ..tasks.service import TaskNotFound, TaskService
from . import pages

# A page shows only what the server sent: its own scripts and styles, requests to its own origin.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
TOKEN_LABELS = {"bearer": "a service account token", "oidc": "an OIDC access token", "kbase": "a KBase token"}

# `identify(authorization header, client address)`: the caller, or connexion's ProblemException
# (401 with a challenge, 429, 503).
Identify = Callable[[str | None, str], Identity]


def dashboard_blueprint(service: TaskService, identify: Identify, provider_names: list[str], api_base: str,
                        docs_path: str) -> flask.Blueprint:
    blueprint = flask.Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
                                static_url_path="/dashboard/static")
    sign_in = {"basic": "basic" in provider_names,
               "tokens": [TOKEN_LABELS[name] for name in provider_names if name in TOKEN_LABELS]}

    def render(template: str, status: int = 200, headers: dict | None = None, **values):
        body = flask.render_template(f"dashboard/{template}", api=flask.request.script_root + api_base,
                                     docs=flask.request.script_root + docs_path, sign_in=sign_in,
                                     shown_time=pages.shown_time, **values)
        return flask.Response(body, status=status, headers=headers or {}, mimetype="text/html")

    def caller() -> Identity:
        return identify(flask.request.headers.get("Authorization"), flask.request.remote_addr or "")

    @blueprint.get("/")
    def index():
        return render("index.html")

    @blueprint.get("/dashboard")
    def tasks():
        who = caller()
        filters = pages.Filters.from_args(flask.request.args)
        owner = who.list_owner(filters.owner)
        last_event = service.database.last_event_seq()  # before the tasks are read: see static/dashboard.js
        listed = pages.list_page(service.database.query(filters.query(owner)), filters, now_us())
        return render("tasks.html", who=who, last_event=last_event, filters=filters, listing=listed,
                      states=[s.value for s in TesState],
                      counts=pages.counts(service.database.count_by_state(who.visible_owner)),
                      link=lambda **changes: flask.url_for("dashboard.tasks", **filters.args(**changes)))

    @blueprint.get("/dashboard/tasks/<task_id>")
    def task(task_id: str):
        who = caller()
        last_event = service.database.last_event_seq()
        record = service.database.get(task_id, who.visible_owner)
        if record is None:
            raise TaskNotFound(task_id)
        return render("task.html", who=who, last_event=last_event, task=pages.task_page(record, now_us()))

    @blueprint.after_request
    def guarded(response: flask.Response) -> flask.Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"  # a page holds one caller's tasks
        return response

    @blueprint.errorhandler(ProblemException)
    def refused(exc: ProblemException):
        if exc.status == 401:
            return render("sign_in.html", 401, exc.headers, detail=exc.detail)
        return render("error.html", exc.status, exc.headers, title=exc.title, detail=exc.detail)

    @blueprint.errorhandler(TaskNotFound)
    def not_found(exc: TaskNotFound):
        return render("error.html", 404, title="Not Found", detail=f"{exc}, or it is not yours")

    @blueprint.errorhandler(BadListRequest)
    def bad_filter(exc: BadListRequest):
        return render("error.html", 400, title="Bad Request", detail=f"{exc.field}: {exc.reason}")

    @blueprint.errorhandler(RoleMissing)
    def forbidden(exc: RoleMissing):
        return render("error.html", 403, title="Forbidden", detail=str(exc))

    @blueprint.errorhandler(DatabaseUnavailable)
    def unavailable(exc: DatabaseUnavailable):
        return render("error.html", 503, title="Service Unavailable", detail=f"{exc}; retry later")

    return blueprint
