"""The podman runtime: podman's command line client, always argument lists, never a shell string.

Podman serves the Docker Engine API only while `podman system service` runs; whoever runs that
service can point DOCKER_HOST at its socket and use the runtime "docker" (`engine_api`) instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from .runtime import (
    NOT_RUN_EXIT_CODE,
    ContainerNotStarted,
    ContainerRuntime,
    ContainerSpec,
    ImageUnavailable,
    RunningContainer,
    RuntimeUnavailable,
    attempt_labels,
    memory_mib,
)

PROGRAM = "podman"
_RUN_ERROR_PREFIX = "Error: "              # how podman's own errors begin
# What the client prints when it cannot reach its engine (compared in lower case).
_ENGINE_UNREACHABLE = ("cannot connect to podman", "unable to connect to podman")
_COMMAND_TIMEOUT_S = 60.0
_KILL_WAIT_S = 2.0
_KILL_ATTEMPTS = 5
_START_FAILURE_BYTES = 8192                # the client's message, at the start of its stderr
# A variable an env file can hold: a plain name, a value on one line (the file has no quoting).
_ENV_FILE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _engine_unreachable(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _ENGINE_UNREACHABLE)


def start_failure(exit_code: int, stderr: str) -> str | None:
    """The client's message when `run` failed before the container's program ran (name in use,
    engine down, resources refused), else None: the exit code is the program's."""
    if exit_code != NOT_RUN_EXIT_CODE:
        return None
    for line in stderr.splitlines():
        if line.startswith(_RUN_ERROR_PREFIX) or _engine_unreachable(line):
            return line.strip()
    return None


