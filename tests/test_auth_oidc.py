"""The `oidc` provider: JWTs from an issuer served on loopback (discovery and JWKS), verified by
a live `tes-cts serve`: signature, iss, aud, exp, key rotation, roles from the groups claim."""

from __future__ import annotations

import pytest
import requests
import tes

from tes_cts.auth import jwks
from tes_cts.auth.identity import AuthUnavailable
from tes_cts.auth.jwks import JwksKeys

from .auth_servers import AUDIENCE, OidcIssuer, bearer
from .helpers import echo_task

MEMBER = ["tes-users"]


@pytest.fixture(scope="module")
def fake_issuer():
    issuer = OidcIssuer()
    yield issuer
    issuer.close()


def oidc_env(issuer) -> dict[str, str]:
    return {
        "TES_CTS_AUTH__PROVIDERS": '["oidc"]',
        "TES_CTS_AUTH__OIDC__ISSUER": issuer.issuer,
        "TES_CTS_AUTH__OIDC__AUDIENCE": AUDIENCE,
        "TES_CTS_AUTH__OIDC__ADMIN_ROLES": '["tes-admins"]',
        "TES_CTS_AUTH__OIDC__USER_ROLES": '["tes-users"]',
    }


@pytest.fixture(scope="module")
def server(live_servers, fake_issuer):
    live = live_servers.start(oidc_env(fake_issuer))
    live.sent_tokens = []  # every token a test sends, for the check of the log
    return live


def call(server, token, method="get", path="", **kwargs):
    server.sent_tokens.append(token)
    return requests.request(method, server.tasks + path, headers=bearer(token), timeout=30, **kwargs)


def assert_401(response, reason):
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer realm="tes-cts"'
    assert reason in response.json()["detail"]


def test_a_valid_token_is_accepted_and_its_subject_owns_the_task(server, fake_issuer):
    alice = fake_issuer.token("alice", groups=MEMBER)
    task_id = call(server, alice, "post", json=echo_task()).json()["id"]
    assert [t["id"] for t in call(server, alice).json()["tasks"]] == [task_id]
    admin = fake_issuer.token("root", groups=["tes-admins"])
    owned = call(server, admin, params={"owner": "oidc:alice"}).json()["tasks"]
    assert [t["id"] for t in owned] == [task_id]


def test_an_expired_token_is_a_401(server, fake_issuer):
    assert_401(call(server, fake_issuer.token("alice", groups=MEMBER, expires_in=-120)), "the token has expired")


def test_a_token_for_another_audience_is_a_401(server, fake_issuer):
    assert_401(call(server, fake_issuer.token("alice", groups=MEMBER, audience="another-service")),
               "not meant for this service (aud)")


def test_a_token_signed_by_another_key_under_a_published_kid_is_a_401(server, fake_issuer):
    forged = fake_issuer.token("alice", groups=MEMBER, key=fake_issuer.foreign_key(), kid=fake_issuer.kid)
    assert_401(call(server, forged), "signature does not verify")


@pytest.mark.parametrize("make", [
    lambda i: i.token("alice", groups=MEMBER, algorithm="HS256", key="a-shared-secret-of-32-bytes-long!"),
    lambda i: i.token("alice", groups=MEMBER, algorithm="none", key=None),
])
def test_symmetric_and_unsigned_tokens_are_refused(server, fake_issuer, make):
    assert_401(call(server, make(fake_issuer)), "algorithm")


def test_a_token_without_exp_is_a_401(server, fake_issuer):
    import jwt

    token = jwt.encode({"iss": fake_issuer.issuer, "aud": AUDIENCE, "sub": "alice"}, fake_issuer.key, algorithm="RS256",
                       headers={"kid": fake_issuer.kid})
    assert_401(call(server, token), "lacks a required claim")


def test_tokens_of_other_issuers_and_non_jwts_are_not_accepted(server, fake_issuer):
    assert_401(call(server, fake_issuer.token("alice", groups=MEMBER, issuer="https://elsewhere.example")),
               "credentials sent were not accepted")
    assert_401(call(server, "not.a.jwt"), "credentials sent were not accepted")


