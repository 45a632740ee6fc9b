"""The TES v1.1 objects, each declared once: its fields, in the order they are stored and shown,
and the JSON type of each.

Validation checks a submitted task against these declarations (`tasks/validation.py`); views show
a stored one through them (`model/views.py`), so a response holds no field the schema lacks.
`TASK` holds what a client submits: the server sets id, state, logs and creation_time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Mapping


class JsonType(StrEnum):
    STRING = "string"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"
    ARRAY = "array"  # of TES objects, each checked against its own declaration
    OBJECT = "object"  # a TES object, checked against its own declaration
    STRINGS = "array of strings"
    STRING_MAP = "map of strings"


@dataclass(frozen=True)
class TesObject:
    name: str  # as the TES schema names it
    fields: tuple[str, ...]  # in the order they are stored and shown
    types: Mapping[str, JsonType]  # field -> its JSON type


def _declare(schema_name: str, /, **types: JsonType) -> TesObject:
    return TesObject(schema_name, tuple(types), types)


STRING, BOOLEAN, INTEGER, NUMBER = JsonType.STRING, JsonType.BOOLEAN, JsonType.INTEGER, JsonType.NUMBER
ARRAY, OBJECT, STRINGS, STRING_MAP = JsonType.ARRAY, JsonType.OBJECT, JsonType.STRINGS, JsonType.STRING_MAP

TASK = _declare("tesTask", name=STRING, description=STRING, inputs=ARRAY, outputs=ARRAY, resources=OBJECT,
                executors=ARRAY, volumes=STRINGS, tags=STRING_MAP)
EXECUTOR = _declare("tesExecutor", image=STRING, command=STRINGS, workdir=STRING, stdin=STRING, stdout=STRING,
                    stderr=STRING, env=STRING_MAP, ignore_error=BOOLEAN)
INPUT = _declare("tesInput", name=STRING, description=STRING, url=STRING, path=STRING, type=STRING, content=STRING,
                 streamable=BOOLEAN)
OUTPUT = _declare("tesOutput", name=STRING, description=STRING, url=STRING, path=STRING, path_prefix=STRING,
                  type=STRING)
RESOURCES = _declare("tesResources", cpu_cores=INTEGER, preemptible=BOOLEAN, ram_gb=NUMBER, disk_gb=NUMBER,
                     zones=STRINGS, backend_parameters=STRING_MAP, backend_parameters_strict=BOOLEAN)
EXECUTOR_LOG = _declare("tesExecutorLog", start_time=STRING, end_time=STRING, stdout=STRING, stderr=STRING,
                        exit_code=INTEGER)
OUTPUT_FILE_LOG = _declare("tesOutputFileLog", url=STRING, path=STRING, size_bytes=STRING)  # an int64 as a string
TASK_LOG = _declare("tesTaskLog", logs=ARRAY, metadata=STRING_MAP, start_time=STRING, end_time=STRING, outputs=ARRAY,
                    system_logs=STRINGS)