class PodmanRuntime(ContainerRuntime):
    def engine_problem(self) -> str | None:
        try:
            self._call("info", "--format", "{{.Version.Version}}")
        except RuntimeUnavailable as exc:
            return str(exc)
        return None

    def image_present(self, image: str) -> bool:
        return self._call("image", "exists", image, check=False).returncode == 0

    def pull(self, image: str, timeout: float) -> None:
        try:
            self._call("pull", "--quiet", image, timeout=timeout)
        except subprocess.CalledProcessError as exc:
            raise ImageUnavailable(_last_line(exc.stderr) or f"{PROGRAM} pull exited with code {exc.returncode}") from None

    def run_command(self, spec: ContainerSpec, env_file: Path | None = None) -> list[str]:
        """`run` for one container, attached: its stdout/stderr are the client's. The variables
        `env_file` holds (see `_write_env_file`) are read from it, so that their values are not
        in the client's arguments, which every user of the host can see; the others are given
        with -e."""
        args = [PROGRAM, "run", "--rm", "--pull", "never", "--name", spec.name]
        for key, value in spec.labels.items():
            args += ["--label", f"{key}={value}"]
        if spec.stdin:
            args.append("-i")
        for mount in spec.mounts:
            args += ["-v", f"{mount.host}:{mount.container}"]
        if spec.workdir:
            args += ["--workdir", spec.workdir]
        if env_file is not None:
            args += ["--env-file", str(env_file)]
        for key, value in spec.env.items():
            if env_file is None or not _fits_env_file(key, value):
                args += ["-e", f"{key}={value}"]
        if spec.cpu_cores:
            args += ["--cpus", str(spec.cpu_cores)]
        if spec.ram_gb:
            args += ["--memory", f"{memory_mib(spec.ram_gb)}m"]
        args += ["--network", self.settings.network]
        if self.settings.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        for capability in self.settings.cap_drop:
            args += ["--cap-drop", capability]
        # "--" ends the options: whatever the image says, it is read as the image.
        return [*args, *self.settings.extra_args, "--", spec.image, *spec.command]

    def start(self, spec: ContainerSpec, stdout: BinaryIO, stderr: BinaryIO) -> RunningContainer:
        env_file = _write_env_file(spec.env)
        try:
            with open(spec.stdin or os.devnull, "rb") as stdin:
                # Its own session: a signal sent to the worker's process group reaches the worker
                # only, which then stops the container itself and records what happened.
                process = subprocess.Popen(self.run_command(spec, env_file), stdin=stdin, stdout=stdout, stderr=stderr,
                                           start_new_session=True)
        except FileNotFoundError:
            _remove(env_file)
            raise ContainerNotStarted(_not_installed()) from None
        return _ClientRun(self, spec.name, process, Path(stderr.name), env_file)

    def kill(self, name: str) -> None:
        self._call("kill", name, check=False)

    def written_bytes(self, name: str) -> int | None:
        """The size of the container's writable layer, which podman computes when asked."""
        try:
            done = self._call("container", "inspect", "--size", "--format", "{{.SizeRw}}", name, check=False)
        except RuntimeUnavailable:
            return None
        size = done.stdout.strip()
        return int(size) if done.returncode == 0 and size.isdigit() else None

    def kill_all(self, task_id: str, attempt: int) -> list[str]:
        filters = [arg for key, value in attempt_labels(task_id, attempt).items()
                   for arg in ("--filter", f"label={key}={value}")]
        ids = self._call("ps", "-aq", *filters).stdout.split()
        if ids:
            self._call("rm", "-f", *ids, check=False)
        return ids

    def _call(self, *args: str, check: bool = True, timeout: float = _COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        """Run one client command; RuntimeUnavailable when the engine cannot be reached,
        CalledProcessError (with stderr) for any other failure when `check`."""
        command = [PROGRAM, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise RuntimeUnavailable(_not_installed()) from None
        except subprocess.TimeoutExpired:
            raise RuntimeUnavailable(f"`{PROGRAM} {args[0]}` did not finish within {timeout:g} s") from None
        if done.returncode != 0 and _engine_unreachable(done.stderr):
            raise RuntimeUnavailable(_last_line(done.stderr))
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
        return done


class _ClientRun(RunningContainer):
    """A `podman run` client process; the container lives as long as it does."""

    def __init__(self, runtime: PodmanRuntime, name: str, process: subprocess.Popen, stderr_path: Path,
                 env_file: Path | None):
        self._runtime, self._name, self._process, self._stderr_path = runtime, name, process, stderr_path
        self._env_file = env_file

    def wait(self, timeout: float) -> int | None:
        try:
            exit_code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        _remove(self._env_file)
        with open(self._stderr_path, "rb") as stderr:
            failure = start_failure(exit_code, stderr.read(_START_FAILURE_BYTES).decode(errors="replace"))
        if failure:
            raise ContainerNotStarted(failure)
        return exit_code

    def written_bytes(self) -> int | None:
        return self._runtime.written_bytes(self._name)

    def kill(self) -> int:
        """Kill the container, then wait for its client."""
        try:
            return self._stop()
        finally:
            _remove(self._env_file)

    def _stop(self) -> int:
        """Asked again if the client lives on: a container still being created when first asked
        did not exist yet."""
        for _ in range(_KILL_ATTEMPTS):
            try:
                self._runtime.kill(self._name)
            except RuntimeUnavailable:
                break
            try:
                return self._process.wait(timeout=_KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        self._process.kill()  # the client; a container left behind goes with the job's kill_all
        return self._process.wait()


def _fits_env_file(key: str, value: str) -> bool:
    return bool(_ENV_FILE_NAME.fullmatch(key)) and "\n" not in value and "\r" not in value


def _write_env_file(env: dict[str, str]) -> Path | None:
    """The variables an env file can hold, in a new file only its owner reads (mkstemp's 0600),
    removed once the client is done; None if there are none."""
    lines = [f"{key}={value}\n" for key, value in env.items() if _fits_env_file(key, value)]
    if not lines:
        return None
    fd, path = tempfile.mkstemp(prefix="tes-cts-env-")
    with os.fdopen(fd, "w") as handle:
        handle.writelines(lines)
    return Path(path)


def _remove(path: Path | None) -> None:
    if path is not None:
        with suppress(FileNotFoundError):
            path.unlink()


def _not_installed() -> str:
    return f"the {PROGRAM} client is not installed (not found on PATH)"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
