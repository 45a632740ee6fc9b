"""`tes-cts serve` as a real process: gunicorn, several workers, a SQLite file that outlives it."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .helpers import echo_task
from .live_server import TES_CTS, free_port


def test_several_workers_share_the_store_and_tasks_survive_kill_9(live_servers, tmp_path):
    server = live_servers.start(cwd=tmp_path, workers=3)
    try:
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(
                lambda i: requests.post(f"{server.url}/v1/tasks", json=echo_task(name=f"n{i}"), timeout=30).json()["id"],
                range(60),
            ))
        listed = requests.get(f"{server.url}/ga4gh/tes/v1/tasks?page_size=100", timeout=30).json()["tasks"]
        assert sorted(t["id"] for t in listed) == sorted(ids)
    finally:
        server.kill()  # SIGKILL to the master and every worker

    assert (tmp_path / "work" / "tes-cts.sqlite3").exists()
    with live_servers.start(cwd=tmp_path, workers=2) as again:
        listed = requests.get(f"{again.url}/v1/tasks?page_size=100&view=BASIC", timeout=30).json()["tasks"]
        assert sorted(t["id"] for t in listed) == sorted(ids)
        assert {t["name"] for t in listed} == {f"n{i}" for i in range(60)}


def test_embedded_default_needs_no_settings(live_servers, tmp_path):
    # No settings file, no TES_CTS_* variables: SQLite under ./tes-cts-work of the current dir.
    env = {"TES_CTS_SETTINGS_FILE": str(tmp_path / "absent.toml"), "TES_CTS_WORK_DIR": None}
    with live_servers.start(env, cwd=tmp_path, workers=None) as server:
        task_id = requests.post(f"{server.url}/ga4gh/tes/v1/tasks", json=echo_task(), timeout=10).json()["id"]
        assert requests.get(f"{server.url}/v1/tasks/{task_id}", timeout=10).json()["state"] == "QUEUED"
    assert (tmp_path / "tes-cts-work" / "tes-cts.sqlite3").exists()


def test_default_bind_is_loopback_port_8000():
    from tes_cts.settings import load_settings

    settings = load_settings({})
    assert settings.server.bind == "127.0.0.1:8000" and settings.server.workers == 1
    assert settings.database.kind == "sqlite" and settings.work_dir == "./tes-cts-work"


def test_bind_and_workers_can_come_from_the_environment(live_servers, tmp_path):
    port = free_port()
    env = {"TES_CTS_WORK_DIR": str(tmp_path / "w"), "TES_CTS_SERVER__BIND": f"127.0.0.1:{port}",
           "TES_CTS_SERVER__WORKERS": "2"}
    # `tes-cts serve` alone: no --bind, no --workers.
    with live_servers.start(env, cwd=tmp_path, workers=None, poller=True, port=port, bind=False) as server:
        children = subprocess.run(["pgrep", "-a", "-P", str(server.process.pid)], capture_output=True, text=True).stdout
        pollers = [line for line in children.splitlines() if "tes_cts.cli poller" in line]
        assert len(children.splitlines()) - len(pollers) == 2  # gunicorn workers
        assert len(pollers) == 1  # and exactly one poller, whatever the worker count


@pytest.mark.live
def test_bad_setting_stops_serve_with_a_message_naming_it(tmp_path):
    import os

    env = {**os.environ, "TES_CTS_SERVER__WORKERS": "zero", "TES_CTS_WORK_DIR": str(tmp_path)}
    result = subprocess.run([TES_CTS, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "server.workers" in result.stderr and "integer" in result.stderr


def test_a_second_serve_on_a_busy_port_fails_at_once_saying_why(live_servers, tmp_path):
    import os

    env = {"TES_CTS_WORK_DIR": str(tmp_path / "work"), "TES_CTS_POLLER__EMBEDDED": "false"}
    with live_servers.start(env, cwd=tmp_path, workers=None) as first:
        second = subprocess.run(
            [TES_CTS, "serve", "--bind", f"127.0.0.1:{first.port}"], cwd=tmp_path, capture_output=True, text=True,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("TES_CTS_")}, **env}, timeout=60)
        assert second.returncode == 2
        assert f"cannot listen on 127.0.0.1:{first.port}" in second.stderr and "--bind" in second.stderr
        # Refused before gunicorn starts (its own loop retries for five seconds, saying so).
        assert "Retrying" not in second.stderr and "Booting worker" not in second.stderr
        assert requests.get(f"{first.url}/v1/service-info", timeout=10).ok  # the first one is untouched


def _token(contents) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(contents).encode()).decode().rstrip("=")


# Cheap malformed requests that once answered 500; each is a 4xx in the one error shape, and the
# server answers the next request as before.
MALFORMED = [
    ("POST", "/ga4gh/tes/v1/tasks", "[" * 5000 + "]" * 5000, 400, "nested too deeply"),
    ("POST", "/ga4gh/tes/v1/tasks", '{"executors": [], "tags": {"a": ' + "9" * 5000 + "}}", 400, "4300 digits"),
    ("GET", f"/ga4gh/tes/v1/tasks?page_token={_token([1, 10**30, 'a'])}", None, 400, "page_token"),
    ("GET", f"/ga4gh/tes/v1/tasks?page_token={_token([1, 1, chr(0xD800)])}", None, 400, "page_token"),
    ("GET", "/ga4gh/tes/v1/tasks/a%0Ab", None, 404, "control character"),
    ("POST", "/ga4gh/tes/v1/tasks/ab%0A:cancel", None, 404, "control character"),
]


def test_cheap_malformed_requests_are_4xx_with_the_usual_body(live_servers, tmp_path):
    with live_servers.start(cwd=tmp_path) as server:
        for method, path, body, status, said in MALFORMED:
            response = requests.request(method, server.url + path, data=body, timeout=30,
                                        headers={"Content-Type": "application/json"} if body else {})
            assert response.status_code == status, (path[:60], response.text[:300])
            answer = response.json()
            assert answer["status"] == status and said in answer["detail"], (path[:60], answer)
        assert requests.post(f"{server.url}/ga4gh/tes/v1/tasks", json=echo_task(), timeout=10).status_code == 200


def test_a_huge_task_is_refused_in_a_few_hundred_bytes(live_servers, tmp_path):
    with live_servers.start(cwd=tmp_path) as server:
        huge = requests.post(f"{server.url}/ga4gh/tes/v1/tasks", json={"executors": [{}] * 100_000}, timeout=60)
        assert huge.status_code == 400 and len(huge.content) < 500, huge.text[:500]
        assert [e["field"] for e in huge.json()["errors"]] == ["executors"]
        many = requests.post(f"{server.url}/ga4gh/tes/v1/tasks", json={"executors": [{}] * 900}, timeout=60)
        errors = many.json()["errors"]
        assert many.status_code == 400 and len(errors) == 101 and errors[-1]["reason"] == "and 1700 more problems"