def test_a_rotated_key_is_fetched_when_a_token_names_it(live_servers, fake_issuer):
    # One worker: each gunicorn worker has its own key cache, and one that has not yet met a
    # token of the new key still trusts the old one until its cache expires.
    server = live_servers.start(oidc_env(fake_issuer), workers=1)
    server.sent_tokens = []
    old = fake_issuer.token("alice", groups=MEMBER)
    assert call(server, old).status_code == 200
    fetches = fake_issuer.jwks_fetches
    fake_issuer.rotate()
    new = fake_issuer.token("alice", groups=MEMBER)
    assert call(server, new).status_code == 200
    assert fake_issuer.jwks_fetches > fetches
    assert_401(call(server, old), "a key the issuer does not publish")  # the old key is gone


def test_submitting_needs_the_user_group_and_the_403_names_the_role(server, fake_issuer):
    outsider = fake_issuer.token("mallory", groups=["other"])
    refused = call(server, outsider, "post", json=echo_task())
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/json"
    body = refused.json()
    assert body["title"] == "Forbidden" and body["status"] == 403
    assert "'user'" in body["detail"] and "tes-users" in body["detail"] and "oidc:mallory" in body["detail"]
    assert body["errors"] == [{"field": "role", "reason": "missing role 'user'"}]
    assert call(server, outsider).json() == {"tasks": []}  # reading one's own tasks needs no role


def test_roles_may_come_from_a_nested_claim(fake_issuer):
    from tes_cts.auth.oidc import external_roles

    assert external_roles({"realm_access": {"roles": ["a", 3, "b"]}}, "realm_access.roles") == ["a", "b"]
    assert external_roles({"scope": "x y"}, "scope") == ["x", "y"]
    assert external_roles({}, "groups") == []


def test_py_tes_with_an_access_token(server, fake_issuer):
    token = fake_issuer.token("pytes-user", groups=MEMBER)
    server.sent_tokens.append(token)
    client = tes.HTTPClient(server.url, token=token)
    task_id = client.create_task(tes.Task(executors=[tes.Executor(image="busybox", command=["true"])]))
    assert [t.id for t in client.list_tasks().tasks] == [task_id]


def test_an_unreachable_issuer_is_a_503_never_a_500_nor_allowed(make_settings, fake_issuer):
    from tes_cts.database import open_database
    from tes_cts.wiring import build_app

    from .live_server import free_port

    settings = make_settings(auth__providers=["oidc"], auth__oidc__issuer=f"http://127.0.0.1:{free_port()}",
                             auth__oidc__audience=AUDIENCE, auth__timeout_s=2)
    database = open_database(settings)
    token = fake_issuer.token("alice", groups=MEMBER, issuer=settings.auth.oidc.issuer)
    with build_app(settings, database).test_client() as client:
        response = client.get("/v1/tasks", headers=bearer(token))
    database.close()
    assert response.status_code == 503
    body = response.json()
    assert body["title"] == "Service Unavailable" and "could not be read" in body["detail"]
    assert token not in response.text


def test_no_token_reaches_the_log(server):
    log = server.log_text()
    assert server.sent_tokens and not [t for t in server.sent_tokens if t in log]


# --- the key cache, on a clock of its own -------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_keys_are_cached_and_fetched_again_when_they_expire(fake_issuer):
    clock = Clock()
    keys = JwksKeys(fake_issuer.issuer, fake_issuer.issuer + "/jwks", 5, clock)
    before = fake_issuer.jwks_fetches
    for _ in range(5):
        assert keys.get(fake_issuer.kid)["kid"] == fake_issuer.kid
    assert fake_issuer.jwks_fetches == before + 1
    clock.now += jwks.KEYS_TTL_S
    keys.get(fake_issuer.kid)
    assert fake_issuer.jwks_fetches == before + 2


def test_unknown_key_ids_do_not_make_us_hammer_the_issuer(fake_issuer):
    clock = Clock()
    keys = JwksKeys(fake_issuer.issuer, "", 5, clock)  # discovered
    assert keys.get(fake_issuer.kid) is not None
    before = fake_issuer.jwks_fetches
    assert keys.get("random-1") is None  # one refetch, fruitless...
    assert keys.get("random-2") is None and keys.get("random-3") is None  # ...then quiet
    assert fake_issuer.jwks_fetches == before + 1
    clock.now += jwks.UNKNOWN_KEY_QUIET_S
    fake_issuer.rotate()
    assert keys.get(fake_issuer.kid) is not None
    assert fake_issuer.jwks_fetches == before + 2


def test_a_discovery_document_for_another_issuer_is_refused(fake_issuer):
    keys = JwksKeys(fake_issuer.issuer + "/realms/other", "", 5)
    with pytest.raises(AuthUnavailable, match="discovery document"):
        keys.get(None)
