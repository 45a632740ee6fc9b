"""The container runtime contract the executors use, and the choice of its implementation.

A runtime starts one container per executor (`start`), with its output streaming into the
executor's log files, and hands back a `RunningContainer` to wait for or kill. The docker runtime
speaks the Docker Engine API (`engine_api`), the podman runtime drives podman's command line
(`engine_cli`). Each is imported only when chosen: a process that runs no container loads neither.

Every container of an attempt carries the labels `tes-cts.task=ID` and `tes-cts.attempt=N`, so
`kill_all(task_id, attempt)` finds them from anywhere the engine is reachable, even after the
worker that started them died.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..jobfiles import ContainerSettings
from .paths import Mount

TASK_LABEL = "tes-cts.task"
ATTEMPT_LABEL = "tes-cts.attempt"

# The exit code an executor log shows when its program did not run, or the engine failed under
# it: 125, as the docker and podman clients report a failure of their own.
NOT_RUN_EXIT_CODE = 125


class RuntimeUnavailable(Exception):
    """The container engine cannot be reached (not installed, not running, no permission), or
    failed while a container ran."""


class ImageUnavailable(Exception):
    """The image is not present and could not be pulled; the message is the engine's."""


class ContainerNotStarted(Exception):
    """The engine did not start the container (name in use, bad mount, missing image, unknown
    option, engine down); the message is the engine's."""


@dataclass(frozen=True)
class ContainerSpec:
    """One executor's container, in terms the engine understands (no TES, no task paths)."""

    name: str
    image: str
    command: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    stdin: Path | None = None                  # a host file fed to the container's stdin, then EOF
    cpu_cores: int | None = None
    ram_gb: float | None = None


def attempt_labels(task_id: str, attempt: int) -> dict[str, str]:
    return {TASK_LABEL: task_id, ATTEMPT_LABEL: str(attempt)}


def memory_mib(ram_gb: float) -> int:
    """The memory limit of a container asking for `ram_gb`, in whole MiB, rounded up."""
    return math.ceil(ram_gb * 1024)


class RunningContainer(ABC):
    """A container `start` started. Once `wait` or `kill` returned its exit code, its output is
    all in the log files and the container is removed."""

    @abstractmethod
    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it still runs after `timeout` seconds. Raises
        RuntimeUnavailable if the engine was lost, ContainerNotStarted if it turns out the
        container never started (a client learns that only when it exits)."""

    @abstractmethod
    def kill(self) -> int:
        """Stop the container now; its exit code. Raises RuntimeUnavailable if the engine does
        not stop it."""

    def written_bytes(self) -> int | None:
        """What the container has written into its own writable layer (not its mounts); None
        if the engine cannot tell now."""
        return None

    def lost_output(self) -> str | None:
        """Why some of the container's output is missing from the log files (they could not be
        written), or None."""
        return None


class ContainerRuntime(ABC):
    def __init__(self, settings: ContainerSettings):
        self.settings = settings

    @abstractmethod
    def engine_problem(self) -> str | None:
        """None if the engine answers, else why not."""

    @abstractmethod
    def image_present(self, image: str) -> bool:
        """Whether the image is in the engine's local store. Raises RuntimeUnavailable."""

    @abstractmethod
    def pull(self, image: str, timeout: float) -> None:
        """Pull the image (`name`, `name:tag` or `name@sha256:...`; no tag is `latest`). Raises
        ImageUnavailable with the engine's message, RuntimeUnavailable."""

    @abstractmethod
    def start(self, spec: ContainerSpec, stdout: BinaryIO, stderr: BinaryIO) -> RunningContainer:
        """Start the container, never pulling its image; its stdout and stderr stream into the
        two files as it writes them. Raises ContainerNotStarted."""

    @abstractmethod
    def kill(self, name: str) -> None:
        """Kill one container by name or id; nothing happens if it does not exist (yet or any
        more) or does not run. Raises RuntimeUnavailable."""

    @abstractmethod
    def kill_all(self, task_id: str, attempt: int) -> list[str]:
        """Force-remove every container of one attempt, running or not; the ids removed. Raises
        RuntimeUnavailable."""


def runtime_for(settings: ContainerSettings) -> ContainerRuntime:
    # Imported here, not above: the implementations import this module, and only the chosen one loads.
    if settings.runtime == "docker":
        from .engine_api import DockerEngineRuntime

        return DockerEngineRuntime(settings)
    if settings.runtime == "podman":
        from .engine_cli import PodmanRuntime

        return PodmanRuntime(settings)
    raise ValueError(f"unknown container runtime {settings.runtime!r}; use docker or podman")
