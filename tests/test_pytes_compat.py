"""Every kind of response goes through py-tes 1.1's strict parser, over a live `tes-cts serve`.

py-tes builds attrs models that refuse unknown keys and wrong types, like Cromwell: if a view
ever leaks a stored field or a null, these tests fail.
"""

from __future__ import annotations

import pytest
import requests
import tes
from tes.models import ListTasksResponse, ServiceInfo, Task
from tes.utils import unmarshal

from tes_cts.database.sqlite import SqliteTaskDatabase
from tes_cts.model.states import Phase
from tes_cts.tasks.lifecycle import move

VIEWS = ["MINIMAL", "BASIC", "FULL"]
FULL_LOG = {
    "start_time": "2026-11-21T10:00:00.000000Z", "end_time": "2026-11-21T10:00:05.250000Z",
    "metadata": {"backend": "local", "attempt": "1", "host": "node-1"},
    "system_logs": ["staged 1 input", "uploaded 2 outputs"],
    "logs": [
        {"exit_code": 0, "stdout": "ok\n", "stderr": "", "start_time": "2026-11-21T10:00:01.000000Z",
         "end_time": "2026-11-21T10:00:02.000000Z"},
        {"exit_code": 3, "stdout": "", "stderr": "boom\n"},
    ],
    "outputs": [{"url": "s3://bucket/out/a", "path": "/out/a", "size_bytes": 12345678901}],
}


@pytest.fixture(scope="module")
def server(live_servers):
    live = live_servers.start()  # no poller: these tests set task states themselves
    live.database = SqliteTaskDatabase(live.cwd / "work" / "tes-cts.sqlite3")  # the poller's view of it
    yield live
    live.database.close()


@pytest.fixture(scope="module")
def client(server):
    return tes.HTTPClient(server.url)  # tries /ga4gh/tes/v1, then /v1


def rich_task() -> tes.Task:
    return tes.Task(
        name="compat", description="every field set", tags={"project": "compat", "empty": ""},
        inputs=[tes.Input(path="/in/a.txt", content="hello"),
                tes.Input(path="/in/dir", url="s3://bucket/prefix/", type="DIRECTORY", streamable=False)],
        outputs=[tes.Output(path="/out/a", url="s3://bucket/out/a"),
                 tes.Output(path="/out/*.log", path_prefix="/out", url="s3://bucket/logs/", type="DIRECTORY")],
        resources=tes.Resources(cpu_cores=2, ram_gb=1.5, disk_gb=10, preemptible=True, zones=["z1"],
                                backend_parameters={"VmSize": "x"}),
        executors=[tes.Executor(image="busybox", command=["sh", "-c", "echo hi"], workdir="/in",
                                stdout="/out/stdout", stderr="/out/stderr", stdin="/in/a.txt",
                                env={"A": "1"}, ignore_error=True)],
        volumes=["/vol"],
    )


@pytest.fixture(scope="module")
def finished_id(server, client):
    task_id = client.create_task(rich_task())
    record = server.database.get(task_id)
    for phase in (Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING, Phase.STAGING_OUT):
        record = move(server.database, record, phase, "compat test")
    done = move(server.database, record, Phase.EXECUTOR_ERROR, "executor 2 exited with 3",
                lambda r: r.logs.append(dict(FULL_LOG)) if r.logs else r.logs.extend([dict(FULL_LOG)]))
    assert done is not None
    return task_id


def test_service_info_parses(client):
    info = client.get_service_info()
    assert isinstance(info, ServiceInfo)
    assert info.type["artifact"] == "tes" and info.version  # py-tes keeps `type` as a dict


@pytest.mark.parametrize("view", VIEWS)
def test_get_task_parses_in_every_view(client, finished_id, view):
    task = client.get_task(finished_id, view=view)
    assert isinstance(task, Task) and task.id == finished_id and task.state == "EXECUTOR_ERROR"
    if view != "MINIMAL":
        last = task.logs[-1]
        assert last.outputs[0].size_bytes == 12345678901
        assert [log.exit_code for log in last.logs] == [0, 3]
        assert last.start_time is not None and task.creation_time is not None
        assert (last.system_logs is not None) is (view == "FULL")


@pytest.mark.parametrize("view", VIEWS)
def test_list_parses_in_every_view(server, client, finished_id, view):
    for _ in range(3):
        client.create_task(rich_task())
    page = client.list_tasks(view=view, page_size=2)
    assert isinstance(page, ListTasksResponse) and len(page.tasks) == 2 and page.next_page_token
    rest = client.list_tasks(view=view, page_token=page.next_page_token, page_size=2047)
    assert finished_id in {t.id for t in page.tasks + rest.tasks}


def test_queued_and_canceled_tasks_parse(client):
    task_id = client.create_task(rich_task())
    assert client.get_task(task_id, view="FULL").state == "QUEUED"
    client.cancel_task(task_id)
    assert client.get_task(task_id, view="FULL").state == "CANCELED"


def test_client_wait_sees_a_terminal_state(client, finished_id):
    assert client.wait(finished_id, timeout=5).state == "EXECUTOR_ERROR"


def test_raw_responses_parse_with_the_models(server, finished_id):
    """The same, without HTTPClient's helpers: each body straight into unmarshal()."""
    base = f"{server.url}/v1"
    for view in VIEWS:
        unmarshal(requests.get(f"{base}/tasks/{finished_id}", params={"view": view}, timeout=10).json(), Task)
        unmarshal(requests.get(f"{base}/tasks", params={"view": view}, timeout=10).json(), ListTasksResponse)
    unmarshal(requests.get(f"{base}/service-info", timeout=10).json(), ServiceInfo)


@pytest.mark.parametrize("call", [
    lambda c: c.get_task("no-such-task"),
    lambda c: c.cancel_task("no-such-task"),
    lambda c: c.create_task(tes.Task(executors=[tes.Executor(image="", command=["x"])])),
])
def test_errors_reach_py_tes_as_http_errors_with_our_json_body(client, call):
    with pytest.raises(requests.HTTPError) as raised:
        call(client)
    body = raised.value.response.json()
    assert body["status"] in (400, 404) and body["detail"]
