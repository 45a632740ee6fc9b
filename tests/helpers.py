"""Task bodies as a client sends them, and checks of what the API answers, shared by the tests.
Objects built for tests (settings-made objects, stored records): builders.py."""

from __future__ import annotations

import re

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def echo_task(**fields) -> dict:
    body = {"executors": [{"image": "busybox:latest", "command": ["echo", "hello"]}]}
    body.update(fields)
    return body


def assert_no_nulls(value, where="response"):
    """Strict clients reject null where the schema has a type: nothing we send is null."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert item is not None, f"{where}.{key} is null"
            assert_no_nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert item is not None, f"{where}[{index}] is null"
            assert_no_nulls(item, f"{where}[{index}]")


# The TES spec's tag filter table: filter, a task's tags, is the task listed?
SPEC_TAG_TABLE = [
    ({"foo": "bar"}, {"foo": "bar"}, True),
    ({"foo": "bar"}, {"foo": "bat"}, False),
    ({"foo": ""}, {"foo": ""}, True),
    ({"foo": "bar", "baz": "bat"}, {"foo": "bar", "baz": "bat"}, True),
    ({"foo": "bar"}, {"foo": "bar", "baz": "bat"}, True),
    ({"foo": "bar", "baz": "bat"}, {"foo": "bar"}, False),
    ({"foo": ""}, {"foo": "bar"}, True),
    ({"foo": ""}, {}, False),
]
