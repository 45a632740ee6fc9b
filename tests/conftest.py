"""Shared fixtures: settings in a temporary work directory, the real app and its SQLite task
database (`sqlite_db`), live `tes-cts serve` processes (`live_servers`), the container engine's
test image (`docker_image`)."""

from __future__ import annotations

import pytest

from tes_cts.database import open_database
from tes_cts.database.sqlite import SqliteTaskDatabase
from tes_cts.wiring import build_app, load_checked_settings

from .live_server import LiveServers


def pytest_collection_modifyitems(items):
    """Mark what a test needs, so that `-m "not engine and not live"` runs the rest fast:
    `engine` for tests that use the container engine (the `docker_image` fixture), `live` for
    tests that start `tes-cts serve` as a process (the `live_servers` fixture; a test that runs
    serve by itself says `@pytest.mark.live`)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "docker_image" in fixtures:
            item.add_marker(pytest.mark.engine)
        if "live_servers" in fixtures:
            item.add_marker(pytest.mark.live)


@pytest.fixture
def make_settings(tmp_path, monkeypatch):
    # Tests never read the developer's environment.
    for name in [n for n in __import__("os").environ if n.startswith("TES_CTS_")]:
        if name != "TES_CTS_TEST_MONGO_URI":
            monkeypatch.delenv(name)

    def make(**overrides):
        values = {"work_dir": str(tmp_path / "work")}
        values.update({name.replace("__", "."): value for name, value in overrides.items()})
        return load_checked_settings(values)

    return make


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def sqlite_db(settings):
    """The SQLite task database in the settings' work directory, opened as the app opens it."""
    opened = open_database(settings)
    assert isinstance(opened, SqliteTaskDatabase)
    yield opened
    opened.close()


@pytest.fixture
def app(settings, sqlite_db):
    return build_app(settings, sqlite_db)


@pytest.fixture
def client(app):
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture(scope="session")
def docker_image():
    """A real Docker engine and the locally built busybox image; the name of the image."""
    from .docker_env import ensure_test_image, require_docker

    require_docker()
    return ensure_test_image()


@pytest.fixture(scope="module")
def live_servers(tmp_path_factory):
    """Starts `tes-cts serve` processes: `live_servers.start(env, ...)` (see LiveServers.start);
    every one still running is stopped when the module's tests are done."""
    servers = LiveServers(tmp_path_factory)
    yield servers
    servers.stop_all()
