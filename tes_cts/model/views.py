"""TES views (MINIMAL, BASIC, FULL) built from the schema's field lists (`model/schema.py`).

Responses are assembled field by field from these lists, never by dumping a stored record, so a
strict client (py-tes, Cromwell) never meets a key it does not know or a null it cannot parse.
`view_json` is the one text form of a view: the databases keep BASIC in it and answer MINIMAL
and BASIC in it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from json.encoder import encode_basestring_ascii

from ..clock import rfc3339
from . import schema
from .query import TaskSummary
from .record import TaskRecord
from .states import TesState


class View(StrEnum):
    MINIMAL = "MINIMAL"
    BASIC = "BASIC"
    FULL = "FULL"


DEFAULT_VIEW = View.MINIMAL

# What BASIC leaves out of FULL, by object.
BASIC_OMITS_INPUT = frozenset({"content"})
BASIC_OMITS_EXECUTOR_LOG = frozenset({"stdout", "stderr"})
BASIC_OMITS_TASK_LOG = frozenset({"system_logs"})


def render_task(record: TaskRecord | TaskSummary, view: View) -> dict:
    """The task as `view` shows it; MINIMAL needs only a summary."""
    if view is View.MINIMAL:
        return {"id": record.id, "state": record.state.value}
    basic = view is View.BASIC
    task = record.task
    rendered: dict = {"id": record.id, "state": record.state.value}
    _put(rendered, "name", task.get("name"))
    _put(rendered, "description", task.get("description"))
    omit_content = BASIC_OMITS_INPUT if basic else frozenset()
    _put(rendered, "inputs", [_pick(i, schema.INPUT, omit_content) for i in task.get("inputs") or []])
    _put(rendered, "outputs", [_pick(o, schema.OUTPUT) for o in task.get("outputs") or []])
    if task.get("resources"):
        rendered["resources"] = _pick(task["resources"], schema.RESOURCES)
    rendered["executors"] = [_pick(e, schema.EXECUTOR) for e in task.get("executors") or []]
    _put(rendered, "volumes", task.get("volumes"))
    _put(rendered, "tags", task.get("tags"))
    _put(rendered, "logs", [_render_task_log(log, basic) for log in record.logs])
    rendered["creation_time"] = rfc3339(record.created_us)
    return rendered


# How every response body is encoded (the API's jsonifier uses it too): compact, so that a view
# stored as text is byte for byte what the API would send for the rendered dict.
JSON_SEPARATORS = (",", ":")


def view_json(record: TaskRecord | TaskSummary, view: View) -> str:
    """`render_task` as compact JSON text: the form a database stores a view in and sends it from,
    so a stored view is byte for byte what rendering the record now would give."""
    if view is View.MINIMAL:
        return minimal_json(record.id, record.state)
    return json.dumps(render_task(record, view), separators=JSON_SEPARATORS)


# A state's name needs no escaping; the lookup refuses anything that is not a state.
_STATE_NAMES = {state.value: state.value for state in TesState}


def minimal_json(task_id: str, state: TesState | str) -> str:
    """The MINIMAL view's text, written without building a dict: a list page writes hundreds.
    `encode_basestring_ascii` is the string encoder of json.dumps, so the text is the same."""
    return f'{{"id":{encode_basestring_ascii(task_id)},"state":"{_STATE_NAMES[state]}"}}'


def _render_task_log(log: dict, basic: bool) -> dict:
    omit_log = BASIC_OMITS_TASK_LOG if basic else frozenset()
    omit_executor = BASIC_OMITS_EXECUTOR_LOG if basic else frozenset()
    rendered = _pick(log, schema.TASK_LOG, omit_log | {"logs", "outputs"})
    # `logs` and `outputs` are required by tesTaskLog, so they are present even when empty.
    rendered["logs"] = [_render_executor_log(e, omit_executor) for e in log.get("logs") or []]
    rendered["outputs"] = [_render_output_log(o) for o in log.get("outputs") or []]
    return rendered


def _render_executor_log(log: dict, omit: frozenset) -> dict:
    rendered = _pick(log, schema.EXECUTOR_LOG, omit)
    rendered["exit_code"] = int(log.get("exit_code", -1))  # required by tesExecutorLog
    return rendered


def _render_output_log(log: dict) -> dict:
    rendered = _pick(log, schema.OUTPUT_FILE_LOG)
    rendered["size_bytes"] = str(log.get("size_bytes", 0))  # an int64 carried as a JSON string
    return rendered


def _pick(source: dict, declared: schema.TesObject, omit: frozenset = frozenset()) -> dict:
    return {name: source[name] for name in declared.fields if name not in omit and source.get(name) is not None}


def _put(target: dict, name: str, value) -> None:
    if value is not None and value != [] and value != {}:
        target[name] = value
