"""Ownership across providers, over a live `tes-cts serve` with basic, bearer, oidc and kbase all
enabled: users never see, read or cancel each other's tasks (another's task is a 404 exactly
like an unknown id), admins see and cancel every task, and credentials go only where they
belong."""

from __future__ import annotations

import secrets

import pytest
import requests

from tes_cts.auth.hashing import hash_password, token_digest

from .auth_servers import AUDIENCE, KBaseAuth, OidcIssuer, basic_auth, bearer, toml_table
from .helpers import echo_task

PASSWORDS = {"alice": "alice-pw-1", "bob": "basic-bob-pw", "root": "root-pw-9"}
KBASE_BOB = "KBASEBOBTOKEN234567ABCDEFGHIJKL"
CI_TOKEN = "ci-token-5e6f7a8b9c0d1e2f"


@pytest.fixture(scope="module")
def fake_identity_services():
    issuer, kbase = OidcIssuer(), KBaseAuth({KBASE_BOB: ("bob", [])})
    yield issuer, kbase
    issuer.close()
    kbase.close()


@pytest.fixture(scope="module")
def server(live_servers, fake_identity_services):
    issuer, kbase = fake_identity_services
    return live_servers.start({
        "TES_CTS_AUTH__PROVIDERS": '["kbase", "oidc", "bearer", "basic"]',  # tried in a fixed order anyway
        "TES_CTS_AUTH__ADMINS": '["basic:root"]',
        "TES_CTS_AUTH__BASIC__USERS": toml_table({name: hash_password(pw) for name, pw in PASSWORDS.items()}),
        "TES_CTS_AUTH__BEARER__TOKENS": toml_table({"ci": token_digest(CI_TOKEN)}),
        "TES_CTS_AUTH__OIDC__ISSUER": issuer.issuer,
        "TES_CTS_AUTH__OIDC__AUDIENCE": AUDIENCE,
        "TES_CTS_AUTH__KBASE__URL": kbase.url,
    })


@pytest.fixture(scope="module")
def users(fake_identity_services):
    issuer, _ = fake_identity_services
    return {
        "alice": basic_auth("alice", PASSWORDS["alice"]),
        "basic-bob": basic_auth("bob", PASSWORDS["bob"]),
        "kbase-bob": bearer(KBASE_BOB),
        "ci": bearer(CI_TOKEN),
        "carol": bearer(issuer.token("carol")),
        "root": basic_auth("root", PASSWORDS["root"]),
    }


@pytest.fixture(scope="module")
def owned(server, users):
    """Two tasks per user, by user."""
    made = {}
    for user, headers in users.items():
        if user != "root":
            made[user] = [create(server, headers, name=f"{user}-{n}") for n in range(2)]
    return made


