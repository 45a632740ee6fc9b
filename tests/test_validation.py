"""Unit tests of tes_cts.tasks.validation: pure functions, no HTTP, no database."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace

import pytest

from tes_cts.model.limits import SizeLimits
from tes_cts.tasks.validation import AcceptedTask, Problem, TaskValidationError, ValidationLimits, validate_task

LIMITS = ValidationLimits(
    content_max_bytes=128 * 1024,
    file_roots=("/srv/data", "/scratch/"),
    supported_backend_parameters=frozenset({"docker_network", "queue"}),
)
NO_FILE_ROOTS = ValidationLimits(128 * 1024, (), frozenset())


def minimal(**extra) -> dict:
    return {"executors": [{"image": "ubuntu:24.04", "command": ["echo", "hi"]}], **extra}


def accept(body: object, limits: ValidationLimits = LIMITS) -> AcceptedTask:
    return validate_task(body, limits)


def problems(body: object, limits: ValidationLimits = LIMITS) -> list[Problem]:
    with pytest.raises(TaskValidationError) as caught:
        validate_task(body, limits)
    assert caught.value.problems, "a TaskValidationError must list at least one problem"
    return caught.value.problems


def fields(body: object, limits: ValidationLimits = LIMITS) -> list[str]:
    return [p.field for p in problems(body, limits)]


def only_problem(body: object, limits: ValidationLimits = LIMITS) -> Problem:
    found = problems(body, limits)
    assert len(found) == 1, found
    return found[0]


def with_default_types(body: dict) -> dict:
    """`body` as validation stores it when nothing else needs normalizing: TES's default type
    FILE filled in for every input and output that gives none."""
    stored = copy.deepcopy(body)
    for key in ("inputs", "outputs"):
        for item in stored.get(key, []):
            item.setdefault("type", "FILE")
    return stored


def accepted_as_given(body: dict, limits: ValidationLimits = LIMITS) -> dict:
    """Accept `body` and check that the stored task holds exactly what was given (defaults
    applied) and no warning; the stored task."""
    accepted = accept(copy.deepcopy(body), limits)
    assert accepted.task == with_default_types(body)
    assert accepted.warnings == []
    return accepted.task


# --- the document as a whole --------------------------------------------------------------


def test_minimal_task_is_accepted_unchanged():
    accepted = accept(minimal())
    assert accepted.task == minimal()
    assert accepted.warnings == []


def test_full_valid_task_keeps_every_tes_field():
    body = {
        "name": "",
        "description": "all fields",
        "inputs": [
            {"name": "a", "description": "d", "url": "s3://my-bucket/in/a.txt", "path": "/data/a", "type": "FILE", "streamable": True},
            {"content": "hello", "path": "/data/b"},
            {"url": "https://example.org/x", "path": "/data/c"},
            {"url": "/srv/data/d", "path": "/data/d"},
            {"url": "file:///scratch/e", "path": "/data/e"},
            {"url": "s3://my-bucket/dir/", "path": "/data/dir", "type": "DIRECTORY"},
        ],
        "outputs": [
            {"name": "o", "description": "d", "url": "s3://my-bucket/out/o", "path": "/data/o", "type": "FILE"},
            {"url": "s3://my-bucket/many/", "path": "/data/out/*.txt", "path_prefix": "/data/out"},
        ],
        "resources": {
            "cpu_cores": 2, "ram_gb": 1.5, "disk_gb": 10, "preemptible": False, "zones": ["z1"],
            "backend_parameters": {"queue": "short"}, "backend_parameters_strict": True,
        },
        "executors": [{
            "image": "ubuntu", "command": ["sh", "-c", "cat /data/a"], "workdir": "/data/",
            "stdin": "/data/a", "stdout": "/tmp/out", "stderr": "/tmp/err",
            "env": {"A": "1", "EMPTY": ""}, "ignore_error": True,
        }],
        "volumes": ["/vol/A/"],
        "tags": {"WORKFLOW_ID": "cwl-01234", "": "empty keys are fine in tags"},
    }
    accepted = accept(copy.deepcopy(body))
    expected = copy.deepcopy(body)
    expected["inputs"][1]["type"] = expected["inputs"][2]["type"] = "FILE"
    expected["inputs"][3]["type"] = expected["inputs"][4]["type"] = "FILE"
    expected["outputs"][1]["type"] = "FILE"
    assert accepted.task == expected
    assert accepted.warnings == []


def test_stored_task_does_not_share_containers_with_the_body():
    body = minimal(tags={"a": "b"}, volumes=["/v"])
    task = accept(body).task
    body["tags"]["a"] = "changed"
    body["volumes"].append("/w")
    body["executors"][0]["command"].append("x")
    assert task["tags"] == {"a": "b"}
    assert task["volumes"] == ["/v"]
    assert task["executors"][0]["command"] == ["echo", "hi"]


@pytest.mark.parametrize("body", [None, [], [minimal()], "task", "", 0, 1.5, True, b"{}"])
def test_a_body_that_is_not_an_object_is_one_problem_about_the_whole_task(body):
    problem = only_problem(body)
    assert problem.field == ""
    assert "JSON object" in problem.reason


def test_server_set_fields_are_ignored():
    body = minimal(id="job-1", state="COMPLETE", logs=[{"logs": []}], creation_time="2020-01-01T00:00:00Z")
    assert accept(body).task == minimal()


def test_server_set_fields_are_ignored_even_when_malformed():
    assert accept(minimal(id=5, state=["x"], logs="nope", creation_time={})).task == minimal()


def test_unknown_keys_are_dropped_everywhere():
    body = minimal(
        extra=1,
        inputs=[{"url": "s3://my-bucket/k", "path": "/in", "checksum": "x"}],
        outputs=[{"url": "s3://my-bucket/k", "path": "/out", "size": 3}],
        resources={"cpu_cores": 1, "gpus": 2},
    )
    body["executors"][0]["user"] = "root"
    task = accept(body).task
    assert "extra" not in task
    assert task["inputs"] == [{"url": "s3://my-bucket/k", "path": "/in", "type": "FILE"}]
    assert task["outputs"] == [{"url": "s3://my-bucket/k", "path": "/out", "type": "FILE"}]
    assert task["resources"] == {"cpu_cores": 1}
    assert task["executors"] == [{"image": "ubuntu:24.04", "command": ["echo", "hi"]}]


def test_null_properties_are_absent_at_every_level():
    body = minimal(name=None, description=None, inputs=None, outputs=None, resources=None, volumes=None, tags=None)
    body["executors"][0].update(workdir=None, env=None, stdin=None, ignore_error=None)
    assert accept(body).task == minimal()
    nested = minimal(
        inputs=[{"url": "s3://my-bucket/k", "path": "/in", "content": None, "type": None, "name": None}],
        resources={"cpu_cores": None, "backend_parameters": None},
    )
    task = accept(nested).task
    assert task["inputs"] == [{"url": "s3://my-bucket/k", "path": "/in", "type": "FILE"}]
    assert task["resources"] == {}


def test_null_items_in_arrays_are_problems():
    # tags.a is not among them: a null map value is an absent key (below)
    body = minimal(volumes=[None], tags={"a": None}, inputs=[None], resources={"zones": [None]})
    assert sorted(fields(body)) == ["inputs[0]", "resources.zones[0]", "volumes[0]"]


def test_null_map_values_are_absent_keys_and_are_not_stored():
    # As Cromwell sends them: parent_workflow_id of a root workflow, unset runtime attributes.
    body = minimal(
        tags={"workflow_id": "wf-1", "parent_workflow_id": None},
        resources={"backend_parameters": {"queue": "short", "vm_size": None, "Docker_Network": None}},
    )
    body["executors"][0]["env"] = {"A": "1", "UNSET": None}
    accepted = accept(body)
    assert accepted.task["tags"] == {"workflow_id": "wf-1"}
    assert accepted.task["resources"] == {"backend_parameters": {"queue": "short"}}
    assert accepted.task["executors"][0]["env"] == {"A": "1"}
    assert accepted.warnings == []  # an absent key is not an unsupported one


def test_a_null_map_value_is_absent_before_any_rule_on_its_key():
    body = minimal(
        tags={"only": None},
        resources={"backend_parameters": {"queue": "a", "Queue": None, "VmSize": None}, "backend_parameters_strict": True},
    )
    body["executors"][0]["env"] = {"A=B": None, "": None}
    accepted = accept(body)
    assert accepted.task["tags"] == {}
    assert accepted.task["resources"] == {"backend_parameters": {"queue": "a"}, "backend_parameters_strict": True}
    assert accepted.task["executors"][0]["env"] == {}
    assert accepted.warnings == []


def test_a_backend_parameters_map_of_nulls_is_not_stored():
    task = accept(minimal(resources={"cpu_cores": 1, "backend_parameters": {"vm_size": None}})).task
    assert task["resources"] == {"cpu_cores": 1}


def test_all_problems_are_reported_at_once():
    body = {
        "inputs": [{"url": "gs://bucket/x", "path": "/in"}],  # 1: unsupported scheme
        "resources": {"cpu_cores": True},  # 2: boolean for integer
        "executors": [{"image": "ubuntu"}],  # 3: command missing
        "volumes": ["relative/dir"],  # 4: not absolute
        "tags": {"project": 7},  # 5: not a string
    }
    assert sorted(fields(body)) == sorted([
        "inputs[0].url", "resources.cpu_cores", "executors[0].command", "volumes[0]", "tags.project",
    ])


def test_the_exception_message_lists_every_problem():
    with pytest.raises(TaskValidationError) as caught:
        validate_task({"executors": [], "name": 3}, LIMITS)
    message = str(caught.value)
    assert "name: must be a string" in message
    assert "executors: at least one executor" in message


# --- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [
    ("name", 1), ("description", ["x"]), ("inputs", {}), ("outputs", "x"), ("executors", {"image": "u"}),
    ("volumes", "/v"), ("tags", ["a"]), ("resources", []),
])
def test_top_level_types(key, value):
    body = minimal()
    body[key] = value
    assert fields(body) == [key]


def test_tags_must_map_strings_to_strings():
    assert fields(minimal(tags={"a": "ok", "b": 1, "c": True, "d": {}})) == ["tags.b", "tags.c", "tags.d"]


@pytest.mark.parametrize("key, value", [
    ("cpu_cores", 1.0), ("cpu_cores", "2"), ("cpu_cores", True), ("ram_gb", "8"), ("ram_gb", False),
    ("disk_gb", [1]), ("preemptible", 0), ("preemptible", "true"), ("zones", "us-east-1"),
    ("zones", [1]), ("backend_parameters", ["queue"]), ("backend_parameters", {"queue": 1}),
    ("backend_parameters_strict", 1),
])
def test_resource_types(key, value):
    found = fields(minimal(resources={key: value}))
    assert len(found) == 1 and found[0].startswith(f"resources.{key}")


def test_numbers_accept_integers_and_floats():
    task = accept(minimal(resources={"ram_gb": 8, "disk_gb": 0.5, "cpu_cores": 4})).task
    assert task["resources"] == {"ram_gb": 8, "disk_gb": 0.5, "cpu_cores": 4}


@pytest.mark.parametrize("key, value", [
    ("cpu_cores", 0), ("cpu_cores", -1), ("cpu_cores", 2**31), ("cpu_cores", 10**400),
    ("ram_gb", 0), ("ram_gb", -1.5), ("disk_gb", 0.0),
    ("ram_gb", float("nan")), ("ram_gb", float("inf")), ("disk_gb", float("-inf")), ("ram_gb", 10**400),
])
def test_resource_ranges(key, value):
    assert fields(minimal(resources={key: value})) == [f"resources.{key}"]


def test_strings_must_be_encodable_unicode():
    assert "Unicode" in only_problem(minimal(name="bad \ud800 surrogate")).reason
    assert fields(minimal(tags={"\udfff": "x"})) == ['tags["\\udfff"]']


# --- executors --------------------------------------------------------------------------------


@pytest.mark.parametrize("executors", [None, []])
def test_at_least_one_executor(executors):
    body = minimal()
    body["executors"] = executors
    problem = only_problem(body)
    assert problem.field == "executors" and "at least one executor" in problem.reason


def test_executors_missing_entirely():
    assert fields({"name": "x"}) == ["executors"]


def test_executor_must_be_an_object():
    assert fields({"executors": [minimal()["executors"][0], "echo hi"]}) == ["executors[1]"]


def test_executor_image_and_command_required():
    assert sorted(fields({"executors": [{}]})) == ["executors[0].command", "executors[0].image"]


def test_executor_image_must_not_be_empty():
    assert fields({"executors": [{"image": "", "command": ["x"]}]}) == ["executors[0].image"]


def test_executor_command_must_be_a_non_empty_array_of_strings():
    assert fields({"executors": [{"image": "u", "command": []}]}) == ["executors[0].command"]
    assert fields({"executors": [{"image": "u", "command": "echo hi"}]}) == ["executors[0].command"]
    assert fields({"executors": [{"image": "u", "command": ["echo", 1, None]}]}) == [
        "executors[0].command[1]", "executors[0].command[2]",
    ]


def test_empty_string_arguments_are_allowed():
    assert accept({"executors": [{"image": "u", "command": ["printf", ""]}]}).task["executors"][0]["command"] == ["printf", ""]


def test_nul_bytes_cannot_reach_argv_or_environ():
    body = {"executors": [{"image": "u\x00", "command": ["a\x00b"], "env": {"A": "x\x00"}}]}
    assert fields(body) == ["executors[0].image", "executors[0].command[0]", "executors[0].env.A"]


@pytest.mark.parametrize("key", ["workdir", "stdin", "stdout", "stderr"])
@pytest.mark.parametrize("value", ["relative", "", "/data/../etc", "/a\x00b"])
def test_executor_paths_must_be_absolute_and_clean(key, value):
    body = minimal()
    body["executors"][0][key] = value
    assert fields(body) == [f"executors[0].{key}"]


def test_executor_workdir_may_be_the_root():
    body = minimal()
    body["executors"][0]["workdir"] = "/"
    assert accepted_as_given(body)["executors"][0]["workdir"] == "/"


def test_executor_env_keys():
    body = minimal()
    body["executors"][0]["env"] = {"GOOD": "1", "": "x", "A=B": "y", "N": 3}
    assert fields(body) == ["executors[0].env.N", 'executors[0].env[""]', 'executors[0].env["A=B"]']


def test_executor_ignore_error_must_be_boolean():
    body = minimal()
    body["executors"][0]["ignore_error"] = "yes"
    assert fields(body) == ["executors[0].ignore_error"]


def test_problems_in_several_executors_are_indexed():
    body = {"executors": [{"image": "u", "command": ["x"]}, {"image": "u"}, {"command": ["x"]}]}
    assert sorted(fields(body)) == ["executors[1].command", "executors[2].image"]


# --- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["data/x", "", "./x", "/data/../x", "/..", "/data/x\x00", "/"])
def test_input_output_and_volume_paths(path):
    body = minimal(
        inputs=[{"url": "s3://my-bucket/k", "path": path}],
        outputs=[{"url": "s3://my-bucket/k", "path": path}],
        volumes=[path],
    )
    assert sorted(fields(body)) == ["inputs[0].path", "outputs[0].path", "volumes[0]"]


def test_paths_are_kept_as_given():
    body = minimal(inputs=[{"url": "s3://my-bucket/k", "path": "/data//x/./y/"}], volumes=["/vol/A/"])
    task = accept(body).task
    assert task["inputs"][0]["path"] == "/data//x/./y/"
    assert task["volumes"] == ["/vol/A/"]


def test_dotdot_inside_a_name_is_not_a_segment():
    task = accepted_as_given(minimal(inputs=[{"url": "s3://my-bucket/k", "path": "/data/..hidden/a..b"}]))
    assert task["inputs"][0]["path"] == "/data/..hidden/a..b"


def test_duplicate_input_paths_name_both_indexes():
    body = minimal(inputs=[
        {"url": "s3://my-bucket/a", "path": "/data/x"},
        {"url": "s3://my-bucket/b", "path": "/data/y"},
        {"content": "c", "path": "/data//x/"},
    ])
    problem = only_problem(body)
    assert problem.field == "inputs[2].path"
    assert "inputs[0].path" in problem.reason


def test_duplicate_output_paths_name_both_indexes():
    body = minimal(outputs=[{"url": "s3://my-bucket/a", "path": "/o"}, {"url": "s3://my-bucket/b", "path": "/o"}])
    problem = only_problem(body)
    assert problem.field == "outputs[1].path" and "outputs[0].path" in problem.reason


def test_the_same_path_as_input_and_output_is_fine():
    task = accepted_as_given(minimal(inputs=[{"url": "s3://my-bucket/a", "path": "/x"}], outputs=[{"url": "s3://my-bucket/a", "path": "/x"}]))
    assert task["inputs"][0]["path"] == task["outputs"][0]["path"] == "/x"


# --- inputs -----------------------------------------------------------------------------------


def test_input_path_is_required():
    assert fields(minimal(inputs=[{"url": "s3://my-bucket/k"}])) == ["inputs[0].path"]


def test_input_needs_url_or_content():
    problem = only_problem(minimal(inputs=[{"path": "/in"}]))
    assert problem.field == "inputs[0].url" and "content" in problem.reason


def test_input_must_not_have_both_url_and_content():
    assert fields(minimal(inputs=[{"path": "/in", "url": "s3://my-bucket/k", "content": "x"}])) == ["inputs[0].content"]


def test_empty_content_is_an_empty_file_and_counts_as_content():
    task = accept(minimal(inputs=[{"path": "/in", "content": ""}])).task
    assert task["inputs"] == [{"path": "/in", "content": "", "type": "FILE"}]
    assert fields(minimal(inputs=[{"path": "/in", "content": "", "url": "s3://my-bucket/k"}])) == ["inputs[0].content"]


def test_content_limit_counts_utf8_bytes():
    limits = ValidationLimits(content_max_bytes=4, file_roots=(), supported_backend_parameters=frozenset())
    assert accepted_as_given(minimal(inputs=[{"path": "/in", "content": "abcd"}]), limits)["inputs"][0]["content"] == "abcd"
    assert accepted_as_given(minimal(inputs=[{"path": "/in", "content": "éé"}]), limits)["inputs"][0]["content"] == "éé"  # 4 bytes
    problem = only_problem(minimal(inputs=[{"path": "/in", "content": "ééé"}]), limits)  # 6 bytes
    assert problem.field == "inputs[0].content"
    assert "4 bytes" in problem.reason and "tasks.content_max_bytes" in problem.reason


def test_content_cannot_make_a_directory():
    assert fields(minimal(inputs=[{"path": "/in", "content": "x", "type": "DIRECTORY"}])) == ["inputs[0].type"]


@pytest.mark.parametrize("kind", ["file", "Directory", "LINK", ""])
def test_input_and_output_type_enum(kind):
    body = minimal(
        inputs=[{"url": "s3://my-bucket/k", "path": "/in", "type": kind}],
        outputs=[{"url": "s3://my-bucket/k", "path": "/out", "type": kind}],
    )
    assert fields(body) == ["inputs[0].type", "outputs[0].type"]


def test_input_streamable_must_be_boolean():
    assert fields(minimal(inputs=[{"url": "s3://my-bucket/k", "path": "/in", "streamable": "no"}])) == ["inputs[0].streamable"]


def test_type_defaults_to_file_and_given_type_is_kept():
    task = accept(minimal(
        inputs=[{"url": "s3://my-bucket/k", "path": "/a"}, {"url": "s3://my-bucket/d/", "path": "/b", "type": "DIRECTORY"}],
        outputs=[{"url": "s3://my-bucket/k", "path": "/c"}],
    )).task
    assert [i["type"] for i in task["inputs"]] == ["FILE", "DIRECTORY"]
    assert task["outputs"][0]["type"] == "FILE"


# --- outputs ----------------------------------------------------------------------------------


def test_output_path_and_url_required():
    assert sorted(fields(minimal(outputs=[{}]))) == ["outputs[0].path", "outputs[0].url"]


def test_output_must_be_an_object():
    assert fields(minimal(outputs=["s3://my-bucket/k"])) == ["outputs[0]"]


@pytest.mark.parametrize("path", ["/data/out/*.txt", "/data/out/file?.txt", "/data/out/[ab].txt", "/data/out/sub/*/x"])
def test_wildcard_output_requires_path_prefix(path):
    problem = only_problem(minimal(outputs=[{"url": "s3://my-bucket/out/", "path": path}]))
    assert problem.field == "outputs[0].path_prefix" and "wildcards" in problem.reason
    task = accepted_as_given(minimal(outputs=[{"url": "s3://my-bucket/out/", "path": path, "path_prefix": "/data/out"}]))
    assert task["outputs"][0]["path"] == path and task["outputs"][0]["path_prefix"] == "/data/out"


@pytest.mark.parametrize("prefix", ["/data/out", "/data/out/", "/data", "/"])
def test_path_prefix_that_is_a_leading_directory(prefix):
    task = accepted_as_given(minimal(outputs=[{"url": "s3://my-bucket/out/", "path": "/data/out/*.txt", "path_prefix": prefix}]))
    assert task["outputs"][0]["path_prefix"] == prefix


@pytest.mark.parametrize("prefix", ["/data/o", "/data/outer", "/other", "/data/out/*.txt", "/data/*"])
def test_path_prefix_compares_whole_segments(prefix):
    problem = only_problem(minimal(outputs=[{"url": "s3://my-bucket/o/", "path": "/data/out/*.txt", "path_prefix": prefix}]))
    assert problem.field == "outputs[0].path_prefix"


def test_path_prefix_must_not_be_outside_the_path_via_a_different_directory():
    problem = only_problem(minimal(outputs=[{"url": "s3://my-bucket/o/", "path": "/data/outer/*.txt", "path_prefix": "/data/out"}]))
    assert problem.field == "outputs[0].path_prefix"


def test_path_prefix_is_a_path_and_kept_without_wildcards():
    assert fields(minimal(outputs=[{"url": "s3://my-bucket/o", "path": "/o", "path_prefix": "relative"}])) == ["outputs[0].path_prefix"]
    task = accept(minimal(outputs=[{"url": "s3://my-bucket/o", "path": "/o", "path_prefix": "/ignored"}])).task
    assert task["outputs"][0]["path_prefix"] == "/ignored"


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "s3://my-bucket/key", "s3://a.b-c.123/deep/key with spaces?and#hash", "http://example.org/x",
    "https://example.org:8443/x?y=1", "file:///srv/data/x", "/srv/data/x", "/scratch/a/b", "file:///scratch",
])
def test_accepted_input_urls(url):
    task = accepted_as_given(minimal(inputs=[{"url": url, "path": "/in"}]))
    assert task["inputs"] == [{"url": url, "path": "/in", "type": "FILE"}]


@pytest.mark.parametrize("url", ["gs://bucket/x", "ftp://host/x", "relative/path", "", "garbage", "s3:/bucket/k", "mailto:x@y"])
def test_unsupported_input_urls_name_the_accepted_schemes(url):
    problem = only_problem(minimal(inputs=[{"url": url, "path": "/in"}]))
    assert problem.field == "inputs[0].url"
    for example in ("s3://", "file://", "/absolute/path", "http://", "https://"):
        assert example in problem.reason


@pytest.mark.parametrize("url", ["http://example.org/x", "https://example.org/x", "gs://b/k"])
def test_outputs_accept_s3_and_file_only(url):
    problem = only_problem(minimal(outputs=[{"url": url, "path": "/out"}]))
    assert problem.field == "outputs[0].url"
    assert "s3://" in problem.reason and "file://" in problem.reason and "http://host" not in problem.reason


@pytest.mark.parametrize("url", ["s3://my-bucket/out/o", "file:///srv/data/out", "/scratch/out"])
def test_accepted_output_urls(url):
    task = accepted_as_given(minimal(outputs=[{"url": url, "path": "/out"}]))
    assert task["outputs"] == [{"url": url, "path": "/out", "type": "FILE"}]


def test_upper_case_scheme_gets_a_hint():
    problem = only_problem(minimal(inputs=[{"url": "S3://my-bucket/k", "path": "/in"}]))
    assert "lower case" in problem.reason


@pytest.mark.parametrize("url", ["http://", "https:///path", "http://:80/x"])
def test_http_needs_a_host(url):
    assert fields(minimal(inputs=[{"url": url, "path": "/in"}])) == ["inputs[0].url"]


def test_http_with_a_bad_port_is_a_problem_not_a_crash():
    assert fields(minimal(inputs=[{"url": "http://host:99999/x", "path": "/in"}])) == ["inputs[0].url"]
    assert fields(minimal(inputs=[{"url": "http://[::1/x", "path": "/in"}])) == ["inputs[0].url"]


@pytest.mark.parametrize("bucket", [
    "ab", "a" * 64, "My-Bucket", "my_bucket", "-bucket", "bucket-", ".bucket", "bucket.", "my..bucket",
    "192.168.1.1", "", "buck et",
])
def test_invalid_s3_bucket_names(bucket):
    problem = only_problem(minimal(inputs=[{"url": f"s3://{bucket}/key", "path": "/in"}]))
    assert problem.field == "inputs[0].url" and "bucket" in problem.reason


@pytest.mark.parametrize("bucket", ["abc", "a" * 63, "my.bucket-1", "1bucket9", "192.168.1.1a"])
def test_valid_s3_bucket_names(bucket):
    task = accepted_as_given(minimal(inputs=[{"url": f"s3://{bucket}/key", "path": "/in"}]))
    assert task["inputs"][0]["url"] == f"s3://{bucket}/key"


def test_s3_key_required_for_files_but_not_directories():
    for url in ("s3://my-bucket", "s3://my-bucket/"):
        assert fields(minimal(inputs=[{"url": url, "path": "/in"}])) == ["inputs[0].url"]
        assert fields(minimal(outputs=[{"url": url, "path": "/out"}])) == ["outputs[0].url"]
        assert accepted_as_given(minimal(inputs=[{"url": url, "path": "/in", "type": "DIRECTORY"}]))["inputs"][0]["url"] == url
        assert accepted_as_given(minimal(outputs=[{"url": url, "path": "/out", "type": "DIRECTORY"}]))["outputs"][0]["url"] == url
        wildcard = accepted_as_given(minimal(outputs=[{"url": url, "path": "/out/*", "path_prefix": "/out"}]))["outputs"][0]
        assert wildcard["url"] == url and wildcard["type"] == "FILE"
    prefix = accepted_as_given(minimal(inputs=[{"url": "s3://my-bucket/prefix/", "path": "/in", "type": "DIRECTORY"}]))
    assert prefix["inputs"][0] == {"url": "s3://my-bucket/prefix/", "path": "/in", "type": "DIRECTORY"}


def test_s3_key_length_is_counted_in_utf8_bytes():
    longest = "s3://my-bucket/" + "k" * 1024
    assert accepted_as_given(minimal(inputs=[{"url": longest, "path": "/in"}]))["inputs"][0]["url"] == longest
    assert fields(minimal(inputs=[{"url": "s3://my-bucket/" + "k" * 1025, "path": "/in"}])) == ["inputs[0].url"]
    assert fields(minimal(inputs=[{"url": "s3://my-bucket/" + "é" * 513, "path": "/in"}])) == ["inputs[0].url"]


@pytest.mark.parametrize("url", [
    "/etc/passwd", "file:///etc/passwd", "/srv/database", "/srv", "file:///srv/data/../../etc",
    "/srv/data/../x", "file:///srv/data/%2e%2e/x", "file://host/srv/data/x", "file://srv/data/x",
    "/srv/data/x\x00",
])
def test_file_urls_must_stay_under_file_roots(url):
    problem = only_problem(minimal(inputs=[{"url": url, "path": "/in"}]))
    assert problem.field == "inputs[0].url"


def test_file_roots_compare_segments_after_normalizing():
    for given in ({"url": "/srv/data", "path": "/in", "type": "DIRECTORY"}, {"url": "//srv//data/./x", "path": "/in"},
                  {"url": "file:///scratch/x%20y", "path": "/in"}):
        task = accepted_as_given(minimal(inputs=[given]))
        assert task["inputs"][0]["url"] == given["url"]  # compared normalized, stored as given


def test_file_urls_disabled_without_file_roots_say_how_to_enable_them():
    for url in ("/srv/data/x", "file:///srv/data/x"):
        problem = only_problem(minimal(outputs=[{"url": url, "path": "/out"}]), NO_FILE_ROOTS)
        assert problem.field == "outputs[0].url"
        assert "storage.file_roots" in problem.reason and "TES_CTS_STORAGE__FILE_ROOTS" in problem.reason


@pytest.mark.parametrize("url", ["/etc/passwd", "file:///srv/database/x", "/scratch2/x"])
def test_a_path_outside_the_file_roots_names_the_roots_and_the_setting(url):
    for body, at in ((minimal(inputs=[{"url": url, "path": "/in"}]), "inputs[0].url"),
                     (minimal(outputs=[{"url": url, "path": "/out"}]), "outputs[0].url")):
        problem = only_problem(body)
        assert problem.field == at
        assert "not under an allowed file root (/srv/data, /scratch/)" in problem.reason
        assert "storage.file_roots" in problem.reason and "TES_CTS_STORAGE__FILE_ROOTS" in problem.reason


@pytest.mark.parametrize("url", ["gs://bucket/x", "ftp://host/x", "relative/path", ""])
def test_without_file_roots_the_accepted_schemes_offer_no_file_urls(url):
    input_problem = only_problem(minimal(inputs=[{"url": url, "path": "/in"}]), NO_FILE_ROOTS)
    output_problem = only_problem(minimal(outputs=[{"url": url, "path": "/out"}]), NO_FILE_ROOTS)
    assert input_problem.field == "inputs[0].url" and output_problem.field == "outputs[0].url"
    for example in ("s3://bucket/key", "http://host/path", "https://host/path"):
        assert example in input_problem.reason
    assert "s3://bucket/key" in output_problem.reason
    for problem in (input_problem, output_problem):
        assert "file://" not in problem.reason and "/absolute/path" not in problem.reason
        assert "absolute path" not in problem.reason  # not "must be a URL or an absolute path"


def test_file_storage_words_the_file_roots_rule_as_validation_does(tmp_path):
    from tes_cts.storage import StorageError
    from tes_cts.storage.file import FileStorage

    root = tmp_path / "root"
    root.mkdir()
    storage = FileStorage([str(root)])
    with pytest.raises(StorageError) as outside:
        storage.stat(f"file://{tmp_path}/elsewhere.txt")
    with pytest.raises(StorageError) as disabled:
        FileStorage([]).stat(f"file://{root}/x.txt")
    for raised in (outside, disabled):
        assert "storage.file_roots" in raised.value.reason and "TES_CTS_STORAGE__FILE_ROOTS" in raised.value.reason
    assert f"not under an allowed file root ({storage.roots[0]})" in outside.value.reason
    assert "disabled on this server" in disabled.value.reason


def test_a_root_file_root_allows_every_absolute_path():
    limits = ValidationLimits(128 * 1024, ("/",), frozenset())
    assert accepted_as_given(minimal(inputs=[{"url": "/etc/hosts", "path": "/in"}]), limits)["inputs"][0]["url"] == "/etc/hosts"


def test_long_garbage_urls_are_shown_shortened():
    problem = only_problem(minimal(inputs=[{"url": "x" * 100_000, "path": "/in"}]))
    assert len(problem.reason) < 500


# --- backend_parameters -----------------------------------------------------------------------


def test_backend_parameter_keys_are_stored_in_lower_case():
    task = accept(minimal(resources={"backend_parameters": {"Docker_Network": "none", "QUEUE": "short"}})).task
    assert task["resources"]["backend_parameters"] == {"docker_network": "none", "queue": "short"}


def test_backend_parameter_keys_equal_ignoring_case_are_a_problem():
    problem = only_problem(minimal(resources={"backend_parameters": {"queue": "a", "Queue": "b"}}))
    assert problem.field == "resources.backend_parameters.Queue" and "case-insensitive" in problem.reason


def test_unsupported_backend_parameters_are_dropped_with_a_warning():
    body = minimal(resources={"backend_parameters": {"VmSize": "Standard_D64_v3", "queue": "short", "gpu": "1"}})
    accepted = accept(body)
    assert accepted.task["resources"]["backend_parameters"] == {"queue": "short"}
    assert len(accepted.warnings) == 1
    warning = accepted.warnings[0]
    for word in ("VmSize", "gpu", "docker_network", "queue"):
        assert word in warning


def test_unsupported_backend_parameters_with_strict_false_are_dropped():
    accepted = accept(minimal(resources={"backend_parameters": {"VmSize": "x"}, "backend_parameters_strict": False}))
    assert accepted.task["resources"] == {"backend_parameters_strict": False}
    assert accepted.warnings


def test_unsupported_backend_parameters_with_strict_true_are_problems():
    body = minimal(resources={"backend_parameters": {"VmSize": "x", "Gpu": "1", "queue": "q"}, "backend_parameters_strict": True})
    found = problems(body)
    assert [p.field for p in found] == ["resources.backend_parameters.VmSize", "resources.backend_parameters.Gpu"]
    assert all("docker_network" in p.reason and "backend_parameters_strict" in p.reason for p in found)


def test_no_supported_backend_parameters_says_so():
    accepted = accept(minimal(resources={"backend_parameters": {"VmSize": "x"}}), NO_FILE_ROOTS)
    assert "none" in accepted.warnings[0]
    assert accepted.task["resources"] == {}


def test_backend_parameter_keys_with_odd_characters_get_a_quoted_path():
    found = fields(minimal(resources={"backend_parameters": {"vm.size": "x", "a\x00b": "y"}, "backend_parameters_strict": True}))
    assert found == ['resources.backend_parameters["a\\x00b"]', 'resources.backend_parameters["vm.size"]']


# --- never anything but TaskValidationError ---------------------------------------------------


GARBAGE = [
    None, True, False, 0, -1, 2**64, 10**400, 1.5, float("nan"), float("inf"), "", "x", "/abs", "s3://",
    "\ud800", "\x00", [], [None], {}, {"": None}, [[[]]], {"a": {"b": {}}},
]


def _random_json(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(GARBAGE + ["s3://my-bucket/k", "/srv/data/x", "FILE", "DIRECTORY", "echo"])
    if roll < 0.75:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["name", "path", "url", "content", "type", "image", "command", "env", "executors", "inputs",
            "outputs", "resources", "cpu_cores", "ram_gb", "backend_parameters", "path_prefix", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _valid_document() -> dict:
    return {
        "name": "n",
        "inputs": [{"url": "s3://my-bucket/k", "path": "/in"}, {"content": "c", "path": "/c"}],
        "outputs": [{"url": "s3://my-bucket/o/", "path": "/o/*.txt", "path_prefix": "/o"}],
        "resources": {"cpu_cores": 1, "ram_gb": 1, "zones": ["z"], "backend_parameters": {"queue": "q"}},
        "executors": [{"image": "u", "command": ["a"], "env": {"A": "1"}, "workdir": "/w"}],
        "volumes": ["/v"],
        "tags": {"t": "v"},
    }


def _replace_random_node(doc: object, rng: random.Random) -> object:
    """`doc` with one randomly chosen node (or a new key) replaced by random JSON-ish garbage."""
    if not isinstance(doc, (dict, list)) or not doc or rng.random() < 0.25:
        return _random_json(rng)
    doc = copy.copy(doc)
    if isinstance(doc, dict):
        key = rng.choice(list(doc) + ["id", "unknown"])
        doc[key] = _replace_random_node(doc.get(key), rng)
    else:
        index = rng.randrange(len(doc))
        doc[index] = _replace_random_node(doc[index], rng)
    return doc


def _outcome(body: object) -> str:
    try:
        accepted = validate_task(body, LIMITS)
    except TaskValidationError as exc:
        assert exc.problems and all(isinstance(p.field, str) and isinstance(p.reason, str) for p in exc.problems)
        for p in exc.problems:  # every message can go out as JSON in UTF-8
            json.dumps({"field": p.field, "reason": p.reason}, ensure_ascii=False).encode("utf-8")
        return "rejected"
    json.dumps(accepted.task, allow_nan=False, ensure_ascii=False).encode("utf-8")
    return "accepted"


@pytest.mark.parametrize("body", GARBAGE)
def test_garbage_bodies_are_rejected_cleanly(body):
    assert _outcome(body) == "rejected"


# Where garbage goes in `_valid_document()`, and which of the GARBAGE values are legitimately
# accepted there. Every other value must be rejected with a problem at (or inside) that field.
_TEXT = ["", "x", "/abs", "s3://", "\x00"]  # valid Unicode; "\ud800" is not
_NULL_MEANS_ABSENT = [None]
_EMPTY_MAPS = [{}, {"": None}]  # {"": None}: its one entry is null, so it holds no key
GARBAGE_TARGETS: list[tuple[tuple, list]] = [
    ((), []),
    (("name",), _NULL_MEANS_ABSENT + _TEXT),  # no rule on a name's text
    (("inputs",), _NULL_MEANS_ABSENT + [[]]),
    (("inputs", 0), []),  # a null array item is a problem
    (("inputs", 0, "url"), []),  # absent (null): an input needs url or content
    (("inputs", 1, "content"), _TEXT),  # any text is a file's content; null: see _REPORTED_ELSEWHERE
    (("outputs", 0), []),
    (("outputs", 0, "path_prefix"), []),  # the output's path has a wildcard: the prefix is required
    (("resources",), _NULL_MEANS_ABSENT + _EMPTY_MAPS + [{"a": {"b": {}}}]),  # unknown keys are dropped
    (("resources", "cpu_cores"), _NULL_MEANS_ABSENT),
    (("resources", "backend_parameters"), _NULL_MEANS_ABSENT + _EMPTY_MAPS),
    (("resources", "backend_parameters", "queue"), _NULL_MEANS_ABSENT + _TEXT),  # values of queue are the backend's
    (("executors", 0), []),
    (("executors", 0, "command"), []),
    (("executors", 0, "command", 0), ["", "x", "/abs", "s3://"]),  # argv cannot hold a NUL
    (("executors", 0, "env"), _NULL_MEANS_ABSENT + _EMPTY_MAPS),
    (("volumes", 0), ["/abs"]),
    (("tags",), _NULL_MEANS_ABSENT + _EMPTY_MAPS),
    (("tags", "t"), _NULL_MEANS_ABSENT + _TEXT),
]
# Rejections whose problem is another field's, by the type of the garbage: an object as the task
# lacks its executors; a null content is no content, so the input's url is missing.
_REPORTED_ELSEWHERE = {((), "dict"): "executors", (("inputs", 1, "content"), "NoneType"): "inputs[1].url"}


def _json_path(steps: tuple) -> str:
    """The Problem.field spelling of a path of plain keys and indexes."""
    text = ""
    for step in steps:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else step
    return text


def _one_of(value: object, values: list) -> bool:
    return any(type(value) is type(v) and value == v for v in values)  # True is not 1, nor 1 True


def _with_garbage(steps: tuple, garbage: object) -> object:
    if not steps:
        return copy.deepcopy(garbage)
    body = _valid_document()
    target = body
    for step in steps[:-1]:
        target = target[step]
    target[steps[-1]] = copy.deepcopy(garbage)
    return body


def _is_at_or_inside(field: str, at: str) -> bool:
    return field == at or (at != "" and field.startswith((at + ".", at + "[")))


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_in_every_field_is_rejected_cleanly(garbage):
    wrong = []
    for steps, accepted_there in GARBAGE_TARGETS:
        body, at = _with_garbage(steps, garbage), _json_path(steps)
        outcome = _outcome(body)
        if _one_of(garbage, accepted_there):
            if outcome != "accepted":
                wrong.append(f"{at or 'the task'}: should be accepted, got {fields(body)}")
            continue
        if outcome != "rejected":
            wrong.append(f"{at or 'the task'}: should be rejected, was accepted")
            continue
        expected_at = _REPORTED_ELSEWHERE.get((steps, type(garbage).__name__), at)
        found = fields(body)
        if not any(_is_at_or_inside(field, expected_at) for field in found):
            wrong.append(f"{at or 'the task'}: rejected, but with problems at {found}, none at {expected_at!r}")
    assert not wrong, f"garbage {garbage!r}:\n" + "\n".join(wrong)


def test_garbage_targets_hit_a_field_of_the_valid_document():
    for steps, _ in GARBAGE_TARGETS[1:]:
        target = _valid_document()
        for step in steps[:-1]:
            target = target[step]
        assert steps[-1] in (target if isinstance(target, dict) else range(len(target))), steps


def test_random_json_never_raises_anything_else():
    # hypothesis is not installed in this environment; a seeded generator covers the same ground.
    rng = random.Random(20261121)
    outcomes = {"accepted": 0, "rejected": 0}
    for _ in range(3000):
        outcomes[_outcome(_random_json(rng))] += 1
    for _ in range(3000):
        outcomes[_outcome(_replace_random_node(_valid_document(), rng))] += 1
    assert outcomes["rejected"] > 0 and outcomes["accepted"] > 0


def test_the_valid_document_of_the_fuzz_tests_is_valid():
    assert _outcome(_valid_document()) == "accepted"


@pytest.mark.parametrize("image", ["i", "ubuntu:24.04", "tes-cts-test/busybox:1", "127.0.0.1:5000/team/tool:v1.2",
                                   "quay.io/biocontainers/samtools:1.17--h00cdaf9_0", "busybox@sha256:" + "a" * 64,
                                   "ghcr.io/owner/img:v1@sha256:" + "b" * 64, "[::1]:5000/img"])
def test_an_image_reference_in_the_docker_grammar_is_accepted(image):
    assert accept({"executors": [{"image": image, "command": ["x"]}]}).task["executors"][0]["image"] == image


@pytest.mark.parametrize("image, why", [
    ("-h", "never starts with '-'"), ("--privileged", "never starts with '-'"), ("Ubuntu", "lower case"),
    ("busybox sh", "white space"), ("ubuntu:", ""), ("a//b", ""), ("img@sha256:abc", ""), ("x" * 256, "longer than 255"),
])
def test_an_image_that_is_no_reference_is_refused_at_create(image, why):
    """An image is handed to the engine as a reference, never as an option of its command line."""
    problem = only_problem({"executors": [{"image": image, "command": ["x"]}]})
    assert problem.field == "executors[0].image"
    assert "is not a container image reference" in problem.reason or "repository" in problem.reason
    assert why in problem.reason


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "127.1", "[::1]", "169.254.169.254", "10.0.0.7"])
def test_an_http_input_at_a_literal_non_public_address_is_refused_at_create(host):
    body = {"inputs": [{"path": "/in", "url": f"http://{host}:8000/ga4gh/tes/v1/tasks"}],
            "executors": [{"image": "u", "command": ["x"]}]}
    problem = only_problem(body)
    assert problem.field == "inputs[0].url" and "is not reachable from this service" in problem.reason
    allowed = replace(LIMITS, http_allow=("127.0.0.0/8", "::1", "169.254.169.254", "10.0.0.0/8"))
    assert accept(body, allowed).task["inputs"][0]["url"].startswith(f"http://{host}")


def test_an_http_input_by_name_is_decided_when_it_is_fetched():
    body = {"inputs": [{"path": "/in", "url": "http://localhost:8000/x"}], "executors": [{"image": "u", "command": ["x"]}]}
    assert accept(body).task["inputs"][0]["url"] == "http://localhost:8000/x"


SMALL = replace(LIMITS, sizes=SizeLimits(executors=3, inputs=2, outputs=2, volumes=2, tags=2, env=2, command_bytes=10))


@pytest.mark.parametrize("key, value", [
    ("executors", [{"image": "u", "command": ["x"]}] * 4),
    ("inputs", [{"path": f"/in/{i}", "content": "x"} for i in range(3)]),
    ("outputs", [{"path": f"/out/{i}", "url": f"/srv/data/{i}"} for i in range(3)]),
    ("volumes", ["/a", "/b", "/c"]),
    ("tags", {"a": "1", "b": "2", "c": "3"}),
])
def test_a_task_larger_than_the_settings_allow_is_one_problem_per_field(key, value):
    body = {"executors": [{"image": "u", "command": ["x"]}], key: value}
    problem = only_problem(body, SMALL)
    assert problem.field == key and f"setting tasks.max_{key}" in problem.reason and f"got {len(value)}" in problem.reason


def test_an_executors_env_and_command_are_bounded():
    body = {"executors": [{"image": "u", "command": ["echo", "0123456789"], "env": {"A": "1", "B": "2", "C": "3"}}]}
    assert sorted((p.field, p.reason.split(" (")[0]) for p in problems(body, SMALL)) == [
        ("executors[0].command", "at most 10 bytes allowed"), ("executors[0].env", "at most 2 entries allowed")]


def test_an_error_answer_lists_a_hundred_problems_then_how_many_more():
    body = {"executors": [{"image": "", "command": []} for _ in range(200)]}  # two problems each
    found = problems(body)
    assert len(found) == 101
    assert found[-1].field == "" and found[-1].reason == "and 300 more problems"


def test_the_default_limits_accept_what_workflow_engines_send():
    body = {"executors": [{"image": "u", "command": ["x"] * 100, "env": {f"V{i}": "x" for i in range(200)}}] * 50,
            "inputs": [{"path": f"/in/{i}", "url": f"s3://bucket/k{i}"} for i in range(5000)],
            "tags": {f"t{i}": "v" for i in range(100)}}
    assert len(accept(body).task["inputs"]) == 5000


@pytest.mark.parametrize("url", ["s3://AKIAEXAMPLE:s3cretpw@bucket/key", "http://alice:s3cretpw@10.0.0.1/x",
                                 "https://u:s3cretpw@example.org:99999/x", "http://u:s3cretpw@[::1/x"])
def test_credentials_in_a_users_url_are_never_repeated_in_the_answer(url):
    body = {"inputs": [{"path": "/in", "url": url}], "executors": [{"image": "u", "command": ["x"]}]}
    problem = only_problem(body)
    assert problem.field == "inputs[0].url" and "s3cretpw" not in problem.reason
