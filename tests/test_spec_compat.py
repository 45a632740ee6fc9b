"""Our OpenAPI document (openapi/tes.yaml) must stay schema-compatible with upstream TES v1.1.

The upstream document (../shared/reference/tes-1.1.0.openapi.yaml) is data here: we compare the
two, we never serve the upstream one.  Rules:

* Everything machine-meaningful in the upstream ``components/schemas`` (type, format, enum,
  required, properties, items, additionalProperties, allOf, $ref, default, readOnly, ...) must be
  present, unchanged, in ours.  Only human prose may differ: ``description``, ``example``,
  ``title``, ``summary`` and ``x-*`` keys.
* Every upstream path + method must exist in ours with the same operationId, parameters
  (name, in, required, schema), request body and success responses.
* Exactly ONE intended difference: the ListTasks ``state`` query parameter.  Upstream points it at
  ``tesState``, whose ``default: UNKNOWN`` makes Connexion 3 inject ``state=UNKNOWN`` into every
  ListTasks call that has no ``state`` filter (so nothing but UNKNOWN tasks would be listed).
  Ours declares the parameter inline: ``type: string`` with the same enum as ``tesState`` and no
  default.  See ``STATE_PARAM`` and ``check_operations``.
* Ours has no remote ``$ref`` and loads in Connexion without network access.
* Our prose is our own: no upstream description longer than 60 characters (nor any upstream
  sentence of that length) appears verbatim in ours.

The comparison helpers return lists of :class:`Diff`; a failing test prints all of them at once.
"""

from __future__ import annotations

import copy
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
OURS_PATH = ROOT / "openapi" / "tes.yaml"
UPSTREAM_PATH = (ROOT / ".." / "shared" / "reference" / "tes-1.1.0.openapi.yaml").resolve()
BASE_PATH = "/ga4gh/tes/v1"

#: Keys whose values are prose for humans; they may (and should) differ from upstream.
PROSE_KEYS = frozenset({"description", "example", "title", "summary"})
#: Keys whose value is a map from *names* to schemas: the names are data, never prose keys
#: (tesTask has a property called ``description``, Service one called ``title``-like fields...).
NAME_MAP_KEYS = frozenset({"properties"})
#: Keys whose list values are sets: order does not matter, membership does.
SET_KEYS = frozenset({"required", "enum"})
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: The one documented difference: (path, method, parameter name) of ListTasks' state filter.
STATE_PARAM = ("/tasks", "get", "state")

#: Verbatim prose longer than this is considered copied.
COPY_THRESHOLD = 60

_MISSING = object()


# --------------------------------------------------------------------------------------------
# loading


def _stringify_keys(node: Any) -> Any:
    """YAML turns ``200:`` into an int key; make every mapping key a string."""
    if isinstance(node, dict):
        return {str(k): _stringify_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_stringify_keys(v) for v in node]
    return node


