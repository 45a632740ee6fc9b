"""Checking a submitted TES task: every problem at once, or the normalized task to store.

`validate_task(body, limits)` returns an `AcceptedTask` (the task cut down to the tesTask fields,
`type` defaulted to FILE, backend_parameters keys in lower case and unsupported ones dropped with
a warning) or raises `TaskValidationError` listing every problem found. Nothing else is raised,
whatever the body is.

Conventions:
- `Problem.field` is a JSON path relative to the task: "executors[0].command", "inputs[2].url",
  "tags.PROJECT", 'executors[0].env["A=B"]' for keys that are not plain names. The empty string
  means the task document itself.
- A property given as JSON null is absent, and so is a map entry whose value is null (in tags,
  env and backend_parameters: Cromwell sends `tags.parent_workflow_id: null` for a root workflow
  and nulls for unset runtime attributes); neither is stored, so no view ever holds a null. A null
  array item is still a problem: leaving it out would change what the array says (a command's
  arguments, the index of every later input).
- Unknown keys, at the top level and nested, are dropped silently, and so are the server-set
  fields id, state, logs and creation_time.
- Pass 1 checks every property's JSON type as `model/schema.py` declares it per TES object;
  pass 2 applies the rules that need more than the type, only to values of the right type, so a
  wrong value is reported once. An array or map with some wrong items keeps its good ones for
  pass 2 (every problem is reported), and its key is marked invalid (`_Props.invalid`).
- URLs are checked by storage, which knows its schemes (`storage.url_problems`); the rules of
  POSIX paths are in `posix_paths`.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Callable

from ..durations import parse_duration
from ..image_references import image_reference_problem
from ..model import schema
from ..model.limits import SizeLimits
from ..model.schema import JsonType, TesObject
from ..posix_paths import has_wildcard, is_under, normalize, path_problems
from ..quoting import quoted
from ..storage import INPUT, OUTPUT, UrlUse, url_problems


@dataclass(frozen=True)
class Problem:
    field: str  # JSON path of the offending field; "" is the whole task
    reason: str  # what is wrong and, where possible, how to fix it

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class TaskValidationError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# An error answer lists this many problems at most, then says how many more there are.
MAX_PROBLEMS_LISTED = 100


@dataclass(frozen=True)
class ValidationLimits:
    content_max_bytes: int  # max UTF-8 bytes of an input's `content`
    file_roots: tuple[str, ...]  # absolute dirs under which file:// and bare-path URLs are allowed
    supported_backend_parameters: frozenset[str]  # lower-case keys the backend supports
    http_allow: tuple[str, ...] = ()  # non-public hosts and networks http(s) inputs may reach
    sizes: SizeLimits = SizeLimits()


@dataclass(frozen=True)
class AcceptedTask:
    task: dict  # normalized TES task document to store
    warnings: list[str]  # for system_logs, e.g. dropped backend_parameters keys


def validate_task(body: object, limits: ValidationLimits) -> AcceptedTask:
    check = _Check(limits)
    task = _task(body, check)
    if len(check.problems) > MAX_PROBLEMS_LISTED:
        more = len(check.problems) - MAX_PROBLEMS_LISTED
        raise TaskValidationError([*check.problems[:MAX_PROBLEMS_LISTED], Problem("", f"and {more} more problems")])
    if check.problems:
        raise TaskValidationError(check.problems)
    return AcceptedTask(task=task, warnings=check.warnings)


# --- collecting problems --------------------------------------------------------------------


@dataclass
class _Check:
    limits: ValidationLimits
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problem(self, at: str, reason: str) -> None:
        self.problems.append(Problem(at, reason))

    def all_of(self, at: str, reasons: list[str]) -> None:
        """One problem saying every reason, if there is any."""
        if reasons:
            self.problem(at, "; ".join(reasons))


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@functools.lru_cache(maxsize=4096)  # every property checked asks; the same paths come back
def _at(parent: str, key: object) -> str:
    """JSON path of `key` inside the object at `parent`."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{quoted(key, quote='double')}]"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


# --- pass 1: JSON types ---------------------------------------------------------------------

_INVALID = object()  # a present value of the wrong type; the problem is already recorded
_MAX_EXACT_INT = 2**53  # beyond this an integer has no exact JSON double (format: double)


def _text(value: object, at: str, check: _Check) -> object:
    if not isinstance(value, str):
        check.problem(at, f"must be a string, not {_json_type(value)}")
        return _INVALID
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        check.problem(at, "must be valid Unicode text; it contains an unpaired surrogate (\\ud800-\\udfff)")
        return _INVALID
    return value


def _accepting(is_right_type, words: str):
    """A type check that returns the value, or records "must be <words>" and returns _INVALID."""

    def check_type(value: object, at: str, check: _Check) -> object:
        if is_right_type(value):
            return value
        check.problem(at, f"must be {words}, not {_json_type(value)}")
        return _INVALID

    return check_type


