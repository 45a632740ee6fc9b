"""The Docker engine the tests use, and the busybox image they run (no registry is reachable,
so the image is built locally from Debian's static busybox with `docker import`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

DEFAULT_DOCKER_HOST = "unix:///var/run/tes-cts-docker/docker.sock"
TEST_IMAGE = "tes-cts-test/busybox:1"
BUSYBOX = Path("/bin/busybox")


def docker_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST)}


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], env=docker_env(), capture_output=True, text=True,
                          check=check, timeout=timeout)


def docker_reachable() -> str | None:
    """None if the engine answers, else why not."""
    if shutil.which("docker") is None:
        return "the docker client is not installed"
    try:
        result = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 20 s"
    return None if result.returncode == 0 else f"the Docker engine is not reachable: {result.stderr.strip()}"


def require_docker() -> None:
    """Skip where there is no engine, but fail under CI, where .ci/run starts one."""
    problem = docker_reachable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (DOCKER_HOST={docker_env()['DOCKER_HOST']})")
        pytest.skip(problem)


def ensure_test_image() -> str:
    if docker("image", "inspect", TEST_IMAGE, check=False).returncode == 0:
        return TEST_IMAGE
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "rootfs"
        for directory in ("bin", "tmp", "etc", "root"):
            (root / directory).mkdir(parents=True)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        archive = Path(scratch) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        docker("import", "--change", "ENV PATH=/bin", "--change", 'CMD ["/bin/sh"]', str(archive), TEST_IMAGE)
    return TEST_IMAGE
