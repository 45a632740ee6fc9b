"""The `basic` provider over a live `tes-cts serve`: users from the settings table and from a
secret file, right and wrong passwords, challenges, and py-tes with user/password."""

from __future__ import annotations

import base64

import pytest
import requests
import tes

from tes_cts.auth.hashing import hash_password

from .auth_servers import basic_auth, toml_table
from .helpers import echo_task

PASSWORDS = {"alice": "alice's long passphrase", "bob": "b0b-pw with spaces ", "carol": "carol-from-file",
             "dora": "pässwörd €", "émile": "crème brûlée"}


def basic_server(live_servers, tmp_path_factory):
    users_file = tmp_path_factory.mktemp("basic") / "users"
    users_file.write_text(f"# file users\ncarol:{hash_password(PASSWORDS['carol'])}\n")
    return live_servers.start({
        "TES_CTS_AUTH__PROVIDERS": '["basic"]',
        "TES_CTS_AUTH__BASIC__USERS": toml_table({n: hash_password(PASSWORDS[n]) for n in PASSWORDS if n != "carol"}),
        "TES_CTS_AUTH__BASIC__USERS_FILE": str(users_file),
    })


@pytest.fixture(scope="module")
def server(live_servers, tmp_path_factory):
    return basic_server(live_servers, tmp_path_factory)


@pytest.fixture(scope="module")
def refusing_server(live_servers, tmp_path_factory):
    """A server of its own for the wrong passwords: more than auth.throttle's free failures from
    one address would make the other tests' right ones wait (429)."""
    return basic_server(live_servers, tmp_path_factory)


@pytest.mark.parametrize("user", ["alice", "bob", "carol"])
def test_the_right_password_is_accepted(server, user):
    response = requests.post(server.tasks, json=echo_task(), headers=basic_auth(user, PASSWORDS[user]), timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("user,encoding", [("dora", "utf-8"), ("émile", "utf-8"), ("émile", "latin-1")])
def test_non_ascii_credentials_in_utf_8_or_latin_1(server, user, encoding):
    """curl and browsers send UTF-8; requests (so py-tes) sends latin-1."""
    raw = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode(encoding)).decode()
    response = requests.get(server.tasks, headers={"Authorization": f"Basic {raw}"}, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("user,password", [
    ("alice", "wrong"), ("alice", PASSWORDS["bob"]), ("alice", PASSWORDS["alice"].upper()), ("nobody", "x"), ("", ""),
    ("None", "None"),  # what the Snakemake plugin sends when it has no credentials
])
def test_a_wrong_password_or_unknown_user_is_a_401_with_a_challenge(refusing_server, user, password):
    response = requests.get(refusing_server.tasks, headers=basic_auth(user, password), timeout=30)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == 'Basic realm="tes-cts", charset="UTF-8"'
    assert response.json() == {"title": "Unauthorized", "status": 401, "detail": "basic: wrong user name or password"}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Basic None:None"}, {"Authorization": "Basic"},
    {"Authorization": "Bearer some-token"}, {"Authorization": "Digest x"},
])
def test_missing_or_unusable_credentials_are_a_401_that_says_what_to_send(server, headers):
    response = requests.get(server.tasks, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="tes-cts", charset="UTF-8"'
    assert "Authorization: Basic with a user name and password" in response.json()["detail"]


def test_service_info_and_the_docs_stay_public(server):
    assert requests.get(f"{server.url}/ga4gh/tes/v1/service-info", timeout=30).status_code == 200
    assert requests.get(f"{server.url}/ui", timeout=30).status_code == 200  # Swagger UI, redirected
    spec = requests.get(f"{server.url}/v1/openapi.json", timeout=30).json()
    assert spec["security"] == [{"basic": []}]
    assert list(spec["components"]["securitySchemes"]) == ["basic"]


def test_py_tes_with_user_and_password(server):
    client = tes.HTTPClient(server.url, user="alice", password=PASSWORDS["alice"])
    task_id = client.create_task(tes.Task(executors=[tes.Executor(image="busybox", command=["true"])]))
    assert client.get_task(task_id).state == "QUEUED"
    assert task_id in {t.id for t in client.list_tasks().tasks}
    client.cancel_task(task_id)
    assert client.get_task(task_id, view="BASIC").state == "CANCELED"
    with pytest.raises(requests.HTTPError) as raised:
        tes.HTTPClient(server.url, user="alice", password="wrong").list_tasks()
    assert raised.value.response.status_code == 401


def test_no_password_or_hash_reaches_the_log(server):
    log = server.log_text()
    assert "POST /ga4gh/tes/v1/tasks" in log  # the access log is there...
    for password in PASSWORDS.values():
        assert password not in log  # ...without a secret
    assert "$scrypt$" not in log
