"""Auth and CORS settings: checked at start with messages that name the setting and never quote
a secret; `tes-cts hash-password`; CORS for browser clients."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tes_cts.auth.hashing import hash_password, is_password_hash, token_digest, verify_password
from tes_cts.settings import SettingsError
from tes_cts.wiring import load_checked_settings

from .auth_servers import basic_auth
from .helpers import echo_task

HASH = hash_password("pw")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("TES_CTS_")]:
        monkeypatch.delenv(name)


def test_the_default_is_none_with_cors_off():
    settings = load_checked_settings()
    assert settings.auth.providers == ["none"] and settings.cors.allow_origins == []


def test_providers_and_users_come_from_environment_variables(monkeypatch):
    monkeypatch.setenv("TES_CTS_AUTH__PROVIDERS", '["basic", "kbase"]')
    monkeypatch.setenv("TES_CTS_AUTH__BASIC__USERS", f'{{"Alice.B" = "{HASH}"}}')
    settings = load_checked_settings()
    assert settings.auth.providers == ["basic", "kbase"]
    assert dict(settings.auth.basic.users) == {"Alice.B": HASH}  # names keep their case


@pytest.mark.parametrize("overrides,words", [
    ({"auth.providers": ["ldap"]}, ["auth.providers", "ldap", "kbase"]),
    ({"auth.providers": []}, ["auth.providers", "at least one"]),
    ({"auth.providers": ["none", "basic"]}, ["auth.providers", "cannot be combined"]),
    ({"auth.providers": ["basic", "basic"]}, ["auth.providers", "twice"]),
    ({"auth.providers": "basic"}, ["auth.providers", "list"]),
    ({"auth.providers": ["basic"]}, ["auth.basic.users", "at least one"]),
    ({"auth.providers": ["basic"], "auth.basic.users": {"a:b": HASH}}, ["auth.basic.users", "'a:b'", "colon"]),
    ({"auth.providers": ["bearer"], "auth.bearer.tokens": {"ci": HASH}}, ["auth.bearer.tokens", "'ci'", "--token"]),
    ({"auth.providers": ["oidc"]}, ["auth.oidc.issuer", "http(s) URL"]),
    ({"auth.providers": ["oidc"], "auth.oidc.issuer": "https://id.example"}, ["auth.oidc.audience", "required"]),
    ({"auth.providers": ["oidc"], "auth.oidc.issuer": "https://id.example", "auth.oidc.audience": "tes",
      "auth.oidc.algorithms": ["HS256"]}, ["auth.oidc.algorithms", "HS256"]),
    ({"auth.providers": ["kbase"], "auth.kbase.url": "kbase.us"}, ["auth.kbase.url", "http(s) URL"]),
    ({"auth.kbase.user_roles": "KBASE_STAFF"}, ["auth.kbase.user_roles", "list"]),
    ({"auth.admins": ["alice"]}, ["auth.admins", "<provider>:<user name>", "'alice'"]),
    ({"auth.timeout_s": 0}, ["auth.timeout_s", "greater than 0"]),
    ({"auth.kbase.cache_s": -1}, ["auth.kbase.cache_s", "at least 0"]),
    ({"cors.allow_origins": ["https://app.example/path"]}, ["cors.allow_origins", "origins such as"]),
])
def test_bad_auth_settings_are_refused_naming_the_setting(overrides, words):
    with pytest.raises(SettingsError) as raised:
        load_checked_settings(overrides)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize("overrides", [
    {"auth.providers": ["basic"], "auth.basic.users": {"alice": "plain-password-by-mistake"}},
    {"auth.providers": ["basic"], "auth.basic.users": "plain-password-by-mistake"},
    {"auth.providers": ["bearer"], "auth.bearer.tokens": {"ci": "plain-password-by-mistake"}},
])
def test_a_bad_secret_is_refused_without_being_quoted(overrides):
    with pytest.raises(SettingsError) as raised:
        load_checked_settings(overrides)
    assert "plain-password-by-mistake" not in str(raised.value) and "auth." in str(raised.value)


def test_secret_files_are_read_and_checked(tmp_path):
    users = tmp_path / "users"
    users.write_text(f"# comment\n\nalice:{HASH}\n")
    settings = load_checked_settings({"auth.providers": ["basic"], "auth.basic.users_file": str(users)})
    assert settings.auth.basic.users_file == str(users)
    for content, words in ((f"alice:{HASH}\nalice:{HASH}\n", "line 2"), ("alice\n", "NAME:SECRET"),
                           ("alice:secret-in-clear\n", "'alice'")):
        users.write_text(content)
        with pytest.raises(SettingsError) as raised:
            load_checked_settings({"auth.providers": ["basic"], "auth.basic.users_file": str(users)})
        assert "auth.basic.users_file" in str(raised.value) or "auth.basic.users" in str(raised.value)
        assert words in str(raised.value) and "secret-in-clear" not in str(raised.value)
    with pytest.raises(SettingsError, match="auth.bearer.tokens_file: cannot read"):
        load_checked_settings({"auth.providers": ["bearer"], "auth.bearer.tokens_file": str(tmp_path / "missing")})


def test_hash_password_reads_stdin_and_prints_a_hash_serve_accepts():
    tes_cts = [sys.executable, "-m", "tes_cts.cli", "hash-password"]
    printed = subprocess.run(tes_cts, input="correct horse \n", capture_output=True, text=True, check=True).stdout.strip()
    assert is_password_hash(printed) and verify_password("correct horse ", printed)  # only the newline goes
    assert "correct horse" not in printed
    digest = subprocess.run([*tes_cts, "--token"], input="tok-123", capture_output=True, text=True, check=True).stdout
    assert digest.strip() == token_digest("tok-123")
    empty = subprocess.run(tes_cts, input="", capture_output=True, text=True)
    assert empty.returncode == 2 and "no password" in empty.stderr


def test_hashes_are_salted_and_verify_through_compare_digest(monkeypatch):
    # Salted: the same password hashes differently under fresh salts, identically under one salt.
    assert hash_password("pw") != hash_password("pw")
    salt = bytes(range(16))
    assert hash_password("pw", salt) == hash_password("pw", salt) != hash_password("pW", salt)
    assert verify_password("pw", HASH) and not verify_password("pW", HASH)
    # Timing cannot be measured reliably in a test; what makes it constant is that every
    # comparison of a derived key goes through hmac.compare_digest, never `==`.
    import hmac

    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    assert verify_password("pw", HASH) and not verify_password("pW", HASH)
    assert len(compared) == 2 and all(len(a) == len(b) == 32 for a, b in compared)


# --- CORS ------------------------------------------------------------------------------------------


def cors_client(make_settings, db, **overrides):
    from tes_cts.wiring import build_app

    return build_app(make_settings(**overrides), db).test_client()


def test_cors_is_off_by_default(client):
    response = client.get("/v1/service-info", headers={"Origin": "https://app.example.org"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_preflight_and_errors_for_a_browser_client(make_settings, sqlite_db):
    client = cors_client(make_settings, sqlite_db, cors__allow_origins=["https://app.example.org"],
                         auth__providers=["basic"], auth__basic__users={"alice": HASH})
    origin = {"Origin": "https://app.example.org"}
    preflight = client.options("/ga4gh/tes/v1/tasks", headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200  # no credentials needed for the preflight itself
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.org"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    denied = client.get("/ga4gh/tes/v1/tasks", headers=origin)
    assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == "https://app.example.org"
    assert "www-authenticate" in denied.headers["access-control-expose-headers"].lower()
    created = client.post("/ga4gh/tes/v1/tasks", json=echo_task(), headers={**origin, **basic_auth("alice", "pw")})
    assert created.status_code == 200 and created.headers["access-control-allow-origin"] == "https://app.example.org"
    other = client.options("/ga4gh/tes/v1/tasks", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
