"""The `none` provider (the embedded default): no credentials needed, whatever a client sends,
and every task belongs to the one local user (owner "")."""

from __future__ import annotations

import pytest
import requests
import tes

from .auth_servers import basic_auth, bearer
from .helpers import echo_task


@pytest.fixture(scope="module")
def server(live_servers):
    return live_servers.start()


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Basic None:None"}, basic_auth("None", "None"), basic_auth("any", "thing"),
    bearer("whatever"), {"Authorization": "garbage"},
])
def test_any_or_no_credentials_are_accepted(server, headers):
    tasks = f"{server.url}/v1/tasks"
    created = requests.post(tasks, json=echo_task(), headers=headers, timeout=30)
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    assert requests.get(f"{tasks}/{task_id}", headers=headers, timeout=30).json()["state"] == "QUEUED"
    assert requests.post(f"{tasks}/{task_id}:cancel", headers=headers, timeout=30).status_code == 200


def test_snakemake_style_py_tes_client_without_credentials(server):
    """The Snakemake plugin hands py-tes str(None) for an unset user and password."""
    for client in (tes.HTTPClient(server.url, user="None", password="None"), tes.HTTPClient(server.url)):
        task_id = client.create_task(tes.Task(executors=[tes.Executor(image="busybox", command=["true"])]))
        assert task_id in {t.id for t in client.list_tasks(page_size=2047).tasks}


def test_the_served_spec_declares_no_security(server):
    spec = requests.get(f"{server.url}/ga4gh/tes/v1/openapi.json", timeout=30).json()
    assert "security" not in spec and "securitySchemes" not in spec.get("components", {})


def test_tasks_belong_to_the_local_user_and_owner_filters_follow(client, sqlite_db):
    task_id = client.post("/v1/tasks", json=echo_task()).json()["id"]
    assert sqlite_db.get(task_id).owner == ""
    assert [t["id"] for t in client.get("/v1/tasks", params={"owner": ""}).json()["tasks"]] == [task_id]
    refused = client.get("/v1/tasks", params={"owner": "basic:alice"})
    assert refused.status_code == 403
    assert "'admin'" in refused.json()["detail"] and "the local user" in refused.json()["detail"]
