"""Our OpenAPI document (openapi/tes.yaml) must stay schema-compatible with upstream TES v1.1.

The upstream side is ``tests/spec_data/tes-1.1.0-facts.json``, generated from the upstream YAML by
``tests/spec_data/derive_tes_facts.py``: the upstream document without its prose, plus SHA-256
fingerprints of that prose.  The rules, and the checkers that enforce them, are in
:mod:`tests.spec_diff`; the comparison helpers return lists of :class:`~tests.spec_diff.Diff`
and a failing test prints all of them at once.
"""

from __future__ import annotations

import copy
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from .spec_diff import (
    COPY_THRESHOLD,
    HTTP_METHODS,
    PROSE_KEYS,
    Diff,
    check_components,
    check_operations,
    check_prose_is_ours,
    check_refs,
    compare,
    find_additions,
    fingerprints_from_facts,
    format_diffs,
    load_facts,
    load_spec,
    long_sentences,
    operation_params,
    prose_fingerprints,
    resolve,
    stringify_keys,
    strip_prose,
    walk,
)

ROOT = Path(__file__).resolve().parents[1]
OURS_PATH = ROOT / "openapi" / "tes.yaml"
EXTENSIONS_PATH = ROOT / "openapi" / "extensions.yaml"
FACTS_PATH = ROOT / "tests" / "spec_data" / "tes-1.1.0-facts.json"
DERIVE_SCRIPT = ROOT / "tests" / "spec_data" / "derive_tes_facts.py"
BASE_PATH = "/ga4gh/tes/v1"

#: Schemas ours defines that upstream has not.
OUR_OWN_SCHEMAS = frozenset({"Error"})

#: What each extension operation answers when it succeeds, besides the JSON of its errors: its
#: handler answers with a response object of that type (or a middleware does), never a dict, so
#: Connexion need not choose among the operation's media types.
EXTENSION_MEDIA_TYPES = {"StreamEvents": {"text/event-stream"}, "GetExecutorLog": {"text/plain"}}


@pytest.fixture(scope="module")
def facts() -> dict:
    return load_facts(FACTS_PATH)


@pytest.fixture(scope="module")
def upstream(facts) -> dict:
    """The upstream document, prose removed."""
    return facts["spec"]


@pytest.fixture(scope="module")
def fingerprints(facts):
    return fingerprints_from_facts(facts)


@pytest.fixture(scope="module")
def ours() -> dict:
    return load_spec(OURS_PATH)


@pytest.fixture(scope="module")
def served() -> dict:
    """The document the app serves: tes.yaml with the paths of extensions.yaml."""
    from tes_cts.api.app import served_spec

    return stringify_keys(served_spec())


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
        params = operation_params(ours, ours["paths"][path], ours["paths"][path][method])
        assert params[("view", "query")]["param"]["schema"] == our_view["schema"]


def test_state_filter_is_the_documented_exception(upstream, ours):
    params = operation_params(ours, ours["paths"]["/tasks"], ours["paths"]["/tasks"]["get"])
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