# bool is a subclass of int in Python, but true is not an integer in JSON.
_boolean = _accepting(lambda v: isinstance(v, bool), "true or false")
_integer = _accepting(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
_array = _accepting(lambda v: isinstance(v, list), "an array")
_object = _accepting(lambda v: isinstance(v, dict), "an object")


def _number(value: object, at: str, check: _Check) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        check.problem(at, f"must be a number, not {_json_type(value)}")
        return _INVALID
    if isinstance(value, int) and abs(value) > _MAX_EXACT_INT:
        check.problem(at, f"is too large (at most {_MAX_EXACT_INT})")
        return _INVALID
    if isinstance(value, float) and not math.isfinite(value):  # Python's json accepts NaN, Infinity
        check.problem(at, "must be a finite number")
        return _INVALID
    return value


def _string_list(value: object, at: str, check: _Check) -> object:
    if _array(value, at, check) is _INVALID:
        return _INVALID
    items = (_text(item, f"{at}[{i}]", check) for i, item in enumerate(value))
    return [item for item in items if item is not _INVALID]


def _string_map(value: object, at: str, check: _Check) -> object:
    if _object(value, at, check) is _INVALID:
        return _INVALID
    result: dict = {}
    for key, item in value.items():
        if item is None:  # the key left out: see the module docstring
            continue
        key_at = _at(at, key)
        # Keys end up as field names in the database: BSON cannot hold a NUL in one.
        good_key = _text(key, key_at, check) is not _INVALID
        if good_key and "\x00" in key:
            check.problem(key_at, "key must not contain a NUL byte")
            good_key = False
        if _text(item, key_at, check) is not _INVALID and good_key:
            result[key] = item
    return result


# A type check records a problem for each wrong value and returns the value, _INVALID, or (for
# arrays and maps of strings) the items of the right type.
_TypeCheck = Callable[[object, str, _Check], object]

_TYPE_CHECKS: dict[JsonType, _TypeCheck] = {
    JsonType.STRING: _text, JsonType.BOOLEAN: _boolean, JsonType.INTEGER: _integer, JsonType.NUMBER: _number,
    JsonType.ARRAY: _array, JsonType.OBJECT: _object, JsonType.STRINGS: _string_list,
    JsonType.STRING_MAP: _string_map,
}


@dataclass
class _Props:
    """The known properties of one object: their checked values, and the keys whose value was
    wrong (entirely, or in some items: then `values` holds the good items)."""

    at: str
    values: dict = field(default_factory=dict)
    invalid: set = field(default_factory=set)

    def path(self, key: str) -> str:
        return _at(self.at, key)

    def missing(self, key: str) -> bool:
        return key not in self.values and key not in self.invalid


def _properties(value: object, at: str, declared: TesObject, check: _Check) -> _Props | None:
    """Pass 1 for one object; None (problem recorded) if `value` is not an object at all."""
    if _object(value, at, check) is _INVALID:
        return None
    props = _Props(at)
    for key, json_type in declared.types.items():
        raw = value.get(key)
        if raw is None:  # absent or JSON null
            continue
        reported = len(check.problems)
        checked = _TYPE_CHECKS[json_type](raw, props.path(key), check)
        if len(check.problems) > reported:
            props.invalid.add(key)
        if checked is not _INVALID:
            props.values[key] = checked
    return props


def _items(props: _Props, key: str, declared: TesObject, check: _Check) -> list[_Props]:
    """Pass 1 for every object in the array property `key` (which passed its own type check)."""
    found = (_properties(item, f"{props.path(key)}[{i}]", declared, check) for i, item in enumerate(props.values.get(key, [])))
    return [item for item in found if item is not None]


# --- pass 2: rules beyond the type -------------------------------------------------------------


def _task(body: object, check: _Check) -> dict:
    if not isinstance(body, dict):
        check.problem("", f"the task must be a JSON object, not {_json_type(body)}")
        return {}
    within, too_large = _within_sizes(body, check)
    props = _properties(within, "", schema.TASK, check)
    props.invalid |= too_large
    task = dict(props.values)
    if not props.values.get("executors") and "executors" not in props.invalid:
        check.problem("executors", "at least one executor is required: [{\"image\": ..., \"command\": [...]}]")
    for key, declared, one in (("inputs", schema.INPUT, _input), ("outputs", schema.OUTPUT, _output),
                               ("executors", schema.EXECUTOR, _executor)):
        if key in task:
            task[key] = [one(item, check) for item in _items(props, key, declared, check)]
    for key in ("inputs", "outputs"):
        if key in task:
            _no_duplicate_paths(task[key], props.path(key), check)
    if "resources" in task:
        task["resources"] = _resources(_properties(task["resources"], "resources", schema.RESOURCES, check), check)
    for i, volume in enumerate(task.get("volumes", [])):
        _container_path(volume, f"volumes[{i}]", check, whole_root=False)
    return task


_COUNTED = ("executors", "inputs", "outputs", "volumes", "tags")  # each a field of SizeLimits


def _within_sizes(body: dict, check: _Check) -> tuple[dict, set[str]]:
    """`body` without the arrays (and tags) longer than the settings allow, and their keys, each
    reported once: their items are not looked at, so a huge task costs little to refuse."""
    kept = dict(body)
    for key in _COUNTED:
        value, limit = body.get(key), getattr(check.limits.sizes, key)
        if isinstance(value, (list, dict)) and len(value) > limit:
            check.problem(key, f"at most {limit} allowed (setting tasks.max_{key}), got {len(value)}")
            del kept[key]
    return kept, set(body) - set(kept)


def _executor(props: _Props, check: _Check) -> dict:
    for key in ("image", "command"):
        if props.missing(key):
            check.problem(props.path(key), "is required")
    image = props.values.get("image")
    if image == "":
        check.problem(props.path("image"), "must not be empty; name a container image, e.g. \"ubuntu:24.04\"")
    elif isinstance(image, str) and "\x00" not in image and (problem := image_reference_problem(image)):
        check.problem(props.path("image"), problem)
    command = props.values.get("command")
    if command == [] and "command" not in props.invalid:
        check.problem(props.path("command"), "must not be empty; give the program and its arguments, e.g. [\"echo\", \"hello\"]")
    # Executor strings are handed to the OS (argv, environ), which cannot carry a NUL byte.
    _no_nul(props.values.get("image"), props.path("image"), check)
    for i, argument in enumerate(command or []):
        _no_nul(argument, f"{props.path('command')}[{i}]", check)
    for key in ("workdir", "stdin", "stdout", "stderr"):
        if key in props.values:
            _container_path(props.values[key], props.path(key), check, whole_root=True)
    sizes = check.limits.sizes
    if len(props.values.get("env", {})) > sizes.env:
        check.problem(props.path("env"), f"at most {sizes.env} entries allowed (setting tasks.max_env), "
                                         f"got {len(props.values['env'])}")
    else:
        for name, value in props.values.get("env", {}).items():
            _env_entry(name, value, _at(props.path("env"), name), check)
    command_bytes = sum(len(argument.encode("utf-8", "surrogatepass")) for argument in command or []
                        if isinstance(argument, str))
    if command_bytes > sizes.command_bytes:
        check.problem(props.path("command"), f"at most {sizes.command_bytes} bytes allowed (setting "
                                             f"tasks.max_command_bytes), got {command_bytes}")
    return props.values


def _env_entry(name: str, value: str, at: str, check: _Check) -> None:
    if name == "":
        check.problem(at, "environment variable names must not be empty")
    elif "=" in name:
        check.problem(at, "environment variable names must not contain '='")
    _no_nul(value, at, check)


def _no_nul(value: object, at: str, check: _Check) -> None:
    if isinstance(value, str) and "\x00" in value:
        check.problem(at, "must not contain a NUL byte")


_FILE_TYPES = ("FILE", "DIRECTORY")


def _file_type(props: _Props, check: _Check) -> str:
    """The declared type, defaulted to FILE (what TES says the server fills in)."""
    kind = props.values.setdefault("type", "FILE") if "type" not in props.invalid else "FILE"
    if kind not in _FILE_TYPES:
        check.problem(props.path("type"), f"must be FILE or DIRECTORY, not {quoted(kind)}")
    return kind


def _input(props: _Props, check: _Check) -> dict:
    kind = _file_type(props, check)
    if props.missing("path"):
        check.problem(props.path("path"), "is required: where the input appears in the container")
    elif "path" in props.values:
        _container_path(props.values["path"], props.path("path"), check, whole_root=False)
    # An empty string `content` is an empty file: it counts as content, so it excludes `url`.
    has_url, has_content = not props.missing("url"), not props.missing("content")
    if has_url and has_content:
        check.problem(props.path("content"), "give either url or content, not both (content \"\" means an empty file)")
    elif not has_url and not has_content:
        check.problem(props.path("url"), "is required unless content is given")
    if "content" in props.values:
        _content(props.values["content"], kind, props, check)
    if "url" in props.values:
        use = UrlUse(INPUT, kind == "DIRECTORY", check.limits.file_roots, check.limits.http_allow)
        check.all_of(props.path("url"), url_problems(props.values["url"], use))
    return props.values


def _content(content: str, kind: str, props: _Props, check: _Check) -> None:
    size, limit = len(content.encode("utf-8")), check.limits.content_max_bytes
    if size > limit:
        check.problem(
            props.path("content"),
            f"is {size} bytes in UTF-8, more than this server's limit of {limit} bytes "
            "(setting tasks.content_max_bytes); put larger files in storage and give their url",
        )
    if kind == "DIRECTORY":
        check.problem(props.path("type"), "must be FILE when content is given: content makes a single file")


def _output(props: _Props, check: _Check) -> dict:
    kind = _file_type(props, check)
    for key in ("path", "url"):
        if props.missing(key):
            check.problem(props.path(key), "is required")
    path, prefix = props.values.get("path"), props.values.get("path_prefix")
    if path is not None:
        _container_path(path, props.path("path"), check, whole_root=False)
    if prefix is not None:
        _container_path(prefix, props.path("path_prefix"), check, whole_root=True)
    wildcard = path is not None and has_wildcard(path)
    if wildcard:
        _path_prefix(path, prefix, props, check)
    if "url" in props.values:
        # Matches of a wildcard go under the url: it names a directory, like a DIRECTORY output.
        use = UrlUse(OUTPUT, kind == "DIRECTORY" or wildcard, check.limits.file_roots, check.limits.http_allow)
        check.all_of(props.path("url"), url_problems(props.values["url"], use))
    return props.values


def _path_prefix(path: str, prefix: str | None, props: _Props, check: _Check) -> None:
    at = props.path("path_prefix")
    if prefix is None:
        if "path_prefix" not in props.invalid:
            check.problem(at, "is required when path contains wildcards (*, ?, [): the part of each match to drop before appending it to url")
    elif path_problems(prefix, whole_root=True):
        pass  # already reported as a path
    elif has_wildcard(prefix):
        check.problem(at, "must not contain wildcards (*, ?, [)")
    elif not is_under(normalize(path), normalize(prefix)):
        check.problem(at, f"must be a leading directory of path {quoted(path)}, compared segment by segment")


def _no_duplicate_paths(items: list[dict], at: str, check: _Check) -> None:
    first_index: dict[str, int] = {}
    for i, item in enumerate(items):
        path = item.get("path")
        if not isinstance(path, str) or path_problems(path, whole_root=False):
            continue
        first = first_index.setdefault(normalize(path), i)
        if first != i:
            check.problem(f"{at}[{i}].path", f"duplicates {at}[{first}].path ({quoted(path)}); give each its own path")


_INT32_MAX = 2**31 - 1


def _resources(props: _Props | None, check: _Check) -> dict:
    if props is None:
        return {}
    values = props.values
    cores = values.get("cpu_cores")
    if cores is not None and not 1 <= cores <= _INT32_MAX:
        check.problem(props.path("cpu_cores"), f"must be between 1 and {_INT32_MAX}")
    for key in ("ram_gb", "disk_gb"):
        if key in values and not values[key] > 0:
            check.problem(props.path(key), "must be greater than 0")
    if "backend_parameters" in values:
        strict = values.get("backend_parameters_strict") is True
        kept = _backend_parameters(values["backend_parameters"], props.path("backend_parameters"), strict, check)
        if kept:
            values["backend_parameters"] = kept
        else:  # nothing supported was asked for: store no map rather than an empty one
            del values["backend_parameters"]
    return values


def _backend_parameters(params: dict[str, str], at: str, strict: bool, check: _Check) -> dict[str, str]:
    """Keys are case-insensitive (stored in lower case); TES says unsupported keys are neither
    stored nor returned: dropped with a warning, or a problem when strict."""
    supported = sorted(key.lower() for key in check.limits.supported_backend_parameters)
    listing = ", ".join(supported) if supported else "none"
    first_spelling: dict[str, str] = {}
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for key, value in params.items():
        lower = key.lower()
        if first_spelling.setdefault(lower, key) != key:
            check.problem(_at(at, key), f"duplicates key {quoted(first_spelling[lower])}: backend_parameters keys are case-insensitive")
        elif lower in supported:
            kept[lower] = value
            reason = _backend_parameter_value_problem(lower, value)
            if reason:
                check.problem(_at(at, key), reason)
        elif strict:
            check.problem(_at(at, key), f"is not supported by this server (supported: {listing}); remove it or set backend_parameters_strict to false")
        else:
            dropped.append(quoted(key))
    if dropped:
        check.warnings.append(f"resources.backend_parameters: unsupported keys dropped: {', '.join(dropped)} (supported: {listing})")
    return kept


def _backend_parameter_value_problem(key: str, value: str) -> str | None:
    """Values of the parameters whose meaning tes-cts defines; other keys pass as given."""
    if key == "runtime":
        try:
            parse_duration(value)
        except ValueError as exc:
            return str(exc)
    return None


# --- paths ------------------------------------------------------------------------------------


def _container_path(path: str, at: str, check: _Check, whole_root: bool) -> None:
    """Paths are stored as given; `whole_root` allows "/" itself (a workdir, a path_prefix)."""
    check.all_of(at, path_problems(path, whole_root))
