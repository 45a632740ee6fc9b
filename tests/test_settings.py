"""Settings: defaults, environments, environment variables, and messages that name the setting."""

from __future__ import annotations

import pytest

from tes_cts.settings import SettingsError, load_settings, sqlite_path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("TES_CTS_")]:
        monkeypatch.delenv(name)


def test_defaults_without_any_file(tmp_path):
    settings = load_settings()
    assert settings.server.bind == "127.0.0.1:8000"
    assert settings.tasks.content_max_bytes == 131072
    assert str(sqlite_path(settings)) == "tes-cts-work/tes-cts.sqlite3"


def test_environment_variables_override_with_double_underscore_nesting(monkeypatch):
    monkeypatch.setenv("TES_CTS_SERVER__BIND", "0.0.0.0:9999")
    monkeypatch.setenv("TES_CTS_STORAGE__FILE_ROOTS", '["/data", "/scratch"]')
    monkeypatch.setenv("TES_CTS_DATABASE__SQLITE_PATH", "/var/lib/tes/tasks.db")
    settings = load_settings()
    assert settings.server.bind == "0.0.0.0:9999"
    assert settings.storage.file_roots == ["/data", "/scratch"]
    assert str(sqlite_path(settings)) == "/var/lib/tes/tasks.db"


def test_tes_cts_env_chooses_the_section(monkeypatch):
    monkeypatch.setenv("TES_CTS_ENV", "production")
    settings = load_settings()
    assert settings.server.bind == "0.0.0.0:8000" and settings.server.workers == 4
    monkeypatch.setenv("TES_CTS_SERVER__WORKERS", "2")  # the environment still wins
    assert load_settings().server.workers == 2


def test_a_settings_file_can_be_named(tmp_path, monkeypatch):
    path = tmp_path / "site.toml"
    path.write_text('[default]\nservice.name = "site TES"\n')
    monkeypatch.setenv("TES_CTS_SETTINGS_FILE", str(path))
    assert load_settings().service.name == "site TES"


def test_a_named_settings_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(settings_file=tmp_path / "nope.toml")


@pytest.mark.parametrize("variable,value,words", [
    ("TES_CTS_SERVER__WORKERS", "0", ["server.workers", "at least 1"]),
    ("TES_CTS_SERVER__WORKERS", "many", ["server.workers", "integer"]),
    ("TES_CTS_TASKS__CONTENT_MAX_BYTES", "1024", ["tasks.content_max_bytes", "128 KiB"]),
    ("TES_CTS_DATABASE__KIND", "postgres", ["database.kind", "sqlite"]),
    ("TES_CTS_STORAGE__FILE_ROOTS", '["relative/dir"]', ["storage.file_roots", "absolute"]),
    ("TES_CTS_BACKEND__KIND", "slurm", ["backend.kind", "local"]),
    ("TES_CTS_CONTAINERS__EXTRA_ARGS", '["--runtime", "runc"]', ["containers.extra_args", "docker", "Engine API", "podman"]),
    ("TES_CTS_STORAGE__HTTP_ALLOW", '["10.0.0.0/33"]', ["storage.http_allow", "10.0.0.0/33", "networks"]),
    ("TES_CTS_STORAGE__HTTP_ALLOW", '[""]', ["storage.http_allow"]),
    ("TES_CTS_METRICS__ENABLED", "maybe", ["metrics.enabled", "true or false"]),
    ("TES_CTS_METRICS__TOKEN_DIGEST", "plain-token", ["metrics.token_digest", "tes-cts hash-password --token"]),
])
def test_bad_values_are_refused_with_the_setting_named(monkeypatch, variable, value, words):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    for word in words:
        assert word in str(raised.value)


def test_extra_args_are_podman_arguments(monkeypatch):
    monkeypatch.setenv("TES_CTS_CONTAINERS__RUNTIME", "podman")
    monkeypatch.setenv("TES_CTS_CONTAINERS__EXTRA_ARGS", '["--runtime", "runc"]')
    assert load_settings().containers.extra_args == ["--runtime", "runc"]


def test_metrics_are_on_and_open_by_default_and_take_a_token_digest(monkeypatch):
    from tes_cts.auth.hashing import token_digest

    settings = load_settings()
    assert settings.metrics.enabled is True and settings.metrics.token_digest == ""
    monkeypatch.setenv("TES_CTS_METRICS__TOKEN_DIGEST", token_digest("scraper"))
    assert load_settings().metrics.token_digest == token_digest("scraper")