def test_single_response_media_type(served):
    """Connexion 3 picks a handler's response Content-Type from the set of ALL media types an
    operation declares; with more than one (say application/json for 200 and
    application/problem+json for errors), a handler returning a plain dict fails with
    NonConformingResponseHeaders.  So every response of a TES operation, errors included, is
    application/json; an extension's successes have their own documented type
    (EXTENSION_MEDIA_TYPES), and its errors are application/json too."""
    problems = []
    for path, item in served["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            own = EXTENSION_MEDIA_TYPES.get(op["operationId"], set())
            for code, resp in op.get("responses", {}).items():
                types = set(resolve(served, resp).get("content", {}))
                allowed = {"application/json"} if str(code).startswith(("4", "5")) else own or {"application/json"}
                if types != allowed:
                    problems.append(f"{method.upper()} {path} {code}: {sorted(types)}, not {sorted(allowed)}")
    assert not problems, "responses of other media types than documented:\n" + "\n".join(problems)


def test_served_document_is_tes_with_the_extensions(ours, served):
    """tes.yaml stays the TES API; the served document adds the extensions' paths, and no
    extension changes a TES path."""
    extensions = load_spec(EXTENSIONS_PATH)["paths"]
    assert set(served["paths"]) == set(ours["paths"]) | set(extensions)
    assert not set(ours["paths"]) & set(extensions)
    assert {path: served["paths"][path] for path in ours["paths"]} == ours["paths"]
    extension_ids = {op["operationId"] for item in extensions.values() for method, op in item.items()
                     if method in HTTP_METHODS}
    assert extension_ids == set(EXTENSION_MEDIA_TYPES)


def test_no_remote_refs(ours):
    diffs = check_refs(ours)
    assert not diffs, format_diffs(diffs, "bad $ref in openapi/tes.yaml")


def test_prose_is_our_own(fingerprints, ours):
    diffs = check_prose_is_ours(fingerprints, ours)
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


def test_the_app_serves_tes_with_the_extensions(client, served):
    """The real app's document at openapi.json: tes.yaml's paths and the extensions'."""
    response = client.get(f"{BASE_PATH}/openapi.json")
    assert response.status_code == 200, response.text
    assert set(response.json()["paths"]) == set(served["paths"])


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


def test_checker_reports_remote_refs(ours):
    broken = copy.deepcopy(ours)
    broken["components"]["schemas"]["tesServiceInfo"]["allOf"][0] = {
        "$ref": "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml#/components/schemas/Service"
    }
    broken["components"]["schemas"]["tesTask"]["properties"]["name"]["$ref"] = "#/components/schemas/nope"
    found = {d.path: d.problem for d in check_refs(broken)}
    assert found["/components/schemas/tesServiceInfo/allOf/0/$ref"].startswith("remote")
    assert found["/components/schemas/tesTask/properties/name/$ref"].startswith("dangling")


# Made-up "upstream" prose for the copied-prose self-test: the facts file holds no real prose.
#: Longer than COPY_THRESHOLD, but only as a whole: each sentence is short.
MADE_UP_DESCRIPTION = "Volumes are made up here. So is this. Each sentence is short. Together they are long."
#: One sentence longer than COPY_THRESHOLD.
MADE_UP_SENTENCE = "Implementations of this made-up rule should reject any request that names no backend."


def made_up_upstream() -> dict:
    return {"components": {"schemas": {
        "tesTask": {"properties": {"volumes": {"description": MADE_UP_DESCRIPTION}}},
        "tesInput": {"description": "Short intro. " + MADE_UP_SENTENCE + " Short outro."},
    }}}


def test_checker_reports_copied_prose(ours):
    assert len(MADE_UP_DESCRIPTION) > COPY_THRESHOLD and not long_sentences(MADE_UP_DESCRIPTION)
    assert len(MADE_UP_SENTENCE) > COPY_THRESHOLD
    fingerprints = prose_fingerprints(made_up_upstream())
    assert check_prose_is_ours(fingerprints, ours) == []

    copied = copy.deepcopy(ours)
    schemas = copied["components"]["schemas"]
    # A whole upstream description, reflowed...
    schemas["tesTask"]["properties"]["volumes"]["description"] = MADE_UP_DESCRIPTION.replace(". ", ".\n")
    # ...and a single long upstream sentence, reflowed and embedded in our own text.
    reflowed = MADE_UP_SENTENCE.replace(" any ", "\n  any ")
    schemas["tesInput"]["properties"]["content"]["description"] = f"Inline text (as in: {reflowed}) here."
    diffs = {d.path: d for d in check_prose_is_ours(fingerprints, copied)}
    assert set(diffs) == {
        "/components/schemas/tesTask/properties/volumes/description",
        "/components/schemas/tesInput/properties/content/description",
    }, format_diffs(list(diffs.values()), "x")
    assert diffs["/components/schemas/tesInput/properties/content/description"].ours == MADE_UP_SENTENCE


# --------------------------------------------------------------------------------------------
# the facts file


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def prose_keys_in(doc: dict) -> list[str]:
    """Locations of prose keys, except property names (the keys of a ``properties`` map)."""
    return [
        f"{path}/{key}"
        for path, key, value in walk(doc)
        if (key in PROSE_KEYS or str(key).startswith("x-"))
        and not (path.endswith("/properties") and isinstance(value, dict))
    ]


def test_facts_hold_no_prose(facts):
    assert prose_keys_in(facts["spec"]) == []
    # Names survive: tesTask has a property called description.
    assert "description" in facts["spec"]["components"]["schemas"]["tesTask"]["properties"]
    wordy = [text for text in _strings(facts["spec"]) if len(text.split()) > 2]
    assert wordy == [], "sentence-like strings in the facts file"


def test_facts_fingerprint_upstream_prose(facts, fingerprints):
    assert facts["prose_fingerprints"]["threshold"] == COPY_THRESHOLD
    assert len(fingerprints) > 50
    for fp in fingerprints:
        assert fp.length > COPY_THRESHOLD
        assert re.fullmatch(r"[0-9a-f]{64}", fp.sha256), fp


def test_facts_match_our_schema_names(upstream, ours):
    upstream_names = set(upstream["components"]["schemas"])
    our_names = set(ours["components"]["schemas"])
    assert upstream_names == our_names - OUR_OWN_SCHEMAS
    assert set(upstream["paths"]) == set(ours["paths"])


def test_derive_script(tmp_path):
    """The generator runs stand-alone and writes what the checks read."""
    source = tmp_path / "made-up.openapi.yaml"
    source.write_text(
        "openapi: 3.0.1\n"
        "info: {title: Made up, version: 1.1.0, x-logo: {url: 'https://example.org/logo.svg'}}\n"
        "paths:\n"
        "  /tasks:\n"
        "    get:\n"
        "      summary: ListTasks\n"
        "      operationId: ListTasks\n"
        "      responses:\n"
        "        200: {description: OK, content: {application/json: {schema: {type: object}}}}\n"
        "components:\n"
        "  schemas:\n"
        "    tesTask:\n"
        f"      description: '{MADE_UP_SENTENCE}'\n"
        "      properties:\n"
        "        description: {type: string, example: A task, title: Description}\n",
        encoding="utf-8",
    )
    output = tmp_path / "facts.json"
    subprocess.run([sys.executable, str(DERIVE_SCRIPT), str(source), "--output", str(output)],
                   check=True, capture_output=True, cwd=tmp_path)
    derived = load_facts(output)
    assert derived["spec"] == {
        "openapi": "3.0.1",
        "info": {"version": "1.1.0"},
        "paths": {"/tasks": {"get": {"operationId": "ListTasks", "responses": {
            "200": {"content": {"application/json": {"schema": {"type": "object"}}}}}}}},
        "components": {"schemas": {"tesTask": {"properties": {"description": {"type": "string"}}}}},
    }
    assert derived["spec"] == strip_prose(load_spec(source))
    assert fingerprints_from_facts(derived) == prose_fingerprints(load_spec(source))
    assert derived["source"]["file"] == source.name
    assert MADE_UP_SENTENCE not in output.read_text(encoding="utf-8")
