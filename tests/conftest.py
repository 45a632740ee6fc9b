"""Shared fixtures: settings in a temporary work directory, the real app, its store."""

from __future__ import annotations

import pytest

from tes_cts.api.app import create_app
from tes_cts.database import open_database
from tes_cts.settings import load_settings


def pytest_collection_modifyitems(items):
    """Mark what a test needs, so that `-m "not engine and not live"` runs the rest fast:
    `engine` for tests that use the container engine (the `docker_image` fixture), `live` for
    tests whose module starts `tes-cts serve` as a process (it imports the live-server helper)."""
    for item in items:
        if "docker_image" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)
        module = getattr(item, "module", None)
        if module is not None and {"LiveServer", "serve_with_auth"} & set(vars(module)):
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
        return load_settings(values)

    return make


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def store(settings):
    opened = open_database(settings)
    yield opened
    opened.close()


@pytest.fixture
def app(settings, store):
    return create_app(settings, store)


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
