"""`/healthz` and `/readyz` for orchestrators, on a live `tes-cts serve`: live while it serves;
ready while the task store answers and the backend could take work, else 503 naming what failed."""

from __future__ import annotations

import requests

from tes_cts.database.base import DatabaseUnavailable

from .docker_env import docker_env


def probe(server, path: str, method: str = "GET") -> requests.Response:
    return requests.request(method, f"{server.url}{path}", timeout=10)


def test_a_serving_service_is_live_and_ready(live_servers, docker_image):
    with live_servers.start({"DOCKER_HOST": docker_env()["DOCKER_HOST"]}) as server:
        live = probe(server, "/healthz")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        ready = probe(server, "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "checks": {"store": {"ok": True},
                                                              "backend": {"kind": "local", "ok": True}}}
        head = probe(server, "/readyz", "HEAD")
        assert head.status_code == 200 and head.content == b""
        assert probe(server, "/readyz", "POST").status_code == 404  # a probe is read, never written to


def test_an_unreachable_engine_makes_the_service_not_ready_but_still_live(live_servers, tmp_path):
    missing = tmp_path / "no-engine.sock"
    with live_servers.start({"DOCKER_HOST": f"unix://{missing}"}) as server:
        ready = probe(server, "/readyz")
        assert ready.status_code == 503, ready.text
        checks = ready.json()["checks"]
        assert ready.json()["status"] == "not ready"
        assert checks["store"] == {"ok": True}
        assert checks["backend"]["kind"] == "local" and checks["backend"]["ok"] is False
        assert str(missing) in checks["backend"]["problem"]
        assert probe(server, "/healthz").status_code == 200
        assert requests.get(f"{server.url}/ga4gh/tes/v1/service-info", timeout=10).ok  # the API answers on


def test_a_store_that_does_not_answer_makes_the_service_not_ready(client, sqlite_db, monkeypatch):
    def unavailable():
        raise DatabaseUnavailable("the task store is locked")

    monkeypatch.setattr(sqlite_db, "last_event_seq", unavailable)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["store"] == {"ok": False, "problem": "DatabaseUnavailable: the task store is locked"}
    assert client.get("/healthz").status_code == 200
