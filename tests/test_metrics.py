"""`/metrics` of a live `tes-cts serve` (two gunicorn workers, its poller, the local backend and
the real engine), parsed by prometheus_client's own parser: the values are what the test did.
Also: the setting that turns it off, how the processes share their counts (the metrics
directory, what the worker measures and the poller counts), event streams and webhooks."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tes_cts.metrics import record
from tes_cts.metrics.process import VARIABLE, remove_files_of_ended_processes

from .docker_env import docker_env
from .test_imports import modules_loaded_by
from .test_webhooks import receiver, run_tasks, sending, wait_until  # noqa: F401 (fixtures)

TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
IMAGE = "tes-cts-test/busybox:1"
INPUT_TEXT = "twelve bytes"                      # 12 bytes in, through file://
OUTPUT_SCRIPT = "printf 'exactly 21 bytes out\\n' > /out/copy.txt && cat /in/data.txt"
OUTPUT_BYTES = 21


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, its labels) -> value, for every sample of the exposition."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def total(scraped: dict, name: str, **labels) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (sample, series), v in scraped.items() if sample == name and wanted <= series)


class Client:
    """The test's own HTTP calls, counted as the server should count them: (method, route, status)."""

    def __init__(self, server):
        self.server = server
        self.made: Counter[tuple[str, str, str]] = Counter()

    def call(self, method: str, path: str, route: str, **kwargs) -> requests.Response:
        response = requests.request(method, f"{self.server.url}/ga4gh/tes/v1{path}", timeout=10, **kwargs)
        self.made[method, route, str(response.status_code)] += 1
        return response

    def create(self, body: dict) -> str:
        response = self.call("POST", "/tasks", "/tasks", json=body)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def get(self, task_id: str) -> dict:
        return self.call("GET", f"/tasks/{task_id}", "/tasks/{id}", params={"view": "FULL"}).json()

    def wait_for(self, task_id: str, states=TERMINAL, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(task_id)
            if current["state"] in states:
                return current
            assert time.monotonic() < deadline, f"task {task_id} still {current['state']}: {current}"
            time.sleep(0.2)


def scrape(server, **headers) -> requests.Response:
    return requests.get(f"{server.url}/metrics", headers=headers, timeout=10)


def scrape_until(server, ready, timeout: float = 15) -> dict:
    """The parsed scrape once `ready(scraped)` holds: the poller counts what a result measured
    just after it stores the task's end, which the test may see first."""
    deadline = time.monotonic() + timeout
    while True:
        scraped = samples(scrape(server).text)
        if ready(scraped) or time.monotonic() > deadline:
            return scraped
        time.sleep(0.2)


def executor(*command: str) -> dict:
    return {"image": IMAGE, "command": list(command)}


@pytest.fixture
def data(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text(INPUT_TEXT)
    return data


@pytest.fixture
def server(live_servers, tmp_path, data, docker_image):
    env = {"DOCKER_HOST": docker_env()["DOCKER_HOST"], "TES_CTS_STORAGE__FILE_ROOTS": f'["{data}"]',
           "TES_CTS_POLLER__INTERVAL_S": "0.2"}
    with live_servers.start(env, cwd=tmp_path, poller=True, workers=2) as live:
        yield live


def test_metrics_count_what_five_tasks_did_across_two_workers_and_the_poller(server, data, tmp_path):
    client = Client(server)
    staged = client.create({"inputs": [{"path": "/in/data.txt", "url": f"file://{data}/in.txt"}],
                            "outputs": [{"path": "/out/copy.txt", "url": f"{data}/copy.txt"}],
                            "executors": [executor("sh", "-c", OUTPUT_SCRIPT)]})
    echoes = [client.create({"executors": [executor("echo", f"hello {n}")]}) for n in range(2)]
    failing = client.create({"executors": [executor("sh", "-c", "exit 3")]})
    long = client.create({"executors": [executor("sleep", "600")]})
    refused = client.call("POST", "/tasks", "/tasks", json={"executors": []})
    assert refused.status_code == 400
    client.wait_for(long, {"RUNNING"})
    assert client.call("POST", f"/tasks/{long}:cancel", "/tasks/{id}:cancel").status_code == 200
    finished = {task_id: client.wait_for(task_id)["state"] for task_id in [staged, *echoes, failing, long]}
    assert Counter(finished.values()) == {"COMPLETE": 3, "EXECUTOR_ERROR": 1, "CANCELED": 1}, finished
    for _ in range(20):  # more requests, new connections: each of the two workers answers some
        client.get(staged)

    scraped = scrape_until(server, lambda s: value(s, "tes_cts_staging_bytes_total", scheme="file",
                                                   direction="output") == OUTPUT_BYTES)

    # Tasks per state: the store's counts, every state shown.
    states = {state: value(scraped, "tes_cts_tasks", state=state) for state in
              ("QUEUED", "INITIALIZING", "RUNNING", "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELING", "CANCELED")}
    assert states == {"QUEUED": 0, "INITIALIZING": 0, "RUNNING": 0, "COMPLETE": 3, "EXECUTOR_ERROR": 1,
                      "SYSTEM_ERROR": 0, "CANCELING": 0, "CANCELED": 1}

    # Transitions: created by the API's workers, moved by the poller and the API's cancel.
    moved = {phase: value(scraped, "tes_cts_task_transitions_total", phase=phase, state=state) for phase, state in [
        ("created", "QUEUED"), ("preflight", "QUEUED"), ("submitted", "INITIALIZING"), ("staging_in", "INITIALIZING"),
        ("staging_out", "RUNNING"), ("complete", "COMPLETE"), ("executor_error", "EXECUTOR_ERROR"),
        ("canceling", "CANCELING"), ("canceled", "CANCELED"), ("system_error", "SYSTEM_ERROR")]}
    assert moved == {"created": 5, "preflight": 5, "submitted": 5, "staging_in": 5, "staging_out": 4, "complete": 3,
                     "executor_error": 1, "canceling": 1, "canceled": 1, "system_error": 0}
    assert value(scraped, "tes_cts_task_transitions_total", phase="running", state="RUNNING") == 5

    # HTTP: every call the test made, by route and status, summed over both workers.
    for (method, route, status), count in client.made.items():
        assert value(scraped, "tes_cts_http_requests_total", method=method, route=route, status=status) == count, \
            (method, route, status)
    gets = client.made["GET", "/tasks/{id}", "200"]
    assert value(scraped, "tes_cts_http_request_duration_seconds_count", method="GET", route="/tasks/{id}") == gets
    assert value(scraped, "tes_cts_http_request_duration_seconds_bucket", method="GET", route="/tasks/{id}",
                 le="+Inf") == gets
    processes = {path.name.rsplit("_", 1)[1] for path in (tmp_path / "work" / "metrics").glob("*.db")}
    assert len(processes) >= 3, processes  # the poller and both workers counted, into files of their own

    # The poller: its cycles, the tasks they handled, its calls to the backend.
    assert value(scraped, "tes_cts_poller_cycle_duration_seconds_count") > 0
    assert value(scraped, "tes_cts_poller_cycle_tasks_sum") >= 5
    assert value(scraped, "tes_cts_backend_calls_total", backend="local", operation="submit") == 5
    assert value(scraped, "tes_cts_backend_calls_total", backend="local", operation="poll") > 0
    assert value(scraped, "tes_cts_backend_calls_total", backend="local", operation="cancel") >= 1
    assert value(scraped, "tes_cts_backend_calls_total", backend="local", operation="engine_check") > 0
    assert total(scraped, "tes_cts_backend_call_failures_total") == 0

    # Staging: the one task with file:// URLs, as its worker measured and the poller counted.
    assert value(scraped, "tes_cts_staging_bytes_total", scheme="file", direction="input") == len(INPUT_TEXT)
    assert value(scraped, "tes_cts_staging_bytes_total", scheme="file", direction="output") == OUTPUT_BYTES
    assert value(scraped, "tes_cts_staging_duration_seconds_count", scheme="file", direction="input") == 1
    assert value(scraped, "tes_cts_staging_duration_seconds_count", scheme="file", direction="output") == 1
    assert total(scraped, "tes_cts_checksum_mismatches_total") == 0
    assert (data / "copy.txt").stat().st_size == OUTPUT_BYTES

    # The worker's measurements are the poller's business: the task shows none of them.
    assert "measurements" not in str(client.get(staged))


def test_with_metrics_off_there_is_no_metrics_endpoint_and_nothing_is_counted_to_files(live_servers, tmp_path):
    """(The token that protects /metrics: test_api.py.)"""
    with live_servers.start({"TES_CTS_METRICS__ENABLED": "false"}, cwd=tmp_path) as server:
        assert scrape(server).status_code == 404
        assert requests.get(f"{server.url}/ga4gh/tes/v1/tasks", timeout=5).ok
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert not list((tmp_path / "work").glob("metrics/*.db"))


def test_serve_starts_with_fresh_counts_but_keeps_those_of_running_processes(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    sleeping = subprocess.Popen(["sleep", "30"])
    try:
        for pid in (gone.pid, sleeping.pid):
            for kind in ("counter", "histogram", "gauge_livesum"):
                (directory / f"{kind}_{pid}.db").write_bytes(b"")
        removed = remove_files_of_ended_processes(directory)
        assert sorted(path.name for path in removed) == sorted(f"{kind}_{gone.pid}.db" for kind in
                                                               ("counter", "histogram", "gauge_livesum"))
        assert len(list(directory.glob(f"*_{sleeping.pid}.db"))) == 3
    finally:
        sleeping.send_signal(signal.SIGTERM)
        sleeping.wait()


@pytest.mark.parametrize("statement,unwanted", [
    ("import tes_cts.cli, tes_cts.wiring, tes_cts.server", {"prometheus_client"}),
    ("import tes_cts.worker.launcher, tes_cts.worker.run", {"prometheus_client", "tes_cts.metrics"}),
])
def test_prometheus_client_is_loaded_only_once_a_process_counts(statement, unwanted):
    """serve must choose the metrics directory before prometheus_client is imported, and a task's
    worker never counts."""
    assert not unwanted & modules_loaded_by(statement)


def test_measurements_that_are_not_in_the_expected_form_are_left_out(caplog):
    before = _registry_value("tes_cts_staging_bytes_total", scheme="s3", direction="input")
    record.worker_measurements({"staging": [{"scheme": "s3", "direction": "input", "bytes": 5, "seconds": 0.1},
                                            {"scheme": "s3", "direction": "sideways", "bytes": 7, "seconds": 0.1}]})
    record.worker_measurements({"staging": "nonsense"})
    assert _registry_value("tes_cts_staging_bytes_total", scheme="s3", direction="input") == before + 5
    assert "not in the expected form" in caplog.text


def test_a_webhook_without_a_name_is_labelled_without_its_url_path():
    assert record.webhook_label("ops", "https://hooks.example.org/T0/secret") == "ops"
    url = "https://hooks.example.org:8443/T0/secret?token=x"
    assert record.webhook_label(url, url) == "https://hooks.example.org:8443"


def _registry_value(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    assert not os.environ.get(VARIABLE)  # the tests' own process counts in memory
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_event_stream_is_counted_when_it_starts_and_kept_out_of_the_latency_histogram():
    import anyio

    from tes_cts.api.http_metrics import HttpMetrics

    counted_at_start = []

    async def stream(scope, receive, send):  # what Connexion's routing and the EventStream do
        scope["extensions"].setdefault("connexion_routing", {})["operation_id"] = "StreamEvents"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        counted_at_start.append(_registry_value("tes_cts_http_requests_total", method="GET", route="/events",
                                                status="200"))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def sent(message):
        pass

    before = _registry_value("tes_cts_http_requests_total", method="GET", route="/events", status="200")
    timed = _registry_value("tes_cts_http_request_duration_seconds_count", method="GET", route="/events")
    middleware = HttpMetrics(stream, routes={"StreamEvents": "/events"})
    anyio.run(middleware, {"type": "http", "method": "GET", "path": "/v1/events"}, None, sent)
    assert counted_at_start == [before + 1]
    assert _registry_value("tes_cts_http_requests_total", method="GET", route="/events", status="200") == before + 1
    assert _registry_value("tes_cts_http_request_duration_seconds_count", method="GET", route="/events") == timed


def test_webhook_posts_are_counted_and_dead_letters_read_from_the_store(sqlite_db, receiver, sending):
    from tes_cts.metrics.exposition import Scrape
    from tes_cts.webhook_settings import Webhook

    delivered = _registry_value("tes_cts_webhook_deliveries_total", webhook="hook")
    failed = _registry_value("tes_cts_webhook_delivery_failures_total", webhook="hook")
    receiver.status = 500
    sending(Webhook(name="hook", url=receiver.url, give_up_after_s=0.5))
    run_tasks(sqlite_db, 1)  # three events: created, preflight, system_error
    wait_until(lambda: sqlite_db.delivery("hook")[1] >= 1)
    receiver.status = 200
    wait_until(lambda: sqlite_db.delivery("hook")[0] == sqlite_db.last_event_seq())

    text, content_type = Scrape(sqlite_db, (("hook", receiver.url),)).render()
    scraped = samples(text.decode())
    dead = sqlite_db.delivery("hook")[1]
    assert value(scraped, "tes_cts_webhook_dead_letters_total", webhook="hook") == dead >= 1
    assert value(scraped, "tes_cts_webhook_deliveries_total", webhook="hook") == delivered + 3 - dead
    assert value(scraped, "tes_cts_webhook_delivery_failures_total", webhook="hook") >= failed + 2
    assert value(scraped, "tes_cts_tasks", state="SYSTEM_ERROR") == 1
    assert content_type.startswith("text/plain")