def create(server, headers, **fields) -> str:
    response = requests.post(server.tasks, json=echo_task(**fields), headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def listed(server, headers, **params) -> list[str]:
    ids, token = [], None
    while True:
        page = requests.get(server.tasks, params={**params, "page_size": 1, **({"page_token": token} if token else {})},
                            headers=headers, timeout=30)
        assert page.status_code == 200, page.text
        ids += [t["id"] for t in page.json()["tasks"]]
        token = page.json().get("next_page_token")
        if not token:
            return ids


def test_each_user_lists_exactly_their_own_tasks(server, users, owned):
    for user, ids in owned.items():
        assert sorted(listed(server, users[user])) == sorted(ids), user
        for view in ("BASIC", "FULL"):
            page = requests.get(server.tasks, params={"view": view}, headers=users[user], timeout=30).json()
            assert {t["id"] for t in page["tasks"]} == set(ids)


def test_the_same_name_from_two_providers_is_two_users(owned):
    assert not set(owned["basic-bob"]) & set(owned["kbase-bob"])


def test_another_users_task_is_a_404_exactly_like_an_unknown_id(server, users, owned):
    unknown = secrets.token_hex(13)
    for other in owned["alice"]:
        for method, path in (("get", "/{}"), ("get", "/{}?view=FULL"), ("post", "/{}:cancel")):
            theirs = requests.request(method, server.tasks + path.format(other), headers=users["kbase-bob"], timeout=30)
            missing = requests.request(method, server.tasks + path.format(unknown), headers=users["kbase-bob"], timeout=30)
            assert theirs.status_code == missing.status_code == 404
            assert theirs.headers["content-type"] == missing.headers["content-type"] == "application/json"
            assert theirs.json() == {**missing.json(), "detail": missing.json()["detail"].replace(unknown, other)}
    for task_id in owned["alice"]:  # the cancels changed nothing
        assert requests.get(f"{server.tasks}/{task_id}", headers=users["alice"], timeout=30).json()["state"] == "QUEUED"


def test_guessing_ids_finds_nothing(server, users, owned):
    everyone = {i for ids in owned.values() for i in ids}
    guesses = [secrets.token_urlsafe(16) for _ in range(20)] + [i[:-1] for i in owned["alice"]] + [i.upper() for i in everyone]
    for guess in guesses:
        if guess in owned["ci"]:
            continue
        assert requests.get(f"{server.tasks}/{guess}", headers=users["ci"], timeout=30).status_code == 404


def test_a_user_may_not_list_another_owner(server, users, owned):
    refused = requests.get(server.tasks, params={"owner": "basic:alice"}, headers=users["ci"], timeout=30)
    assert refused.status_code == 403 and "'admin'" in refused.json()["detail"]
    assert sorted(listed(server, users["ci"], owner="bearer:ci")) == sorted(owned["ci"])


def test_an_admin_sees_filters_reads_and_cancels_everything(server, users, owned):
    everyone = {i for ids in owned.values() for i in ids}
    assert everyone <= set(listed(server, users["root"]))
    for owner, user in (("basic:alice", "alice"), ("kbase:bob", "kbase-bob"), ("oidc:carol", "carol"), ("bearer:ci", "ci")):
        assert sorted(listed(server, users["root"], owner=owner)) == sorted(owned[user])
    victim = owned["carol"][0]
    assert requests.get(f"{server.tasks}/{victim}?view=FULL", headers=users["root"], timeout=30).json()["name"] == "carol-0"
    assert requests.post(f"{server.tasks}/{victim}:cancel", headers=users["root"], timeout=30).status_code == 200
    assert requests.get(f"{server.tasks}/{victim}", headers=users["carol"], timeout=30).json()["state"] == "CANCELED"


def test_the_challenge_names_every_accepted_scheme(server):
    response = requests.get(server.tasks, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="tes-cts", charset="UTF-8", Bearer realm="tes-cts"'
    assert ("a service account token, an OIDC access token or a KBase token") in response.json()["detail"]


def test_static_tokens_and_jwts_are_never_sent_to_kbase(server, users, fake_identity_services):
    _, kbase = fake_identity_services
    kbase.server.authorizations.clear()
    for user in ("ci", "carol"):
        assert requests.get(server.tasks, headers=users[user], timeout=30).status_code == 200
    assert kbase.server.authorizations == []


def test_kbase_down_stops_only_what_only_kbase_could_decide(server, users, fake_identity_services):
    _, kbase = fake_identity_services
    kbase.failing = True
    try:
        for user in ("alice", "ci", "carol"):
            assert requests.get(server.tasks, headers=users[user], timeout=30).status_code == 200
        undecided = requests.get(server.tasks, headers=bearer("SOMEOTHERTOKEN234567ABCDEFGHIJK"), timeout=30)
        assert undecided.status_code == 503
    finally:
        kbase.failing = False


def test_no_secret_reaches_the_log(server, users):
    log = server.log_text()
    secrets_sent = [*PASSWORDS.values(), KBASE_BOB, CI_TOKEN, users["carol"]["Authorization"].split()[1]]
    assert not [s for s in secrets_sent if s in log]


# --- in-process: the same work for an unknown id and another owner's task -------------------------


class CountingDatabase:
    def __init__(self, database):
        self._database, self.calls = database, []

    def __getattr__(self, name):
        attribute = getattr(self._database, name)
        if not callable(attribute):
            return attribute

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return counted


def test_unknown_and_foreign_ids_cost_the_same_database_work(make_settings):
    from tes_cts.database import open_database
    from tes_cts.wiring import build_app

    settings = make_settings(auth__providers=["basic"], auth__basic__users={
        "alice": hash_password("a"), "bob": hash_password("b")})
    database = CountingDatabase(open_database(settings))
    alice, bob = basic_auth("alice", "a"), basic_auth("bob", "b")
    with build_app(settings, database).test_client() as client:
        theirs = client.post("/v1/tasks", json=echo_task(), headers=alice).json()["id"]
        # GET reads the stored view, a cancel the phase and size: one read each, whoever owns the id.
        for path, read in (("/v1/tasks/{}", "get_view"), ("/v1/tasks/{}:cancel", "phase_and_size")):
            method = client.post if path.endswith("cancel") else client.get
            database.calls.clear()
            foreign = method(path.format(theirs), headers=bob)
            foreign_calls = list(database.calls)
            database.calls.clear()
            unknown = method(path.format("x" * len(theirs)), headers=bob)
            assert foreign.status_code == unknown.status_code == 404
            assert foreign_calls == database.calls == [read]
    database.close()