def load_spec(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return _stringify_keys(yaml.safe_load(fh))


@pytest.fixture(scope="module")
def upstream() -> dict:
    return load_spec(UPSTREAM_PATH)


@pytest.fixture(scope="module")
def ours() -> dict:
    return load_spec(OURS_PATH)


# --------------------------------------------------------------------------------------------
# differences


@dataclass(frozen=True)
class Diff:
    path: str  # JSON-pointer-like location in the document
    problem: str
    upstream: Any = _MISSING
    ours: Any = _MISSING

    def __str__(self) -> str:
        def show(value: Any) -> str:
            if value is _MISSING:
                return "<absent>"
            text = repr(value)
            return text if len(text) <= 200 else text[:197] + "..."

        return f"{self.path}: {self.problem}\n    upstream: {show(self.upstream)}\n    ours:     {show(self.ours)}"


def format_diffs(diffs: list[Diff], heading: str) -> str:
    lines = [f"{heading}: {len(diffs)} difference(s)"]
    lines += [f"  {i}. {d}" for i, d in enumerate(diffs, 1)]
    return "\n".join(lines)


def is_prose_key(key: str) -> bool:
    return key in PROSE_KEYS or key.startswith("x-")


def _ptr(path: str, key: Any) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _same_scalar(a: Any, b: Any) -> bool:
    # True == 1 in Python; a boolean must not stand in for an integer or vice versa.
    return type(a) is type(b) and a == b


def compare(up: Any, ours: Any, path: str) -> list[Diff]:
    """Everything non-prose in ``up`` must be present, unchanged, in ``ours``.

    Keys ours adds are not reported here (see :func:`find_additions`).
    """
    diffs: list[Diff] = []
    if isinstance(up, dict):
        if not isinstance(ours, dict):
            return [Diff(path, "expected a mapping", up, ours)]
        for key, up_value in up.items():
            if is_prose_key(key):
                continue
            here = _ptr(path, key)
            if key not in ours:
                diffs.append(Diff(here, "missing in ours", up_value))
                continue
            our_value = ours[key]
            if key in NAME_MAP_KEYS and isinstance(up_value, dict):
                if not isinstance(our_value, dict):
                    diffs.append(Diff(here, "expected a mapping of names", up_value, our_value))
                    continue
                for name, up_schema in up_value.items():
                    if name not in our_value:
                        diffs.append(Diff(_ptr(here, name), "missing in ours", up_schema))
                    else:
                        diffs += compare(up_schema, our_value[name], _ptr(here, name))
            elif key in SET_KEYS and isinstance(up_value, list):
                if not isinstance(our_value, list):
                    diffs.append(Diff(here, "expected a list", up_value, our_value))
                    continue
                missing = [v for v in up_value if v not in our_value]
                extra = [v for v in our_value if v not in up_value]
                if missing or extra:
                    detail = "; ".join(
                        part
                        for part in (
                            f"missing {missing}" if missing else "",
                            f"extra {extra}" if extra else "",
                        )
                        if part
                    )
                    diffs.append(Diff(here, f"{key} differs ({detail})", up_value, our_value))
            else:
                diffs += compare(up_value, our_value, here)
    elif isinstance(up, list):
        if not isinstance(ours, list):
            return [Diff(path, "expected a list", up, ours)]
        if len(up) != len(ours):
            diffs.append(Diff(path, f"list length {len(up)} upstream vs {len(ours)} ours", up, ours))
        for i, (u, o) in enumerate(zip(up, ours)):
            diffs += compare(u, o, _ptr(path, i))
    elif not _same_scalar(up, ours):
        diffs.append(Diff(path, "value changed", up, ours))
    return diffs


def find_additions(up: Any, ours: Any, path: str) -> list[Diff]:
    """Non-prose keys (and property names) ours adds inside nodes that exist upstream."""
    diffs: list[Diff] = []
    if isinstance(up, dict) and isinstance(ours, dict):
        for key, our_value in ours.items():
            if is_prose_key(key):
                continue
            here = _ptr(path, key)
            if key not in up:
                diffs.append(Diff(here, "added by ours", ours=our_value))
            elif key in NAME_MAP_KEYS and isinstance(our_value, dict) and isinstance(up[key], dict):
                for name, schema in our_value.items():
                    if name not in up[key]:
                        diffs.append(Diff(_ptr(here, name), "property added by ours", ours=schema))
                    else:
                        diffs += find_additions(up[key][name], schema, _ptr(here, name))
            else:
                diffs += find_additions(up[key], our_value, here)
    elif isinstance(up, list) and isinstance(ours, list):
        for i, (u, o) in enumerate(zip(up, ours)):
            diffs += find_additions(u, o, _ptr(path, i))
    return diffs


def resolve(doc: dict, node: Any) -> Any:
    """Follow local ``$ref`` chains (``#/a/b``)."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
            raise ValueError(f"cannot resolve $ref {ref!r}")
        seen.add(ref)
        target: Any = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target[part]
        node = target
    return node


def check_components(up: dict, ours: dict) -> list[Diff]:
    """Every upstream component schema, recursively, must be unchanged in ours."""
    up_schemas = up.get("components", {}).get("schemas", {})
    our_schemas = ours.get("components", {}).get("schemas", {})
    diffs: list[Diff] = []
    for name, schema in up_schemas.items():
        here = f"/components/schemas/{name}"
        if name not in our_schemas:
            diffs.append(Diff(here, "schema missing in ours", schema))
        else:
            diffs += compare(schema, our_schemas[name], here)
    return diffs


def _params(doc: dict, path_item: dict, operation: dict) -> dict[tuple[str, str], dict]:
    """Resolved parameters of an operation (path-level ones overridden by operation-level ones)."""
    out: dict[tuple[str, str], dict] = {}
    for raw in list(path_item.get("parameters", [])) + list(operation.get("parameters", [])):
        param = resolve(doc, raw)
        out[(param["name"], param["in"])] = {"param": param, "raw": raw}
    return out


def _is_required(param: dict) -> bool:
    return bool(param.get("required", param.get("in") == "path"))


def check_state_param(up: dict, param: dict, path: str) -> list[Diff]:
    """The documented exception: inline string enum equal to tesState's, and no default."""
    diffs: list[Diff] = []
    state_enum = up["components"]["schemas"]["tesState"]["enum"]
    schema = param.get("schema", {})
    if "$ref" in schema:
        diffs.append(Diff(f"{path}/schema/$ref", "must be inline, not a $ref (Connexion would inject "
                          "tesState's default UNKNOWN)", ours=schema["$ref"]))
        schema = resolve(up, schema) if schema["$ref"].startswith("#/") else {}
    if schema.get("type") != "string":
        diffs.append(Diff(f"{path}/schema/type", "must be 'string'", "string", schema.get("type", _MISSING)))
    if sorted(schema.get("enum", [])) != sorted(state_enum) or len(schema.get("enum", [])) != len(state_enum):
        diffs.append(Diff(f"{path}/schema/enum", "must equal tesState's enum", state_enum, schema.get("enum", _MISSING)))
    if "default" in schema:
        diffs.append(Diff(f"{path}/schema/default", "must have no default", ours=schema["default"]))
    if _is_required(param):
        diffs.append(Diff(f"{path}/required", "must stay optional", False, True))
    return diffs


def check_operations(up: dict, ours: dict) -> list[Diff]:
    """Paths, methods, operationIds, parameters, request bodies and upstream responses."""
    diffs: list[Diff] = []
    for path, up_item in up.get("paths", {}).items():
        p_here = _ptr("/paths", path)
        our_item = ours.get("paths", {}).get(path)
        if our_item is None:
            diffs.append(Diff(p_here, "path missing in ours", sorted(up_item)))
            continue
        for method in HTTP_METHODS:
            if method not in up_item:
                continue
            up_op = up_item[method]
            here = _ptr(p_here, method)
            our_op = our_item.get(method)
            if our_op is None:
                diffs.append(Diff(here, "operation missing in ours", up_op.get("operationId")))
                continue
            if up_op.get("operationId") != our_op.get("operationId"):
                diffs.append(Diff(f"{here}/operationId", "operationId changed",
                                  up_op.get("operationId"), our_op.get("operationId", _MISSING)))

            up_params = _params(up, up_item, up_op)
            our_params = _params(ours, our_item, our_op)
            for key, entry in up_params.items():
                name, where = key
                param_here = f"{here}/parameters[{where}:{name}]"
                if key not in our_params:
                    diffs.append(Diff(param_here, "parameter missing in ours", entry["param"]))
                    continue
                our_param = our_params[key]["param"]
                if _is_required(entry["param"]) != _is_required(our_param):
                    diffs.append(Diff(f"{param_here}/required", "required changed",
                                      _is_required(entry["param"]), _is_required(our_param)))
                if (path, method, name) == STATE_PARAM and where == "query":
                    diffs += check_state_param(up, our_param, param_here)
                    rest_up = {k: v for k, v in entry["param"].items() if k != "schema"}
                    diffs += compare(rest_up, our_param, param_here)
                else:
                    diffs += compare(entry["param"], our_param, param_here)
            for key, entry in our_params.items():
                if key not in up_params and _is_required(entry["param"]):
                    diffs.append(Diff(f"{here}/parameters[{key[1]}:{key[0]}]",
                                      "ours adds a required parameter", ours=entry["param"]))

            if "requestBody" in up_op:
                if "requestBody" not in our_op:
                    diffs.append(Diff(f"{here}/requestBody", "missing in ours", up_op["requestBody"]))
                else:
                    diffs += compare(resolve(up, up_op["requestBody"]),
                                     resolve(ours, our_op["requestBody"]), f"{here}/requestBody")
            elif "requestBody" in our_op:
                diffs.append(Diff(f"{here}/requestBody", "ours adds a request body", ours=our_op["requestBody"]))

            for status, up_resp in up_op.get("responses", {}).items():
                r_here = f"{here}/responses/{status}"
                our_resp = our_op.get("responses", {}).get(status)
                if our_resp is None:
                    diffs.append(Diff(r_here, "response missing in ours", up_resp))
                else:
                    diffs += compare(resolve(up, up_resp), resolve(ours, our_resp), r_here)
    return diffs


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Yield (path, key, value) for every mapping entry in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, _ptr(path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, _ptr(path, i))


def check_refs(doc: dict) -> list[Diff]:
    """Every $ref is local ('#/...') and resolves inside the document."""
    diffs: list[Diff] = []
    for path, key, value in walk(doc):
        if key != "$ref":
            continue
        if not isinstance(value, str) or not value.startswith("#/"):
            diffs.append(Diff(f"{path}/$ref", "remote or malformed $ref", ours=value))
            continue
        try:
            resolve(doc, {"$ref": value})
        except (KeyError, TypeError, ValueError):
            diffs.append(Diff(f"{path}/$ref", "dangling $ref", ours=value))
    return diffs


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _prose(doc: dict) -> Iterator[tuple[str, str]]:
    for path, key, value in walk(doc):
        if key in ("description", "summary", "title") and isinstance(value, str):
            yield f"{path}/{key}", _normalize(value)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?:])\s+", text) if len(s) > COPY_THRESHOLD]


