"""Container engine commands (docker, podman), always as argument lists, never a shell string.

Every container of an attempt carries the labels `tes-cts.task=ID` and `tes-cts.attempt=N`, so
`kill_all(task_id, attempt)` finds them from anywhere the engine is reachable, even after the
worker that started them died.
"""

from __future__ import annotations

import math
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ..jobfiles import ContainerSettings
from .paths import Mount

TASK_LABEL = "tes-cts.task"
ATTEMPT_LABEL = "tes-cts.attempt"

# `docker run` and `podman run` exit with 125 when the engine failed, not the container.
RUN_FAILED_EXIT_CODE = 125

# What the clients print when they cannot reach their engine (compared in lower case).
_ENGINE_UNREACHABLE = (
    "cannot connect to the docker daemon",
    "error during connect",
    "permission denied while trying to connect to the docker daemon",
    "cannot connect to podman",
    "unable to connect to podman",
)

_COMMAND_TIMEOUT_S = 60.0


class RuntimeUnavailable(Exception):
    """The container engine cannot be reached (not installed, not running, no permission)."""


class ImageUnavailable(Exception):
    """The image is not present and could not be pulled; the message is the engine's."""


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
    stdin: bool = False                        # keep the container's stdin open (`-i`)
    cpu_cores: int | None = None
    ram_gb: float | None = None


def attempt_labels(task_id: str, attempt: int) -> dict[str, str]:
    return {TASK_LABEL: task_id, ATTEMPT_LABEL: str(attempt)}


def engine_unreachable(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _ENGINE_UNREACHABLE)


class ContainerRuntime(ABC):
    program: str                               # the client executable
    version_args: tuple[str, ...]              # a command that fails when the engine is down
    run_error_prefix: str                      # how the client's own `run` errors begin

    def __init__(self, settings: ContainerSettings):
        self.settings = settings

    def engine_problem(self) -> str | None:
        """None if the engine answers, else why not."""
        try:
            self._call(*self.version_args)
        except RuntimeUnavailable as exc:
            return str(exc)
        return None

    @abstractmethod
    def image_present(self, image: str) -> bool:
        """Whether the image is in the engine's local store. Raises RuntimeUnavailable."""

    def pull(self, image: str, timeout: float = _COMMAND_TIMEOUT_S) -> None:
        try:
            self._call("pull", "--quiet", image, timeout=timeout)
        except subprocess.CalledProcessError as exc:
            raise ImageUnavailable(_last_line(exc.stderr) or f"{self.program} pull exited with code {exc.returncode}") from None

    def run_command(self, spec: ContainerSpec) -> list[str]:
        """`run` for one container, attached: its stdout/stderr are the client's."""
        args = [self.program, "run", "--rm", "--pull", "never", "--name", spec.name]
        for key, value in spec.labels.items():
            args += ["--label", f"{key}={value}"]
        if spec.stdin:
            args.append("-i")
        for mount in spec.mounts:
            args += ["-v", f"{mount.host}:{mount.container}"]
        if spec.workdir:
            args += ["--workdir", spec.workdir]
        for key, value in spec.env.items():
            args += ["-e", f"{key}={value}"]
        if spec.cpu_cores:
            args += ["--cpus", str(spec.cpu_cores)]
        if spec.ram_gb:
            args += ["--memory", f"{math.ceil(spec.ram_gb * 1024)}m"]
        args += ["--network", self.settings.network]
        if self.settings.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        for capability in self.settings.cap_drop:
            args += ["--cap-drop", capability]
        return [*args, *self.settings.extra_args, spec.image, *spec.command]

    def start_failure(self, exit_code: int, stderr: str) -> str | None:
        """The client's message when `run` failed before the container's program ran (name in
        use, engine down, resources refused), else None: the exit code is the program's."""
        if exit_code != RUN_FAILED_EXIT_CODE:
            return None
        for line in stderr.splitlines():
            if line.startswith(self.run_error_prefix) or engine_unreachable(line):
                return line.strip()
        return None

    def kill(self, name: str) -> None:
        """Kill one container by name; nothing happens if it does not exist (yet or any more)."""
        self._call("kill", name, check=False)

    def kill_all(self, task_id: str, attempt: int) -> list[str]:
        """Force-remove every container of one attempt, running or not; the ids removed."""
        filters = [arg for key, value in attempt_labels(task_id, attempt).items()
                   for arg in ("--filter", f"label={key}={value}")]
        ids = self._call("ps", "-aq", *filters).stdout.split()
        if ids:
            self._call("rm", "-f", *ids, check=False)
        return ids

    def _call(self, *args: str, check: bool = True, timeout: float = _COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        """Run one client command; RuntimeUnavailable when the engine cannot be reached,
        CalledProcessError (with stderr) for any other failure when `check`."""
        command = [self.program, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise RuntimeUnavailable(f"the {self.program} client is not installed (not found on PATH)") from None
        except subprocess.TimeoutExpired:
            raise RuntimeUnavailable(f"`{self.program} {args[0]}` did not finish within {timeout:g} s") from None
        if done.returncode != 0 and engine_unreachable(done.stderr):
            raise RuntimeUnavailable(_last_line(done.stderr))
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
        return done


class DockerRuntime(ContainerRuntime):
    program = "docker"
    version_args = ("version", "--format", "{{.Server.Version}}")
    run_error_prefix = "docker: Error response from daemon"

    def image_present(self, image: str) -> bool:
        return self._call("image", "inspect", "--format", "{{.Id}}", image, check=False).returncode == 0


class PodmanRuntime(ContainerRuntime):
    program = "podman"
    version_args = ("info", "--format", "{{.Version.Version}}")
    run_error_prefix = "Error: "

    def image_present(self, image: str) -> bool:
        return self._call("image", "exists", image, check=False).returncode == 0


_RUNTIMES = {runtime.program: runtime for runtime in (DockerRuntime, PodmanRuntime)}


def runtime_for(settings: ContainerSettings) -> ContainerRuntime:
    try:
        return _RUNTIMES[settings.runtime](settings)
    except KeyError:
        raise ValueError(f"unknown container runtime {settings.runtime!r}; use one of {', '.join(_RUNTIMES)}") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
