"""One thin handler per operationId: parse, call the task service, shape the response.

`token_info` is what Connexion's security check found (absent with the `none` provider); every
task operation acts as that caller.
"""

from __future__ import annotations

import flask

from ..auth.identity import USER, Identity
from ..model.views import DEFAULT_VIEW, View
from ..tasks.service import JsonText, ListRequest, TaskService
from . import log_parts, task_body
from .security import caller

EXTENSION_KEY = "tes_cts"


def _state():
    return flask.current_app.extensions[EXTENSION_KEY]


def _service() -> TaskService:
    return _state().service


def _caller(token_info) -> Identity:
    return caller(token_info, _state().anonymous)


def get_service_info():
    return _state().service_info


def create_task(token_info=None):
    """No `body` parameter, which Connexion would decode (again): `task_body` decodes it once."""
    who = _caller(token_info)
    who.require(USER, "creating a task")
    task_id = task_body.create_from(flask.request.get_data(cache=False),
                                    lambda body: _service().create(body, owner=who.owner))
    return {"id": task_id}


def _json(result):
    """What a handler returns: JSON text the service already encoded goes out as it is."""
    if isinstance(result, JsonText):
        return flask.Response(result, status=200, mimetype="application/json")
    return result


def get_task(id, view=DEFAULT_VIEW.value, token_info=None):  # noqa: A002 - the path parameter is named id
    return _json(_service().get(id, View(view), owner=_caller(token_info).visible_owner))


def list_tasks(
    name_prefix=None, state=None, tag_key=None, tag_value=None, page_size=None, page_token=None,
    view=DEFAULT_VIEW.value, owner=None, token_info=None,
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
    return _json(_service().list(request, owner=_caller(token_info).list_owner(owner)))


def cancel_task(id, token_info=None):  # noqa: A002
    _service().cancel(id, owner=_caller(token_info).visible_owner)
    return {}


def get_executor_log(id, attempt, executor, stream, offset=None, length=None, token_info=None):  # noqa: A002
    """The logs extension: a part of one executor's full stdout or stderr (api/log_parts.py)."""
    wanted = log_parts.requested(flask.request.headers.get("Range"), offset, length)
    with _service().executor_log(id, attempt, executor, stream, owner=_caller(token_info).visible_owner) as log:
        return log_parts.log_response(log, wanted)


def stream_events(**_parameters):
    """Never reached: api/event_stream.py answers the operation before the Flask app."""
    raise RuntimeError("StreamEvents reached the Flask app: the EventStream middleware is missing")


OPERATIONS = {
    "GetServiceInfo": get_service_info,
    "CreateTask": create_task,
    "GetTask": get_task,
    "ListTasks": list_tasks,
    "CancelTask": cancel_task,
    "StreamEvents": stream_events,
    "GetExecutorLog": get_executor_log,
}
