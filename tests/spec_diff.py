"""Compare our OpenAPI document with the upstream TES v1.1 one; support code for test_spec_compat.

The upstream side is the *facts* file ``tests/spec_data/tes-1.1.0-facts.json``: the upstream
document with all prose removed (:func:`strip_prose`) plus SHA-256 fingerprints of its long prose
fragments (:func:`prose_fingerprints`).  ``tests/spec_data/derive_tes_facts.py`` writes it from the
upstream YAML with the functions below, so derivation and checks share one definition of "prose".

Rules, checked by the ``check_*`` functions, each returning a list of :class:`Diff`:

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
  default.  See ``STATE_PARAM`` and :func:`check_state_param`.
* Ours has no remote ``$ref`` and loads in Connexion without network access.
* Our prose is our own: no upstream description longer than 60 characters (nor any upstream
  sentence of that length) appears verbatim in ours, after whitespace normalisation, starting
  and ending at word boundaries.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

#: Keys whose values are prose for humans; they may (and should) differ from upstream.
PROSE_KEYS = frozenset({"description", "example", "title", "summary"})
#: Keys whose value is a map from *names* to schemas: the names are data, never prose keys
#: (tesTask has a property called ``description``).
NAME_MAP_KEYS = frozenset({"properties"})
#: Keys whose list values are sets: order does not matter, membership does.
SET_KEYS = frozenset({"required", "enum"})
#: Keys whose string values the copied-prose check reads.
CHECKED_PROSE_KEYS = ("description", "summary", "title")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: The one documented difference: (path, method, parameter name) of ListTasks' state filter.
STATE_PARAM = ("/tasks", "get", "state")

#: Verbatim prose longer than this many (normalised) characters is considered copied.
COPY_THRESHOLD = 60

MISSING = object()


# --------------------------------------------------------------------------------------------
# loading


def stringify_keys(node: Any) -> Any:
    """YAML turns ``200:`` into an int key; make every mapping key a string (as JSON has them)."""
    if isinstance(node, dict):
        return {str(k): stringify_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [stringify_keys(v) for v in node]
    return node


def load_spec(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return stringify_keys(yaml.safe_load(fh))


def load_facts(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------------------------
# differences


@dataclass(frozen=True)
class Diff:
    path: str  # JSON-pointer-like location in the document
    problem: str
    upstream: Any = MISSING
    ours: Any = MISSING

    def __str__(self) -> str:
        def show(value: Any) -> str:
            if value is MISSING:
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


def ptr(path: str, key: Any) -> str:
    """``path`` extended by one JSON-pointer segment."""
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _same_scalar(a: Any, b: Any) -> bool:
    # True == 1 in Python; a boolean must not stand in for an integer or vice versa.
    return type(a) is type(b) and a == b


def _compare_set(key: str, up: Any, ours: Any, path: str) -> list[Diff]:
    if not isinstance(ours, list):
        return [Diff(path, "expected a list", up, ours)]
    missing = [v for v in up if v not in ours]
    extra = [v for v in ours if v not in up]
    if not missing and not extra:
        return []
    parts = ([f"missing {missing}"] if missing else []) + ([f"extra {extra}"] if extra else [])
    return [Diff(path, f"{key} differs ({'; '.join(parts)})", up, ours)]


def _compare_names(up: dict, ours: Any, path: str) -> list[Diff]:
    if not isinstance(ours, dict):
        return [Diff(path, "expected a mapping of names", up, ours)]
    diffs: list[Diff] = []
    for name, up_schema in up.items():
        here = ptr(path, name)
        if name not in ours:
            diffs.append(Diff(here, "missing in ours", up_schema))
        else:
            diffs += compare(up_schema, ours[name], here)
    return diffs


def _compare_mapping(up: dict, ours: Any, path: str) -> list[Diff]:
    if not isinstance(ours, dict):
        return [Diff(path, "expected a mapping", up, ours)]
    diffs: list[Diff] = []
    for key, up_value in up.items():
        if is_prose_key(key):
            continue
        here = ptr(path, key)
        if key not in ours:
            diffs.append(Diff(here, "missing in ours", up_value))
        elif key in NAME_MAP_KEYS and isinstance(up_value, dict):
            diffs += _compare_names(up_value, ours[key], here)
        elif key in SET_KEYS and isinstance(up_value, list):
            diffs += _compare_set(key, up_value, ours[key], here)
        else:
            diffs += compare(up_value, ours[key], here)
    return diffs


def _compare_list(up: list, ours: Any, path: str) -> list[Diff]:
    if not isinstance(ours, list):
        return [Diff(path, "expected a list", up, ours)]
    diffs: list[Diff] = []
    if len(up) != len(ours):
        diffs.append(Diff(path, f"list length {len(up)} upstream vs {len(ours)} ours", up, ours))
    for i, (u, o) in enumerate(zip(up, ours)):
        diffs += compare(u, o, ptr(path, i))
    return diffs


def compare(up: Any, ours: Any, path: str) -> list[Diff]:
    """Everything non-prose in ``up`` must be present, unchanged, in ``ours``.

    Keys ours adds are not reported here (see :func:`find_additions`).
    """
    if isinstance(up, dict):
        return _compare_mapping(up, ours, path)
    if isinstance(up, list):
        return _compare_list(up, ours, path)
    if not _same_scalar(up, ours):
        return [Diff(path, "value changed", up, ours)]
    return []


def find_additions(up: Any, ours: Any, path: str) -> list[Diff]:
    """Non-prose keys (and property names) ours adds inside nodes that exist upstream."""
    diffs: list[Diff] = []
    if isinstance(up, dict) and isinstance(ours, dict):
        for key, our_value in ours.items():
            if is_prose_key(key):
                continue
            here = ptr(path, key)
            if key not in up:
                diffs.append(Diff(here, "added by ours", ours=our_value))
            elif key in NAME_MAP_KEYS and isinstance(our_value, dict) and isinstance(up[key], dict):
                for name, schema in our_value.items():
                    if name not in up[key]:
                        diffs.append(Diff(ptr(here, name), "property added by ours", ours=schema))
                    else:
                        diffs += find_additions(up[key][name], schema, ptr(here, name))
            else:
                diffs += find_additions(up[key], our_value, here)
    elif isinstance(up, list) and isinstance(ours, list):
        for i, (u, o) in enumerate(zip(up, ours)):
            diffs += find_additions(u, o, ptr(path, i))
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


# --------------------------------------------------------------------------------------------
# components and operations


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


def operation_params(doc: dict, path_item: dict, operation: dict) -> dict[tuple[str, str], dict]:
    """Parameters of an operation by (name, in), path-level ones overridden by operation-level ones.

    Each value holds the resolved parameter (``param``) and its declaration as written (``raw``).
    """
    out: dict[tuple[str, str], dict] = {}
    for raw in list(path_item.get("parameters", [])) + list(operation.get("parameters", [])):
        param = resolve(doc, raw)
        out[(param["name"], param["in"])] = {"param": param, "raw": raw}
    return out


def is_required(param: dict) -> bool:
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
        diffs.append(Diff(f"{path}/schema/type", "must be 'string'", "string", schema.get("type", MISSING)))
    our_enum = schema.get("enum", [])
    if sorted(our_enum) != sorted(state_enum) or len(our_enum) != len(state_enum):
        diffs.append(Diff(f"{path}/schema/enum", "must equal tesState's enum", state_enum,
                          schema.get("enum", MISSING)))
    if "default" in schema:
        diffs.append(Diff(f"{path}/schema/default", "must have no default", ours=schema["default"]))
    if is_required(param):
        diffs.append(Diff(f"{path}/required", "must stay optional", False, True))
    return diffs


def _check_params(up: dict, ours: dict, where: tuple[str, str], items: tuple[dict, dict],
                  ops: tuple[dict, dict], here: str) -> list[Diff]:
    """Every upstream parameter unchanged in ours (but see STATE_PARAM); ours adds none required."""
    path, method = where
    up_params = operation_params(up, items[0], ops[0])
    our_params = operation_params(ours, items[1], ops[1])
    diffs: list[Diff] = []
    for key, entry in up_params.items():
        name, location = key
        param_here = f"{here}/parameters[{location}:{name}]"
        if key not in our_params:
            diffs.append(Diff(param_here, "parameter missing in ours", entry["param"]))
            continue
        up_param, our_param = entry["param"], our_params[key]["param"]
        if is_required(up_param) != is_required(our_param):
            diffs.append(Diff(f"{param_here}/required", "required changed",
                              is_required(up_param), is_required(our_param)))
        if (path, method, name) == STATE_PARAM and location == "query":
            diffs += check_state_param(up, our_param, param_here)
            up_param = {k: v for k, v in up_param.items() if k != "schema"}
        diffs += compare(up_param, our_param, param_here)
    for (name, location), entry in our_params.items():
        if (name, location) not in up_params and is_required(entry["param"]):
            diffs.append(Diff(f"{here}/parameters[{location}:{name}]",
                              "ours adds a required parameter", ours=entry["param"]))
    return diffs


def _check_request_body(up: dict, ours: dict, up_op: dict, our_op: dict, here: str) -> list[Diff]:
    here = f"{here}/requestBody"
    if "requestBody" in up_op:
        if "requestBody" not in our_op:
            return [Diff(here, "missing in ours", up_op["requestBody"])]
        return compare(resolve(up, up_op["requestBody"]), resolve(ours, our_op["requestBody"]), here)
    if "requestBody" in our_op:
        return [Diff(here, "ours adds a request body", ours=our_op["requestBody"])]
    return []


def _check_responses(up: dict, ours: dict, up_op: dict, our_op: dict, here: str) -> list[Diff]:
    diffs: list[Diff] = []
    for status, up_resp in up_op.get("responses", {}).items():
        r_here = f"{here}/responses/{status}"
        our_resp = our_op.get("responses", {}).get(status)
        if our_resp is None:
            diffs.append(Diff(r_here, "response missing in ours", up_resp))
        else:
            diffs += compare(resolve(up, up_resp), resolve(ours, our_resp), r_here)
    return diffs


def check_operations(up: dict, ours: dict) -> list[Diff]:
    """Paths, methods, operationIds, parameters, request bodies and upstream responses."""
    diffs: list[Diff] = []
    for path, up_item in up.get("paths", {}).items():
        p_here = ptr("/paths", path)
        our_item = ours.get("paths", {}).get(path)
        if our_item is None:
            diffs.append(Diff(p_here, "path missing in ours", sorted(up_item)))
            continue
        for method in (m for m in HTTP_METHODS if m in up_item):
            up_op, our_op = up_item[method], our_item.get(method)
            here = ptr(p_here, method)
            if our_op is None:
                diffs.append(Diff(here, "operation missing in ours", up_op.get("operationId")))
                continue
            if up_op.get("operationId") != our_op.get("operationId"):
                diffs.append(Diff(f"{here}/operationId", "operationId changed",
                                  up_op.get("operationId"), our_op.get("operationId", MISSING)))
            diffs += _check_params(up, ours, (path, method), (up_item, our_item), (up_op, our_op), here)
            diffs += _check_request_body(up, ours, up_op, our_op, here)
            diffs += _check_responses(up, ours, up_op, our_op, here)
    return diffs


# --------------------------------------------------------------------------------------------
# references


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Yield (path of the mapping, key, value) for every mapping entry in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, ptr(path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, ptr(path, i))


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


# --------------------------------------------------------------------------------------------
# prose: stripping it, fingerprinting it, finding copies of it


def strip_prose(node: Any) -> Any:
    """``node`` without the prose keys :func:`compare` ignores; names in ``properties`` stay."""
    if isinstance(node, dict):
        return {key: _strip_names(value) if key in NAME_MAP_KEYS else strip_prose(value)
                for key, value in node.items() if not is_prose_key(key)}
    if isinstance(node, list):
        return [strip_prose(value) for value in node]
    return node


def _strip_names(node: Any) -> Any:
    if not isinstance(node, dict):
        return strip_prose(node)
    return {name: strip_prose(schema) for name, schema in node.items()}


def normalize(text: str) -> str:
    """Whitespace runs become one space, so reflowed text still matches."""
    return " ".join(text.split())


def prose_strings(doc: dict) -> Iterator[tuple[str, str]]:
    """(location, normalised text) of every description, summary and title string."""
    for path, key, value in walk(doc):
        if key in CHECKED_PROSE_KEYS and isinstance(value, str):
            yield f"{path}/{key}", normalize(value)


def long_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?:])\s+", text) if len(s) > COPY_THRESHOLD]


def long_fragments(doc: dict) -> set[str]:
    """Every normalised prose string over COPY_THRESHOLD characters, and every such sentence."""
    texts = {text for _, text in prose_strings(doc) if len(text) > COPY_THRESHOLD}
    return texts | {s for text in texts for s in long_sentences(text)}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, order=True)
class Fingerprint:
    length: int  # in normalised characters: the window size to hash when searching
    sha256: str


def prose_fingerprints(doc: dict) -> list[Fingerprint]:
    """Fingerprints of :func:`long_fragments`, sorted; the facts file stores these, not the text."""
    return sorted({Fingerprint(len(text), digest(text)) for text in long_fragments(doc)})


def fingerprints_from_facts(facts: dict) -> list[Fingerprint]:
    lengths = facts["prose_fingerprints"]["length_by_sha256"]
    return sorted(Fingerprint(length, sha256) for sha256, length in lengths.items())


def fingerprints_by_length(fingerprints: Iterable[Fingerprint]) -> dict[int, frozenset[str]]:
    by_length: dict[int, set[str]] = {}
    for fp in fingerprints:
        by_length.setdefault(fp.length, set()).add(fp.sha256)
    return {length: frozenset(digests) for length, digests in by_length.items()}


#: Between two word characters: a copy is not looked for starting or ending mid-word.
_INSIDE_WORD = re.compile(r"(?<=\w)(?=\w)")


def _window_bounds(text: str) -> tuple[list[int], set[int]]:
    """Where a copied fragment may start, and where it may end (exclusive), in ``text``.

    Fragments are normalised, so they start and end with a non-space; nobody glues a copy to
    a word of their own ("re" + copy).  Skipping those windows cuts the hashing about fifteenfold.
    """
    inside = {m.start() for m in _INSIDE_WORD.finditer(text)}
    cuts = [i for i in range(len(text) + 1) if i not in inside]
    starts = [i for i in cuts if i < len(text) and text[i] != " "]
    ends = {i for i in cuts if i > 0 and text[i - 1] != " "}
    return starts, ends


def find_fingerprinted(text: str, by_length: dict[int, frozenset[str]]) -> str | None:
    """The first substring of ``text`` whose digest is fingerprinted, if any.

    Hashes every window of a fingerprinted length that starts and ends at a word boundary
    (about 60 000 short hashes for our whole document, well under a tenth of a second).
    """
    starts, ends = _window_bounds(text)
    for length, digests in by_length.items():
        for start in starts:
            end = start + length
            if end > len(text):
                break
            if end in ends and digest(text[start:end]) in digests:
                return text[start:end]
    return None


def check_prose_is_ours(fingerprints: Iterable[Fingerprint], ours: dict) -> list[Diff]:
    """No fingerprinted upstream prose appears, even reflowed or embedded, in our prose."""
    by_length = fingerprints_by_length(fingerprints)
    diffs: list[Diff] = []
    for path, text in prose_strings(ours):
        copied = find_fingerprinted(text, by_length)
        if copied is not None:
            diffs.append(Diff(path, "prose copied verbatim from upstream",
                              f"sha256 {digest(copied)[:16]}...", copied))
    return diffs
