"""One thin handler per operationId: parse, call the task service, shape the response."""

from __future__ import annotations

import flask

from ..tasks.service import ListRequest, TaskService
from ..tasks.views import DEFAULT_VIEW, View

EXTENSION_KEY = "tes_cts"


def _service() -> TaskService:
    return flask.current_app.extensions[EXTENSION_KEY].service


def get_service_info():
    return flask.current_app.extensions[EXTENSION_KEY].service_info


def create_task(body):
    return {"id": _service().create(body)}


def get_task(id, view=DEFAULT_VIEW.value):  # noqa: A002 - the path parameter is named id
    return _service().get(id, View(view))


def list_tasks(
    name_prefix=None, state=None, tag_key=None, tag_value=None, page_size=None, page_token=None,
    view=DEFAULT_VIEW.value,
):
    request = ListRequest(
        name_prefix=name_prefix,
        state=state,
        tag_keys=tuple(tag_key or ()),
        tag_values=tuple(tag_value or ()),
        page_size=page_size,
        page_token=page_token,
        view=View(view),
    )
    return _service().list(request)


def cancel_task(id):  # noqa: A002
    _service().cancel(id)
    return {}


OPERATIONS = {
    "GetServiceInfo": get_service_info,
    "CreateTask": create_task,
    "GetTask": get_task,
    "ListTasks": list_tasks,
    "CancelTask": cancel_task,
}