def check_prose_is_ours(up: dict, ours: dict) -> list[Diff]:
    """No upstream description (or sentence of one) over COPY_THRESHOLD chars appears in ours."""
    long_up = {text for _, text in _prose(up) if len(text) > COPY_THRESHOLD}
    up_sentences = {s for text in long_up for s in _sentences(text)}
    diffs: list[Diff] = []
    for path, text in _prose(ours):
        copied = next((u for u in long_up if u in text), None)
        if copied is None:
            copied = next((s for s in up_sentences if s in text), None)
        if copied is not None:
            diffs.append(Diff(path, "prose copied verbatim from upstream", copied, text))
    return diffs


# --------------------------------------------------------------------------------------------
# the document itself


def test_documents_load(upstream, ours):
    assert upstream["openapi"].startswith("3.0")
    assert ours["openapi"].startswith("3.0")
    assert ours["info"]["version"] == "1.1.0"
    assert "tes-cts" in ours["info"]["title"]
    assert ours["servers"] == [{"url": BASE_PATH}]


def test_component_schemas_compatible(upstream, ours):
    diffs = check_components(upstream, ours)
    assert not diffs, format_diffs(diffs, "components/schemas differ from upstream TES 1.1")


def test_upstream_schemas_not_extended(upstream, ours):
    """Ours may add schemas, but must not add fields or constraints to upstream ones.

    New properties would leak non-TES fields into responses (strict clients such as py-tes and
    Cromwell reject them); new constraints would reject requests upstream accepts.
    """
    our_schemas = ours["components"]["schemas"]
    diffs: list[Diff] = []
    for name, schema in upstream["components"]["schemas"].items():
        if name in our_schemas:
            diffs += find_additions(schema, our_schemas[name], f"/components/schemas/{name}")
    assert not diffs, format_diffs(diffs, "upstream schemas were extended")


