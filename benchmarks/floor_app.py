"""The "framework floor" for benchmarks/api.py: a bare Connexion 3 FlaskApp that does nothing.

It serves the same URLs as tes-cts (`/ga4gh/tes/v1/tasks`, `/tasks/{id}`, `/service-info`) from a
tiny inline OpenAPI spec that declares the same kinds of parameters (a path id, `view`,
`page_size`, `page_token`, the list filters `name_prefix`, `state`, `tag_key` and `tag_value`, a
JSON request body), and every operation returns a constant small JSON document. Served by
gunicorn with the same worker class (uvicorn.workers.UvicornWorker), worker count and access log
as `tes-cts serve`, the time it takes per request is what Connexion, Flask, uvicorn and gunicorn
cost on their own; benchmarks/api.py divides our figures by these.

Run: gunicorn --chdir benchmarks -k uvicorn.workers.UvicornWorker floor_app:app
"""

from __future__ import annotations

import connexion
from connexion.resolver import Resolver

_VIEW = {
    "name": "view",
    "in": "query",
    "schema": {"type": "string", "enum": ["MINIMAL", "BASIC", "FULL"], "default": "MINIMAL"},
}
_STRINGS = {"type": "array", "items": {"type": "string"}}  # repeated: ?tag_key=a&tag_key=b
_STATES = ["UNKNOWN", "QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "COMPLETE", "EXECUTOR_ERROR",
           "SYSTEM_ERROR", "CANCELED", "PREEMPTED", "CANCELING"]
_OK = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}

SPEC = {
    "openapi": "3.0.1",
    "info": {"title": "framework floor", "version": "1.0.0"},
    "paths": {
        "/service-info": {"get": {"operationId": "GetServiceInfo", "responses": _OK}},
        "/tasks": {
            "get": {
                "operationId": "ListTasks",
                "parameters": [
                    {"name": "name_prefix", "in": "query", "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": _STATES}},
                    {"name": "tag_key", "in": "query", "schema": _STRINGS},
                    {"name": "tag_value", "in": "query", "schema": _STRINGS},
                    {"name": "page_size", "in": "query", "schema": {"type": "integer", "format": "int32"}},
                    {"name": "page_token", "in": "query", "schema": {"type": "string"}},
                    _VIEW,
                ],
                "responses": _OK,
            },
            "post": {
                "operationId": "CreateTask",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": _OK,
            },
        },
        "/tasks/{id}": {
            "get": {
                "operationId": "GetTask",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}, _VIEW],
                "responses": _OK,
            },
        },
    },
}

_TASK = {"id": "floor", "state": "QUEUED"}


def get_service_info():
    return {"id": "floor", "name": "framework floor"}


def list_tasks(name_prefix=None, state=None, tag_key=None, tag_value=None, page_size=None, page_token=None,
               view="MINIMAL"):
    return {"tasks": []}


def create_task(body):
    return {"id": "floor"}


def get_task(id, view="MINIMAL"):  # noqa: A002 - the path parameter is named id
    return _TASK


OPERATIONS = {
    "GetServiceInfo": get_service_info,
    "ListTasks": list_tasks,
    "CreateTask": create_task,
    "GetTask": get_task,
}


def create_app() -> connexion.FlaskApp:
    app = connexion.FlaskApp(__name__)
    app.add_api(
        SPEC,
        base_path="/ga4gh/tes/v1",
        resolver=Resolver(function_resolver=lambda operation_id: OPERATIONS[operation_id]),
    )
    return app


app = create_app()
