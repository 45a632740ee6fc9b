"""The `kbase` provider against a KBase auth2 service on loopback, through a live `tes-cts
serve`: user names and custom roles, the staff role needed to submit, invalid tokens, a broken
or unreachable service (503), and the cache."""

from __future__ import annotations

import pytest
import requests

from tes_cts.auth.cache import TtlCache

from .auth_servers import KBaseAuth, bearer
from .helpers import echo_task

STAFF, CTS_ADMIN = "KBASE_STAFF", "CTS_ADMIN"
TOKENS = {
    "ALICETOKEN2345ABCDEFGHIJKLMNOPQR": ("alice", [STAFF]),
    "BOBTOKEN234567ABCDEFGHIJKLMNOPQR": ("bob", []),
    "ADMINTOKEN2345ABCDEFGHIJKLMNOPQR": ("boss", [CTS_ADMIN]),
}
ALICE, BOB, ADMIN = TOKENS


@pytest.fixture(scope="module")
def fake_kbase():
    service = KBaseAuth(TOKENS)
    yield service
    service.close()


@pytest.fixture(scope="module")
def server(live_servers, fake_kbase):
    # One worker: the cache test counts calls, and each worker has a cache of its own.
    return live_servers.start({
        "TES_CTS_AUTH__PROVIDERS": '["kbase"]',
        "TES_CTS_AUTH__KBASE__URL": fake_kbase.url,
        "TES_CTS_AUTH__KBASE__USER_ROLES": f'["{STAFF}"]',
        "TES_CTS_AUTH__KBASE__ADMIN_ROLES": f'["{CTS_ADMIN}"]',
    }, workers=1)


def test_a_staff_user_submits_and_owns_the_task(server):
    task_id = requests.post(server.tasks, json=echo_task(), headers=bearer(ALICE), timeout=30).json()["id"]
    assert [t["id"] for t in requests.get(server.tasks, headers=bearer(ALICE), timeout=30).json()["tasks"]] == [task_id]
    by_admin = requests.get(server.tasks, params={"owner": "kbase:alice"}, headers=bearer(ADMIN), timeout=30)
    assert [t["id"] for t in by_admin.json()["tasks"]] == [task_id]


def test_without_the_staff_role_submitting_is_a_403_naming_the_role(server):
    response = requests.post(server.tasks, json=echo_task(), headers=bearer(BOB), timeout=30)
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert "creating a task needs the role 'user'" in detail and "kbase:bob" in detail
    assert f"comes from the KBase custom roles: {STAFF} (or being an admin)" in detail
    assert requests.get(server.tasks, headers=bearer(BOB), timeout=30).json() == {"tasks": []}


def test_an_admin_role_sees_everything(server):
    requests.post(server.tasks, json=echo_task(), headers=bearer(ALICE), timeout=30)
    assert len(requests.get(server.tasks, headers=bearer(ADMIN), timeout=30).json()["tasks"]) >= 1
    assert requests.get(server.tasks, params={"owner": "kbase:boss"}, headers=bearer(ALICE), timeout=30).status_code == 403


def test_an_invalid_token_is_a_401(server):
    response = requests.get(server.tasks, headers=bearer("NOSUCHTOKEN234567ABCDEFGHIJKLMNO"), timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="tes-cts"'
    assert response.json()["detail"] == "kbase: the KBase auth service does not accept this token (invalid or expired)"


def test_answers_are_cached(server, fake_kbase):
    token = "CACHEDTOKEN234567ABCDEFGHIJKLMN"
    fake_kbase.users[token] = ("carol", [STAFF])
    before = fake_kbase.me_calls
    for _ in range(5):
        assert requests.get(server.tasks, headers=bearer(token), timeout=30).status_code == 200
    assert fake_kbase.me_calls == before + 1


def test_a_failing_service_is_a_503_and_never_allowed(server, fake_kbase):
    fake_kbase.failing = True
    try:
        response = requests.get(server.tasks, headers=bearer("UNCACHEDTOKEN2345ABCDEFGHIJKLMN"), timeout=30)
    finally:
        fake_kbase.failing = False
    assert response.status_code == 503
    assert response.json()["title"] == "Service Unavailable"
    assert "answered with HTTP 500" in response.json()["detail"] and "UNCACHED" not in response.text


def test_jwts_are_never_sent_to_kbase(server, fake_kbase):
    fake_kbase.server.authorizations.clear()
    response = requests.get(server.tasks, headers=bearer("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"), timeout=30)
    assert response.status_code == 401 and fake_kbase.server.authorizations == []


def test_an_unreachable_service_is_a_503(make_settings):
    from tes_cts.database import open_database
    from tes_cts.wiring import build_app

    from .live_server import free_port

    settings = make_settings(auth__providers=["kbase"], auth__kbase__url=f"http://127.0.0.1:{free_port()}/auth",
                             auth__timeout_s=2)
    database = open_database(settings)
    with build_app(settings, database).test_client() as client:
        response = client.post("/v1/tasks", json=echo_task(), headers=bearer(ALICE))
    database.close()
    assert response.status_code == 503
    assert "could not be reached" in response.json()["detail"] and ALICE not in response.text


def test_no_token_reaches_the_log(server):
    log = server.log_text()
    assert not [token for token in TOKENS if token in log]


def test_the_cache_forgets_after_its_time():
    now = [0.0]
    cache = TtlCache(300, max_entries=2, clock=lambda: now[0])
    cache.put("a", 1)
    now[0] = 299.0
    assert cache.get("a") == 1
    now[0] = 300.0
    assert cache.get("a") is None
    for key in "bcd":
        cache.put(key, key)
    assert cache.get("b") is None and cache.get("d") == "d"  # bounded: the oldest goes first
    assert TtlCache(0).get("x") is None