def test_operations_compatible(upstream, ours):
    diffs = check_operations(upstream, ours)
    assert not diffs, format_diffs(diffs, "operations differ from upstream TES 1.1")


def test_operation_ids(ours):
    ids = {
        op["operationId"]
        for item in ours["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS
    }
    assert ids == {"GetServiceInfo", "ListTasks", "CreateTask", "GetTask", "CancelTask"}


def test_view_parameter(upstream, ours):
    up_view = upstream["components"]["parameters"]["view"]
    our_view = ours["components"]["parameters"]["view"]
    diffs = compare(up_view, our_view, "/components/parameters/view")
    assert not diffs, format_diffs(diffs, "view parameter differs")
    assert our_view["schema"]["enum"] == ["MINIMAL", "BASIC", "FULL"]
    assert our_view["schema"]["default"] == "MINIMAL"
    for path, method in (("/tasks", "get"), ("/tasks/{id}", "get")):
        params = _params(ours, ours["paths"][path], ours["paths"][path][method])
        assert params[("view", "query")]["param"]["schema"] == our_view["schema"]


def test_state_filter_is_the_documented_exception(upstream, ours):
    params = _params(ours, ours["paths"]["/tasks"], ours["paths"]["/tasks"]["get"])
    state = params[("state", "query")]
    assert "$ref" not in state["raw"].get("schema", {})
    assert state["param"]["schema"]["enum"] == upstream["components"]["schemas"]["tesState"]["enum"]
    assert "default" not in state["param"]["schema"]
    # ...while tesState itself keeps its upstream default.
    assert ours["components"]["schemas"]["tesState"]["default"] == "UNKNOWN"


def test_create_request_body_is_tes_task(ours):
    body = ours["paths"]["/tasks"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/tesTask"}


def test_error_schema_and_responses(ours):
    error = ours["components"]["schemas"]["Error"]
    assert error["type"] == "object"
    props = error["properties"]
    assert props["title"]["type"] == "string"
    assert props["status"]["type"] == "integer"
    assert props["detail"]["type"] == "string"
    assert props["errors"]["type"] == "array"
    item = props["errors"]["items"]
    assert item["type"] == "object"
    assert item["properties"]["field"]["type"] == "string"
    assert item["properties"]["reason"]["type"] == "string"

    expected = {
        ("/service-info", "get"): {"500"},
        ("/tasks", "get"): {"400", "401", "403", "500"},
        ("/tasks", "post"): {"400", "401", "403", "413", "500"},
        ("/tasks/{id}", "get"): {"400", "401", "403", "404", "500"},
        ("/tasks/{id}:cancel", "post"): {"401", "403", "404", "500"},
    }
    problems = []
    for (path, method), codes in expected.items():
        responses = ours["paths"][path][method]["responses"]
        for code in sorted(codes):
            if code not in responses:
                problems.append(f"{method.upper()} {path}: no {code} response")
                continue
            content = resolve(ours, responses[code]).get("content", {})
            schemas = [c.get("schema") for c in content.values()]
            if not schemas or any(s != {"$ref": "#/components/schemas/Error"} for s in schemas):
                problems.append(f"{method.upper()} {path}: {code} does not reference Error ({content})")
    assert not problems, "\n".join(problems)


def test_single_response_media_type(ours):
    """Connexion 3 picks a handler's response Content-Type from the set of ALL media types an
    operation declares; with more than one (say application/json for 200 and
    application/problem+json for errors), a handler returning a plain dict fails with
    NonConformingResponseHeaders.  So every response, errors included, is application/json."""
    problems = []
    for path, item in ours["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            types = set()
            for resp in op.get("responses", {}).values():
                types |= set(resolve(ours, resp).get("content", {}))
            if types != {"application/json"}:
                problems.append(f"{method.upper()} {path}: {sorted(types)}")
    assert not problems, "operations with other than exactly application/json:\n" + "\n".join(problems)


def test_no_remote_refs(ours):
    diffs = check_refs(ours)
    assert not diffs, format_diffs(diffs, "bad $ref in openapi/tes.yaml")


def test_prose_is_our_own(upstream, ours):
    diffs = check_prose_is_ours(upstream, ours)
    assert not diffs, format_diffs(diffs, "descriptions copied from upstream")


# --------------------------------------------------------------------------------------------
# Connexion


@pytest.fixture()
def no_network(monkeypatch):
    """Fail any attempt to open a network connection while the spec is loaded and served."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(real):
        def connect(self, address, *args, **kwargs):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise AssertionError(f"network access attempted: {address!r}")
            return real(self, address, *args, **kwargs)

        return connect

    monkeypatch.setattr(socket.socket, "connect", guard(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guard(real_connect_ex))
    monkeypatch.setattr(socket, "create_connection",
                        lambda address, *a, **k: (_ for _ in ()).throw(
                            AssertionError(f"network access attempted: {address!r}")))


_DUMMY_RESULTS = {
    "GetServiceInfo": {
        "id": "org.example.tes-cts",
        "name": "tes-cts",
        "type": {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"},
        "organization": {"name": "Example", "url": "https://example.org"},
        "version": "0.1.0",
    },
    "ListTasks": {"tasks": []},
    "CreateTask": {"id": "task-1"},
    "GetTask": {"id": "task-1", "state": "QUEUED"},
    "CancelTask": {},
}


@pytest.fixture()
def dummy_app(no_network):
    import connexion
    from connexion.resolver import Resolver

    calls: list[tuple[str, dict]] = []

    def function_for(operation_id: str):
        if operation_id not in _DUMMY_RESULTS:
            raise AssertionError(f"unexpected operationId {operation_id!r}")

        def handler(**kwargs):
            calls.append((operation_id, kwargs))
            return _DUMMY_RESULTS[operation_id]

        handler.__name__ = operation_id
        return handler

    app = connexion.FlaskApp(__name__)
    app.add_api(str(OURS_PATH), base_path=BASE_PATH, resolver=Resolver(function_resolver=function_for))
    return app, calls


def test_connexion_loads_offline(dummy_app, ours):
    app, _ = dummy_app
    client = app.test_client()
    response = client.get(f"{BASE_PATH}/openapi.json")
    assert response.status_code == 200, response.text
    served = response.json()
    assert served["info"]["version"] == "1.1.0"
    assert set(served["paths"]) == set(ours["paths"])


def test_connexion_routes_and_parameters(dummy_app):
    """Smoke test of the traps the document is designed around, through real Connexion routing."""
    app, calls = dummy_app
    client = app.test_client()

    def last_call(expected_op):
        op, kwargs = calls[-1]
        assert op == expected_op
        return kwargs

    r = client.get(f"{BASE_PATH}/service-info")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")

    # No state filter given -> no state injected (the tesState default trap); view defaults.
    r = client.get(f"{BASE_PATH}/tasks")
    assert r.status_code == 200, r.text
    kwargs = last_call("ListTasks")
    assert "state" not in kwargs
    assert kwargs.get("view") == "MINIMAL"

    r = client.get(f"{BASE_PATH}/tasks", params={"state": "UNKNOWN", "tag_key": ["a", "b"], "view": "FULL"})
    assert r.status_code == 200, r.text
    kwargs = last_call("ListTasks")
    assert kwargs["state"] == "UNKNOWN" and kwargs["tag_key"] == ["a", "b"] and kwargs["view"] == "FULL"

    n = len(calls)
    assert client.get(f"{BASE_PATH}/tasks", params={"state": "BOGUS"}).status_code == 400
    assert client.get(f"{BASE_PATH}/tasks", params={"view": "EVERYTHING"}).status_code == 400
    assert len(calls) == n, "invalid requests must not reach the handler"

    r = client.get(f"{BASE_PATH}/tasks/abc")
    assert r.status_code == 200, r.text
    assert last_call("GetTask")["id"] == "abc"

    r = client.post(f"{BASE_PATH}/tasks/abc:cancel")
    assert r.status_code == 200, r.text
    assert last_call("CancelTask")["id"] == "abc"

    task = {"executors": [{"image": "alpine", "command": ["true"]}]}
    r = client.post(f"{BASE_PATH}/tasks", json=task)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": "task-1"}
    assert last_call("CreateTask")["body"]["executors"] == task["executors"]

    n = len(calls)
    assert client.post(f"{BASE_PATH}/tasks", json={"name": "no executors"}).status_code == 400
    assert len(calls) == n


# --------------------------------------------------------------------------------------------
# the checker catches changes


def test_checker_reports_schema_changes(upstream, ours):
    broken = copy.deepcopy(ours)
    schemas = broken["components"]["schemas"]
    schemas["tesOutputFileLog"]["properties"]["size_bytes"]["type"] = "integer"
    schemas["tesState"]["enum"].remove("PREEMPTED")
    schemas["tesTask"]["required"] = ["executors", "name"]
    del schemas["tesExecutor"]["properties"]["env"]["additionalProperties"]
    schemas["tesInput"]["properties"]["type"]["$ref"] = "#/components/schemas/tesState"
    schemas["tesServiceInfo"]["allOf"].pop(0)
    schemas["tesResources"]["properties"]["backend_parameters_strict"]["default"] = 0  # not False
    del schemas["ServiceType"]
    schemas["tesTask"]["properties"]["description"] = {"type": "integer"}  # a *property* named description

    diffs = check_components(upstream, broken)
    report = format_diffs(diffs, "x")
    found = {d.path for d in diffs}
    assert "/components/schemas/tesOutputFileLog/properties/size_bytes/type" in found, report
    assert "/components/schemas/tesState/enum" in found, report
    assert "/components/schemas/tesTask/required" in found, report
    assert "/components/schemas/tesExecutor/properties/env/additionalProperties" in found, report
    assert "/components/schemas/tesInput/properties/type/$ref" in found, report
    assert "/components/schemas/tesServiceInfo/allOf" in found, report
    assert "/components/schemas/tesResources/properties/backend_parameters_strict/default" in found, report
    assert "/components/schemas/ServiceType" in found, report
    assert "/components/schemas/tesTask/properties/description/type" in found, report

    size = next(d for d in diffs if d.path.endswith("size_bytes/type"))
    assert (size.upstream, size.ours) == ("string", "integer")
    assert "'string'" in str(size) and "'integer'" in str(size)
    assert "PREEMPTED" in report and "missing" in report

    # Prose changes alone are not differences.
    reworded = copy.deepcopy(ours)
    reworded["components"]["schemas"]["tesTask"]["description"] = "something else"
    reworded["components"]["schemas"]["tesTask"]["properties"]["id"]["example"] = 42
    reworded["components"]["schemas"]["tesTask"]["x-note"] = "vendor extension"
    assert check_components(upstream, reworded) == []


def test_checker_reports_additions(upstream, ours):
    broken = copy.deepcopy(ours)
    broken["components"]["schemas"]["tesOutputFileLog"]["properties"]["crc64nvme"] = {"type": "string"}
    broken["components"]["schemas"]["tesTask"]["additionalProperties"] = False
    found = {
        d.path
        for name, schema in upstream["components"]["schemas"].items()
        for d in find_additions(schema, broken["components"]["schemas"][name], f"/components/schemas/{name}")
    }
    assert "/components/schemas/tesOutputFileLog/properties/crc64nvme" in found
    assert "/components/schemas/tesTask/additionalProperties" in found


def test_checker_reports_operation_changes(upstream, ours):
    broken = copy.deepcopy(ours)
    tasks = broken["paths"]["/tasks"]
    tasks["get"]["parameters"] = [p for p in tasks["get"]["parameters"] if p.get("name") != "page_token"]
    state = next(p for p in tasks["get"]["parameters"] if p.get("name") == "state")
    state["schema"]["default"] = "UNKNOWN"
    state["schema"]["enum"] = state["schema"]["enum"][:-1]
    broken["components"]["parameters"]["view"]["schema"]["default"] = "FULL"
    broken["paths"]["/tasks/{id}"]["get"]["operationId"] = "getTask"
    del broken["paths"]["/tasks/{id}:cancel"]
    tasks["post"]["requestBody"]["content"]["application/json"]["schema"] = {"type": "object"}

    diffs = check_operations(upstream, broken)
    report = format_diffs(diffs, "x")
    found = {d.path for d in diffs}
    assert "/paths/~1tasks/get/parameters[query:page_token]" in found, report
    assert "/paths/~1tasks/get/parameters[query:state]/schema/default" in found, report
    assert "/paths/~1tasks/get/parameters[query:state]/schema/enum" in found, report
    assert "/paths/~1tasks/get/parameters[query:view]/schema/default" in found, report
    assert "/paths/~1tasks~1{id}/get/operationId" in found, report
    assert "/paths/~1tasks~1{id}:cancel" in found, report
    assert "/paths/~1tasks/post/requestBody/content/application~1json/schema/$ref" in found, report

    # The upstream shape of the state parameter ($ref to tesState) is exactly what we forbid.
    reverted = copy.deepcopy(ours)
    state = next(p for p in reverted["paths"]["/tasks"]["get"]["parameters"] if p.get("name") == "state")
    state["schema"] = {"$ref": "#/components/schemas/tesState"}
    found = {d.path for d in check_operations(upstream, reverted)}
    assert "/paths/~1tasks/get/parameters[query:state]/schema/$ref" in found
    assert "/paths/~1tasks/get/parameters[query:state]/schema/default" in found


def test_checker_reports_remote_refs_and_copied_prose(upstream, ours):
    broken = copy.deepcopy(ours)
    broken["components"]["schemas"]["tesServiceInfo"]["allOf"][0] = {
        "$ref": "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml#/components/schemas/Service"
    }
    broken["components"]["schemas"]["tesTask"]["properties"]["name"]["$ref"] = "#/components/schemas/nope"
    found = {d.path: d.problem for d in check_refs(broken)}
    assert found["/components/schemas/tesServiceInfo/allOf/0/$ref"].startswith("remote")
    assert found["/components/schemas/tesTask/properties/name/$ref"].startswith("dangling")

    copied = copy.deepcopy(ours)
    up_desc = upstream["components"]["schemas"]["tesTask"]["properties"]["volumes"]["description"]
    copied["components"]["schemas"]["tesTask"]["properties"]["volumes"]["description"] = up_desc
    # A single long upstream sentence, reflowed and embedded in our own text, is caught too.
    sentence = ("Implementations should support a minimum of 128 KiB in this field\n"
                "and may define their own maximum.")
    copied["components"]["schemas"]["tesInput"]["properties"]["content"]["description"] = (
        "Inline text. " + sentence)
    found = {d.path for d in check_prose_is_ours(upstream, copied)}
    assert "/components/schemas/tesTask/properties/volumes/description" in found
    assert "/components/schemas/tesInput/properties/content/description" in found
