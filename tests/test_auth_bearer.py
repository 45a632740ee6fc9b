"""The `bearer` provider over a live `tes-cts serve`: static service-account tokens stored as
digests, from the settings table and a secret file, and py-tes with `token`."""

from __future__ import annotations

import pytest
import requests
import tes

from tes_cts.auth.hashing import token_digest

from .auth_servers import basic_auth, bearer, toml_table
from .helpers import echo_task

TOKENS = {"ci": "ci-7f3a9c1e5b2d4f6a8c0e", "nightly": "nightly-0b1c2d3e4f5a6b7c"}


@pytest.fixture(scope="module")
def server(live_servers, tmp_path_factory):
    tokens_file = tmp_path_factory.mktemp("bearer") / "tokens"
    tokens_file.write_text(f"nightly:{token_digest(TOKENS['nightly'])}\n")
    return live_servers.start({
        "TES_CTS_AUTH__PROVIDERS": '["bearer"]',
        "TES_CTS_AUTH__BEARER__TOKENS": toml_table({"ci": token_digest(TOKENS["ci"])}),
        "TES_CTS_AUTH__BEARER__TOKENS_FILE": str(tokens_file),
    })


def test_each_token_is_its_own_account(server):
    ids = {}
    for name, token in TOKENS.items():
        response = requests.post(server.tasks, json=echo_task(), headers=bearer(token), timeout=30)
        assert response.status_code == 200, response.text
        ids[name] = response.json()["id"]
    listed = requests.get(server.tasks, headers=bearer(TOKENS["ci"]), timeout=30).json()["tasks"]
    assert ids["ci"] in {t["id"] for t in listed} and ids["nightly"] not in {t["id"] for t in listed}


@pytest.mark.parametrize("headers", [
    bearer("not-a-token"), bearer(TOKENS["ci"] + "x"), bearer(TOKENS["ci"][:-1]), {},
    basic_auth("ci", TOKENS["ci"]), {"Authorization": TOKENS["ci"]},
])
def test_other_credentials_are_a_401_with_a_bearer_challenge(server, headers):
    response = requests.get(server.tasks, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="tes-cts"'
    body = response.json()
    assert body["status"] == 401 and "Authorization: Bearer with a service account token" in body["detail"]
    assert TOKENS["ci"] not in response.text


def test_py_tes_with_a_token(server):
    client = tes.HTTPClient(server.url, token=TOKENS["ci"])
    task_id = client.create_task(tes.Task(executors=[tes.Executor(image="busybox", command=["true"])]))
    assert client.get_task(task_id, view="FULL").state == "QUEUED"
    client.cancel_task(task_id)
    assert client.get_task(task_id).state == "CANCELED"


def test_no_token_reaches_the_log(server):
    log = server.log_text()
    assert all(token not in log for token in TOKENS.values()) and "$sha256$" not in log
