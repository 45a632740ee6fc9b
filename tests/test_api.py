"""The TES operations over real HTTP (the ASGI app through Starlette's test client)."""

from __future__ import annotations

import json

import pytest

from tes_cts import __version__
from tes_cts.model.query import TaskQuery
from tes_cts.model.record import TaskRecord
from tes_cts.model.states import Phase
from tes_cts.tasks.lifecycle import move

from .builders import task_record
from .helpers import RFC3339, SPEC_TAG_TABLE, assert_no_nulls, echo_task

BASES = ["/ga4gh/tes/v1", "/v1"]


def create(client, body=None, base=BASES[0]) -> str:
    response = client.post(f"{base}/tasks", json=body or echo_task())
    assert response.status_code == 200, response.text
    return response.json()["id"]


def advance(db, task_id: str, *phases: Phase) -> TaskRecord:
    """Walk a stored task through phases, as the poller would."""
    record = db.get(task_id)
    for phase in phases:
        record = move(db, record, phase, f"test moved it to {phase}")
        assert record is not None
    return record


# --- service-info and routing ------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
def test_service_info_reports_settings_and_package_version(make_settings, sqlite_db, base):
    from tes_cts.wiring import build_app

    settings = make_settings(
        service__name="lab TES", service__organization_name="Alice Lab",
        service__organization_url="https://alice.example", storage__file_roots=["/data/shared"],
    )
    with build_app(settings, sqlite_db).test_client() as client:
        info = client.get(f"{base}/service-info").json()
    assert info["name"] == "lab TES"
    assert info["organization"] == {"name": "Alice Lab", "url": "https://alice.example"}
    assert info["version"] == __version__
    assert info["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert "file:///data/shared" in info["storage"]
    assert info["tesResources_backend_parameters"] == ["runtime"]
    assert RFC3339.match(info["createdAt"])
    assert_no_nulls(info)


def test_root_and_ui_lead_to_swagger_ui(client):
    for path in ("/ui", "/ui/"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code in (301, 302, 307, 308)
        assert response.headers["location"].endswith("/ga4gh/tes/v1/ui/")
    assert 'href="/ga4gh/tes/v1/ui/"' in client.get("/").text  # the start page links it and the dashboard
    page = client.get("/ui", follow_redirects=True)
    assert page.status_code == 200
    assert "swagger" in page.text.lower()


def test_openapi_document_is_served(client):
    spec = client.get("/ga4gh/tes/v1/openapi.json").json()
    assert {"/tasks", "/tasks/{id}", "/tasks/{id}:cancel", "/service-info"} <= set(spec["paths"])


@pytest.mark.parametrize("base", BASES)
def test_task_created_on_one_base_path_is_visible_on_the_other(client, base):
    task_id = create(client, base=base)
    for other in BASES:
        assert client.get(f"{other}/tasks/{task_id}").json() == {"id": task_id, "state": "QUEUED"}


# --- create ---------------------------------------------------------------------------------------


def test_create_returns_only_an_opaque_url_safe_id(client):
    response = client.post("/ga4gh/tes/v1/tasks", json=echo_task())
    assert list(response.json()) == ["id"]
    ids = {create(client) for _ in range(50)} | {response.json()["id"]}
    assert len(ids) == 51
    for task_id in ids:
        assert len(task_id) >= 22 and all(c.isalnum() or c in "-_" for c in task_id)


def test_server_set_fields_in_the_body_are_ignored(client):
    body = echo_task(id="chosen", state="COMPLETE", logs=[{"logs": [], "outputs": []}],
                     creation_time="2000-01-01T00:00:00Z")
    task_id = create(client, body)
    task = client.get(f"/v1/tasks/{task_id}?view=FULL").json()
    assert task["id"] == task_id != "chosen"
    assert task["state"] == "QUEUED"
    assert "logs" not in task
    assert not task["creation_time"].startswith("2000")


# --- views ----------------------------------------------------------------------------------------


@pytest.fixture
def finished_task(client, sqlite_db):
    body = echo_task(
        name="views", description="checks views", tags={"k": "v"}, volumes=["/vol/a"],
        inputs=[{"path": "/in/a.txt", "content": "secret content"}],
        outputs=[{"path": "/out/b.txt", "url": "s3://bucket/b.txt"}],
        resources={"cpu_cores": 2, "ram_gb": 1.5},
    )
    task_id = create(client, body)

    def fill_logs(record):
        record.logs = [{
            "start_time": "2026-11-21T10:00:00.000000Z", "end_time": "2026-11-21T10:00:05.000000Z",
            "metadata": {"backend": "local"}, "system_logs": ["ran on host-1"],
            "logs": [{"exit_code": 0, "stdout": "hello\n", "stderr": "",
                      "start_time": "2026-11-21T10:00:01.000000Z", "end_time": "2026-11-21T10:00:04.000000Z"}],
            "outputs": [{"url": "s3://bucket/b.txt", "path": "/out/b.txt", "size_bytes": 6}],
        }]

    record = advance(sqlite_db, task_id, Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING,
                     Phase.STAGING_OUT)
    assert move(sqlite_db, record, Phase.COMPLETE, "done", fill_logs) is not None
    return task_id


def test_minimal_is_the_default_view_and_holds_only_id_and_state(client, finished_task):
    default = client.get(f"/ga4gh/tes/v1/tasks/{finished_task}").json()
    minimal = client.get(f"/ga4gh/tes/v1/tasks/{finished_task}?view=MINIMAL").json()
    assert default == minimal == {"id": finished_task, "state": "COMPLETE"}


def test_basic_view_leaves_out_exactly_content_stdout_stderr_and_system_logs(client, finished_task):
    basic = client.get(f"/ga4gh/tes/v1/tasks/{finished_task}?view=BASIC").json()
    full = client.get(f"/ga4gh/tes/v1/tasks/{finished_task}?view=FULL").json()
    assert basic["inputs"] == [{"path": "/in/a.txt", "type": "FILE"}]
    assert full["inputs"][0]["content"] == "secret content"
    assert "system_logs" not in basic["logs"][0]
    assert full["logs"][0]["system_logs"] == ["ran on host-1"]
    assert set(basic["logs"][0]["logs"][0]) == {"exit_code", "start_time", "end_time"}
    assert full["logs"][0]["logs"][0]["stdout"] == "hello\n"
    # Everything else is the same in both.
    full["inputs"][0].pop("content")
    full["logs"][0].pop("system_logs")
    for executor_log in full["logs"][0]["logs"]:
        executor_log.pop("stdout"), executor_log.pop("stderr")
    assert basic == full


def test_full_view_types_follow_the_schema(client, finished_task):
    task = client.get(f"/ga4gh/tes/v1/tasks/{finished_task}?view=FULL").json()
    assert_no_nulls(task)
    assert task["logs"][0]["outputs"][0]["size_bytes"] == "6"
    assert task["resources"] == {"cpu_cores": 2, "ram_gb": 1.5}
    assert isinstance(task["logs"][0]["logs"][0]["exit_code"], int)
    assert RFC3339.match(task["creation_time"]) and task["creation_time"].endswith("Z")
    assert task["tags"] == {"k": "v"} and task["volumes"] == ["/vol/a"]


def test_unknown_view_is_a_400(client, finished_task):
    response = client.get(f"/ga4gh/tes/v1/tasks/{finished_task}?view=EVERYTHING")
    assert response.status_code == 400
    assert "view" in response.text


# --- get / cancel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [("get", "/ga4gh/tes/v1/tasks/nope"), ("post", "/v1/tasks/nope:cancel")])
def test_unknown_id_is_a_404_with_a_json_body(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404 and "nope" in body["detail"]


def test_cancel_before_dispatch_cancels_at_once(client, sqlite_db):
    task_id = create(client)
    response = client.post(f"/ga4gh/tes/v1/tasks/{task_id}:cancel")
    assert response.status_code == 200 and response.json() == {}
    assert client.get(f"/v1/tasks/{task_id}").json()["state"] == "CANCELED"
    history = sqlite_db.get(task_id).history
    assert [h["phase"] for h in history] == ["created", "canceled"]
    assert "canceled by the user" in history[-1]["reason"]


@pytest.mark.parametrize("phases", [[Phase.PREFLIGHT], [Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING]])
def test_cancel_of_a_dispatched_task_leaves_it_canceling_for_the_poller(client, sqlite_db, phases):
    task_id = create(client)
    advance(sqlite_db, task_id, *phases)
    assert client.post(f"/v1/tasks/{task_id}:cancel").status_code == 200
    assert client.get(f"/v1/tasks/{task_id}").json()["state"] == "CANCELING"
    assert client.post(f"/v1/tasks/{task_id}:cancel").status_code == 200  # again: no change
    assert sqlite_db.get(task_id).phase is Phase.CANCELING


@pytest.mark.parametrize("final", [Phase.SYSTEM_ERROR, Phase.COMPLETE])
def test_cancel_of_a_finished_task_changes_nothing(client, sqlite_db, final):
    task_id = create(client)
    path = [Phase.PREFLIGHT] if final is Phase.SYSTEM_ERROR else [
        Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING, Phase.STAGING_OUT]
    before = advance(sqlite_db, task_id, *path, final)
    assert client.post(f"/v1/tasks/{task_id}:cancel").status_code == 200
    after = sqlite_db.get(task_id)
    assert after.phase is final and after.version == before.version


# --- list -----------------------------------------------------------------------------------------


def insert_many(db, count: int, **task_fields) -> list[str]:
    """Store `count` tasks directly, oldest first; returns their ids newest first."""
    ids = []
    for index in range(count):
        record = task_record(f"t{index:06d}", created_us=1_000_000 + index, **task_fields)
        db.insert(record)
        ids.append(record.id)
    return ids[::-1]


def list_all(client, query: str = "") -> list[dict]:
    tasks, token = [], None
    while True:
        url = f"/ga4gh/tes/v1/tasks?{query}" + (f"&page_token={token}" if token else "")
        page = client.get(url).json()
        tasks += page["tasks"]
        token = page.get("next_page_token")
        if not token:
            return tasks


def test_list_is_newest_first_with_default_page_of_256(client, sqlite_db):
    newest_first = insert_many(sqlite_db, 300)
    page = client.get("/ga4gh/tes/v1/tasks").json()
    assert [t["id"] for t in page["tasks"]] == newest_first[:256]
    assert page["tasks"][0] == {"id": newest_first[0], "state": "QUEUED"}  # MINIMAL by default
    rest = client.get(f"/ga4gh/tes/v1/tasks?page_token={page['next_page_token']}").json()
    assert [t["id"] for t in rest["tasks"]] == newest_first[256:]
    assert "next_page_token" not in rest


def test_next_page_token_only_when_another_page_exists(client, sqlite_db):
    insert_many(sqlite_db, 4)
    assert "next_page_token" not in client.get("/v1/tasks?page_size=4").json()
    assert "next_page_token" in client.get("/v1/tasks?page_size=3").json()
    assert client.get("/v1/tasks").json() != {"tasks": []}


def test_empty_list_has_an_empty_tasks_array(client):
    assert client.get("/v1/tasks").json() == {"tasks": []}


@pytest.mark.parametrize("size,status", [(1, 200), (2047, 200), (2048, 400), (0, 400), (-1, 400)])
def test_page_size_bounds(client, size, status):
    response = client.get(f"/v1/tasks?page_size={size}")
    assert response.status_code == status
    if status == 400:
        assert response.json()["errors"][0]["field"] == "page_size"


def test_non_integer_page_size_is_a_400(client):
    assert client.get("/v1/tasks?page_size=ten").status_code == 400


@pytest.mark.parametrize("token", ["garbage", "AAAA", "eyJ4IjoxfQ", "%00"])
def test_a_bad_page_token_is_a_400(client, token):
    response = client.get(f"/v1/tasks?page_token={token}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "page_token"


def test_paging_is_stable_under_concurrent_inserts(client, sqlite_db):
    insert_many(sqlite_db, 10)
    first = client.get("/v1/tasks?page_size=4").json()
    for _ in range(5):
        create(client)  # newer than everything already listed
    seen = [t["id"] for t in first["tasks"]]
    token = first["next_page_token"]
    while token:
        page = client.get(f"/v1/tasks?page_size=4&page_token={token}").json()
        seen += [t["id"] for t in page["tasks"]]
        token = page.get("next_page_token")
    assert seen == [f"t{i:06d}" for i in range(9, -1, -1)]


def test_views_apply_to_list(client, finished_task):
    basic = client.get("/v1/tasks?view=BASIC").json()["tasks"][0]
    full = client.get("/v1/tasks?view=FULL").json()["tasks"][0]
    assert "content" not in basic["inputs"][0] and full["inputs"][0]["content"] == "secret content"
    assert_no_nulls(full)


def test_name_prefix_is_literal(client):
    names = ["a.b", "axb", "a*c", "a(d", "abc", "ab"]
    ids = {name: create(client, echo_task(name=name)) for name in names}
    create(client)  # a task with no name

    def listed(prefix):
        from urllib.parse import quote

        return {t["id"] for t in list_all(client, f"name_prefix={quote(prefix)}")}

    assert listed("a.") == {ids["a.b"]}
    assert listed("a*") == {ids["a*c"]}
    assert listed("a(") == {ids["a(d"]}
    assert listed("ab") == {ids["abc"], ids["ab"]}
    assert len(listed("")) == 7


def test_state_filter_and_no_injected_unknown(client, sqlite_db):
    queued = create(client)
    canceled = create(client)
    client.post(f"/v1/tasks/{canceled}:cancel")
    assert {t["id"] for t in list_all(client)} == {queued, canceled}
    assert [t["id"] for t in list_all(client, "state=CANCELED")] == [canceled]
    assert [t["id"] for t in list_all(client, "state=QUEUED")] == [queued]
    assert list_all(client, "state=UNKNOWN") == []
    response = client.get("/v1/tasks?state=DONE")
    assert response.status_code == 400 and "state" in response.text




@pytest.mark.parametrize("tag_filter,tags,listed", SPEC_TAG_TABLE)
def test_tag_filters_follow_the_spec_table(client, tag_filter, tags, listed):
    task_id = create(client, echo_task(tags=tags))
    query = "&".join(f"tag_key={k}&tag_value={v}" for k, v in tag_filter.items())
    assert ({t["id"] for t in list_all(client, query)} == {task_id}) is listed


def test_tag_key_without_any_tag_value_matches_any_value(client):
    with_key = create(client, echo_task(tags={"foo": "x", "other": "y"}))
    create(client, echo_task(tags={"other": "y"}))
    assert [t["id"] for t in list_all(client, "tag_key=foo&tag_key=other")] == [with_key]


def test_tag_value_without_a_key_is_a_400(client):
    response = client.get("/v1/tasks?tag_value=bar")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "tag_value"


# --- bad input ------------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_its_field(client):
    body = {
        "executors": [{"image": "", "command": []}],
        "inputs": [{"path": "relative", "url": "gs://bucket/x"}],
        "outputs": [{"path": "/out/*.txt", "url": "s3://b/x"}],
    }
    response = client.post("/ga4gh/tes/v1/tasks", json=body)
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"executors[0].image", "executors[0].command", "inputs[0].path", "inputs[0].url",
            "outputs[0].path_prefix"} <= fields, fields
    assert all(e["reason"] for e in response.json()["errors"])


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2", b"\xff\xfe"])
def test_malformed_json_is_a_400(client, raw):
    response = client.post("/v1/tasks", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["status"] == 400


@pytest.mark.parametrize("body", [[], "a string", 42, {"executors": "nope"}, {}])
def test_bodies_that_are_not_tasks_are_a_400(client, body):
    response = client.post("/v1/tasks", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["errors"]


def test_empty_body_is_a_400(client):
    response = client.post("/v1/tasks", content=b"", headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_content_above_the_setting_is_a_400_naming_the_limit(client):
    big = "x" * (128 * 1024 + 1)
    response = client.post("/v1/tasks", json=echo_task(inputs=[{"path": "/in", "content": big}]))
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "inputs[0].content" and "131072" in error["reason"]
    assert client.post("/v1/tasks", json=echo_task(inputs=[{"path": "/in", "content": big[:-1]}])).status_code == 200


def test_body_above_the_limit_is_a_413(make_settings, sqlite_db):
    from tes_cts.wiring import build_app

    settings = make_settings(server__max_body_bytes=1000)
    with build_app(settings, sqlite_db).test_client() as client:
        big = echo_task(description="d" * 2000)
        response = client.post("/v1/tasks", json=big)
        assert response.status_code == 413
        assert "server.max_body_bytes" in response.json()["detail"]

        def chunks():  # no content-length: the limit holds for streamed bodies too
            data = json.dumps(big).encode()
            for start in range(0, len(data), 100):
                yield data[start:start + 100]

        response = client.post("/v1/tasks", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert client.post("/v1/tasks", json=echo_task()).status_code == 200

        def small_chunks():  # a chunked body under the limit is accepted
            data = json.dumps(echo_task(name="chunked")).encode()
            yield data[:10]
            yield data[10:]

        response = client.post("/v1/tasks", content=small_chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
    assert len(sqlite_db.query(TaskQuery(limit=10))) == 2


def test_unsupported_backend_parameters_are_dropped_with_a_warning(client):
    body = echo_task(resources={"backend_parameters": {"VmSize": "big"}})
    task_id = create(client, body)
    task = client.get(f"/v1/tasks/{task_id}?view=FULL").json()
    assert "backend_parameters" not in task.get("resources", {})
    assert any("vmsize" in line.lower() for line in task["logs"][0]["system_logs"])
    assert task["logs"][0]["logs"] == [] and task["logs"][0]["outputs"] == []


def test_unsupported_backend_parameters_with_strict_are_a_400(client):
    body = echo_task(resources={"backend_parameters": {"VmSize": "big"}, "backend_parameters_strict": True})
    response = client.post("/v1/tasks", json=body)
    assert response.status_code == 400
    assert "backend_parameters" in response.json()["errors"][0]["field"]


# --- database failures ----------------------------------------------------------------------------


def test_a_locked_database_is_a_503_and_the_service_recovers(make_settings, tmp_path):
    import sqlite3

    from tes_cts.database.sqlite import SqliteTaskDatabase
    from tes_cts.wiring import build_app

    settings = make_settings()
    path = tmp_path / "work" / "tes-cts.sqlite3"
    database = SqliteTaskDatabase(path, busy_timeout_s=0.2)
    with build_app(settings, database).test_client() as client:
        task_id = create(client)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock too long
        try:
            response = client.post("/v1/tasks", json=echo_task())
            assert response.status_code == 503
            assert "locked" in response.json()["detail"] and "retry" in response.json()["detail"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert client.get(f"/v1/tasks/{task_id}").status_code == 200
        assert client.post("/v1/tasks", json=echo_task()).status_code == 200
    database.close()


def test_a_lost_mongodb_is_a_503(make_settings):
    import mongomock
    from pymongo import MongoClient

    from tes_cts.database.mongo import MongoTaskDatabase
    from tes_cts.wiring import build_app

    database = MongoTaskDatabase(mongomock.MongoClient(), "lost")
    # The server goes away after start: point the database at a port where nothing listens.
    database._tasks = MongoClient("mongodb://127.0.0.1:9", serverSelectionTimeoutMS=200)["lost"]["tasks"]
    with build_app(make_settings(), database).test_client() as client:
        response = client.get("/v1/tasks")
        assert response.status_code == 503
        assert "MongoDB" in response.json()["detail"]


def test_create_mode_refuses_a_task_with_bad_inputs_listing_each(settings, sqlite_db):
    from tes_cts.storage.preflight import InputProblem, PreflightReport
    from tes_cts.tasks.service import TaskService
    from tes_cts.tasks.validation import TaskValidationError, ValidationLimits

    def verify(inputs):
        bad = [InputProblem(index, f"{i['url']}: no CRC64NVME checksum; add one with aws s3 cp --checksum-algorithm CRC64NVME")
               for index, i in enumerate(inputs) if "bad" in i["url"]]
        return PreflightReport({"0": [{"url": inputs[0]["url"], "size": 1, "etag": None, "crc64nvme": "x"}]}, bad)

    service = TaskService(sqlite_db, ValidationLimits(131072, (), frozenset()), verify)
    body = echo_task(inputs=[{"path": "/a", "url": "s3://bucket/bad1"}, {"path": "/b", "url": "s3://bucket/bad2"}])
    with pytest.raises(TaskValidationError) as raised:
        service.create(body)
    assert [p.field for p in raised.value.problems] == ["inputs[0].url", "inputs[1].url"]
    assert "bad1" in raised.value.problems[0].reason and "bad2" in raised.value.problems[1].reason
    task_id = service.create(echo_task(inputs=[{"path": "/a", "url": "s3://bucket/good"}]))
    assert sqlite_db.get(task_id).verified_inputs["0"][0]["url"] == "s3://bucket/good"


def test_dispatch_mode_accepts_s3_inputs_with_no_store_configured(client):
    # Whether the object exists and has a checksum is only known at dispatch.
    assert client.post("/v1/tasks", json=echo_task(inputs=[{"path": "/a", "url": "s3://bucket/key"}])).status_code == 200


def test_an_unexpected_failure_is_a_json_500_that_says_nothing_internal(client, app, sqlite_db, monkeypatch, caplog):
    def broken_store(task_id, view, owner=None):
        raise KeyError("/secret/run/dir/of/the/service")

    monkeypatch.setattr(sqlite_db, "get_view", broken_store)
    response = client.get("/v1/tasks/abc")
    assert response.status_code == 500
    assert response.json() == {"title": "Internal Server Error", "status": 500,
                               "detail": "the server failed to answer this request; the failure is in its log"}
    assert "/secret/run/dir" in caplog.text  # the traceback is the operator's, in the log


# --- metrics of the API itself (this process counts in memory; test_metrics.py: a live serve) --------------


def scraped(client, **headers) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def requests_counted(values: dict, method: str, route: str, status: str) -> float:
    return values.get(("tes_cts_http_requests_total", (("method", method), ("route", route), ("status", status))), 0)


def test_requests_are_counted_by_route_template_and_status(client, sqlite_db):
    before = scraped(client)
    task_id = create(client)
    advance(sqlite_db, task_id, Phase.PREFLIGHT)
    client.get(f"/v1/tasks/{task_id}")
    client.get("/v1/tasks/no-such-task")
    client.post(f"/v1/tasks/{task_id}:cancel")
    client.get("/v1/no-such-route")
    after = scraped(client)
    for method, route, status, more in [("POST", "/tasks", "200", 1), ("GET", "/tasks/{id}", "200", 1),
                                        ("GET", "/tasks/{id}", "404", 1), ("POST", "/tasks/{id}:cancel", "200", 1),
                                        ("GET", "other", "404", 1)]:
        assert requests_counted(after, method, route, status) == requests_counted(before, method, route, status) + more
    assert not [key for key in after if task_id in str(key)]  # no task id is ever a label
    tasks = {labels[0][1]: count for (name, labels), count in after.items() if name == "tes_cts_tasks"}
    assert tasks["CANCELING"] >= 1 and set(tasks) >= {"QUEUED", "RUNNING", "COMPLETE", "CANCELED"}
    moved = ("tes_cts_task_transitions_total", (("phase", "canceling"), ("state", "CANCELING")))
    assert after[moved] == before.get(moved, 0) + 1


def test_metrics_can_be_protected_by_a_token_or_turned_off(make_settings, sqlite_db):
    from tes_cts.auth.hashing import token_digest
    from tes_cts.wiring import build_app

    with build_app(make_settings(metrics__token_digest=token_digest("t0k3n")), sqlite_db).test_client() as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert scraped(client, Authorization="Bearer t0k3n")
    with build_app(make_settings(metrics__enabled=False), sqlite_db).test_client() as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/healthz").status_code == 200
