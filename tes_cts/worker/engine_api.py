"""The docker runtime: the Docker Engine API over its socket (docker-py), no client process.

The engine is the one DOCKER_HOST names (unix:///var/run/docker.sock when it is unset), with TLS
as DOCKER_TLS_VERIFY and DOCKER_CERT_PATH say; docker CLI contexts are not read. Podman serves
this API too while `podman system service` runs: point DOCKER_HOST at that service's socket and
use this runtime. `containers.extra_args` are command line arguments, refused with it at start-up.

A container is attached before it starts, so none of its output is lost. A thread then copies
each frame of its stdout and stderr into the log files as it arrives, reads its exit code when
the stream ends, and removes it (not auto-remove, which would race with the end of the logs).
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import requests
from docker.types import Mount as BindMount
from docker.utils.socket import STDERR, STDOUT, frames_iter

import docker

from ..causes import causes
from .runtime import (
    ContainerNotStarted,
    ContainerRuntime,
    ContainerSpec,
    ImageUnavailable,
    RunningContainer,
    RuntimeUnavailable,
    attempt_labels,
    memory_mib,
)

_DEFAULT_HOST = "unix:///var/run/docker.sock"
_CALL_TIMEOUT_S = 60.0                     # every call but a pull and the wait for an exit
_STOP_TIMEOUT_S = 10.0                     # from a kill to the exit code
_STDIN_CHUNK_BYTES = 64 * 1024
# What the engine records as the exit code of a container whose program it could not execute
# (not found, not executable): the executor's failure, as `docker run` reports it, not the engine's.
_PROGRAM_NOT_EXECUTED = (126, 127)


class DockerEngineRuntime(ContainerRuntime):
    def __init__(self, settings):
        super().__init__(settings)
        self._client_options = docker.utils.kwargs_from_env()
        host = os.environ.get("DOCKER_HOST")
        self._address = f"{host} (DOCKER_HOST)" if host else f"{_DEFAULT_HOST} (DOCKER_HOST is not set)"
        self._client: docker.APIClient | None = None

    def engine_problem(self) -> str | None:
        try:
            with self._engine() as api:
                api.ping()
        except RuntimeUnavailable as exc:
            return str(exc)
        except docker.errors.APIError as exc:
            return f"the Docker engine at {self._address} is not ready: {_explain(exc)}"
        return None

    def image_present(self, image: str) -> bool:
        with self._engine() as api:
            try:
                api.inspect_image(image)
            except docker.errors.APIError:  # absent, or not a valid reference: a pull will say which
                return False
        return True

    def pull(self, image: str, timeout: float) -> None:
        # docker-py's pull has no time limit: it runs in a thread this call stops waiting for at
        # the limit (the engine finishes or drops it; the thread ends with the worker).
        failures: list[Exception] = []
        puller = threading.Thread(target=self._pull, args=(image, failures), daemon=True)
        puller.start()
        puller.join(timeout)
        if puller.is_alive():
            raise ImageUnavailable(f"the pull did not finish within {timeout:g} s")
        if failures:
            raise failures[0]

    def _pull(self, image: str, failures: list[Exception]) -> None:
        try:
            with self._engine() as api:
                # docker-py splits `name:tag` and `name@sha256:...`, and asks for `latest` without either.
                for progress in api.pull(image, stream=True, decode=True):
                    if "error" in progress:
                        raise ImageUnavailable(progress["error"])
        except docker.errors.APIError as exc:
            failures.append(ImageUnavailable(_explain(exc)))
        except Exception as exc:  # raised again by pull: an exception would end this thread unseen
            failures.append(exc)

    def start(self, spec: ContainerSpec, stdout: BinaryIO, stderr: BinaryIO) -> RunningContainer:
        try:
            with self._engine() as api:
                container_id = self._create(api, spec)
                stream = api.attach_socket(container_id, params={
                    "stdin": int(spec.stdin is not None), "stdout": 1, "stderr": 1, "stream": 1})
                try:
                    api.start(container_id)
                except docker.errors.APIError as refusal:
                    _close(stream)
                    return self._refused_start(api, container_id, refusal, stderr)
        except RuntimeUnavailable as exc:
            raise ContainerNotStarted(str(exc)) from None
        except docker.errors.APIError as exc:
            raise ContainerNotStarted(_explain(exc)) from None
        return _AttachedContainer(self, container_id, stream, spec.stdin, stdout, stderr)

    def _create(self, api: docker.APIClient, spec: ContainerSpec) -> str:
        host_config = api.create_host_config(
            mounts=[BindMount(mount.container, str(mount.host), type="bind") for mount in spec.mounts],
            network_mode=self.settings.network,
            security_opt=["no-new-privileges"] if self.settings.no_new_privileges else None,
            cap_drop=list(self.settings.cap_drop) or None,
            nano_cpus=spec.cpu_cores * 10**9 if spec.cpu_cores else None,
            mem_limit=memory_mib(spec.ram_gb) * 2**20 if spec.ram_gb else None,
        )
        created = api.create_container(
            spec.image, list(spec.command), name=spec.name, labels=spec.labels, working_dir=spec.workdir,
            environment=[f"{key}={value}" for key, value in spec.env.items()],
            stdin_open=spec.stdin is not None, host_config=host_config,
        )
        return created["Id"]

    def _refused_start(self, api: docker.APIClient, container_id: str, refusal: docker.errors.APIError,
                       stderr: BinaryIO) -> RunningContainer:
        """A start the engine refused; the container is removed. If the engine could not execute
        the program, it ended with the exit code the engine gave it (the message on stderr), else
        ContainerNotStarted."""
        exit_code = api.inspect_container(container_id)["State"]["ExitCode"]
        _remove(api, container_id)
        if exit_code not in _PROGRAM_NOT_EXECUTED:
            raise ContainerNotStarted(_explain(refusal))
        stderr.write(f"{_explain(refusal)}\n".encode())
        stderr.flush()
        return _Ended(exit_code)

    def exit_code_then_remove(self, container_id: str) -> int:
        """Wait as long as the container runs; its exit code, once it is removed."""
        with self._engine() as api:
            try:
                exit_code = api.wait(container_id, timeout=None)["StatusCode"]
            except docker.errors.APIError as exc:
                raise RuntimeUnavailable(f"the Docker engine lost container {container_id[:12]}: {_explain(exc)}") from None
            _remove(api, container_id)
        return exit_code

    def written_bytes(self, container_id: str) -> int | None:
        """The size of the container's writable layer, which the engine computes when asked."""
        try:
            with self._engine() as api:
                found = api.containers(all=True, filters={"id": container_id}, size=True)
        except (RuntimeUnavailable, docker.errors.APIError):
            return None
        return found[0].get("SizeRw") if found else None

    def kill(self, name: str) -> None:
        with self._engine() as api:
            try:
                api.kill(name)
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):  # not there, not running
                    raise RuntimeUnavailable(f"the Docker engine could not kill {name}: {_explain(exc)}") from None

    def kill_all(self, task_id: str, attempt: int) -> list[str]:
        labels = [f"{key}={value}" for key, value in attempt_labels(task_id, attempt).items()]
        with self._engine() as api:
            ids = [container["Id"] for container in api.containers(all=True, filters={"label": labels})]
            for container_id in ids:
                _remove(api, container_id, force=True)
        return ids

    @contextmanager
    def _engine(self) -> Iterator[docker.APIClient]:
        """The client, for calls that raise RuntimeUnavailable if the engine cannot be reached
        (its own answers stay docker.errors.APIError)."""
        try:
            yield self._api()
        except docker.errors.APIError:
            raise
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(exc) from None

    def _api(self) -> docker.APIClient:
        """Built at first use, when the API version is agreed with the engine, then kept."""
        if self._client is None:
            try:
                self._client = _client_of_agreed_version(self._client_options)
            except docker.errors.DockerException as exc:
                raise self._unreachable(exc) from None
        return self._client

    def _unreachable(self, exc: Exception) -> RuntimeUnavailable:
        if isinstance(exc, requests.exceptions.Timeout):
            return RuntimeUnavailable(f"the Docker engine at {self._address} did not answer within {_CALL_TIMEOUT_S:g} s")
        return RuntimeUnavailable(f"Cannot connect to the Docker engine at {self._address}: {_root_cause(exc)}")


class _AttachedContainer(RunningContainer):
    """A started container, followed by a thread: its output into the log files until the
    stream ends, then its exit code, then its removal."""

    def __init__(self, runtime: DockerEngineRuntime, container_id: str, stream, stdin: Path | None,
                 stdout: BinaryIO, stderr: BinaryIO):
        self._runtime, self._id = runtime, container_id
        self._exit_code: int | None = None
        self._failure: Exception | None = None
        self._lost_output: str | None = None
        if stdin is not None:  # before the follower, which closes the stream once the container ended
            threading.Thread(target=_feed, args=(_socket_of(stream), stdin), daemon=True).start()
        self._follower = threading.Thread(target=self._follow, args=(stream, {STDOUT: stdout, STDERR: stderr}),
                                          daemon=True)
        self._follower.start()

    def wait(self, timeout: float) -> int | None:
        self._follower.join(timeout)
        if self._follower.is_alive():
            return None
        if self._failure is not None:
            raise self._failure
        return self._exit_code

    def kill(self) -> int:
        self._runtime.kill(self._id)
        exit_code = self.wait(_STOP_TIMEOUT_S)
        if exit_code is None:
            raise RuntimeUnavailable(f"the Docker engine did not stop container {self._id[:12]} "
                                     f"within {_STOP_TIMEOUT_S:g} s of a kill")
        return exit_code

    def written_bytes(self) -> int | None:
        return self._runtime.written_bytes(self._id)

    def lost_output(self) -> str | None:
        return self._lost_output

    def _follow(self, stream, logs: dict[int, BinaryIO]) -> None:
        try:
            self._lost_output = _copy_frames(stream, logs)
            self._exit_code = self._runtime.exit_code_then_remove(self._id)
        except Exception as exc:  # raised again by wait: an exception would end this thread unseen
            self._failure = exc
        finally:
            _close(stream)


class _Ended(RunningContainer):
    """A container that ended before its program began."""

    def __init__(self, exit_code: int):
        self._exit_code = exit_code

    def wait(self, timeout: float) -> int:
        return self._exit_code

    def kill(self) -> int:
        return self._exit_code


def _copy_frames(stream, logs: dict[int, BinaryIO]) -> str | None:
    """Each frame of the attach stream into its log as it arrives, until the stream ends (the
    container exited) or breaks (the engine went away, which the wait for the exit code tells).
    Once a log cannot be written (a full disk), the frames are still read, and dropped: a
    container whose output nobody reads would block on its next write. Returns why output was
    dropped, or None."""
    lost = None
    try:
        for stream_id, data in frames_iter(stream, tty=False):
            if lost is None:
                try:
                    logs[stream_id].write(data)
                    logs[stream_id].flush()
                except OSError as exc:
                    lost = (f"the rest of the container's {'stdout' if stream_id == STDOUT else 'stderr'} "
                            f"could not be logged: {exc.strerror or exc}")
    except OSError:
        pass
    return lost


def _feed(connection: socket.socket, path: Path) -> None:
    """The file's bytes to the container's stdin, then EOF. A container that exits without
    reading them all breaks the connection: the rest is dropped, as a pipe would drop it."""
    try:
        connection.settimeout(None)  # a program may read its stdin long after it starts
        with open(path, "rb") as source:
            while chunk := source.read(_STDIN_CHUNK_BYTES):
                connection.sendall(chunk)
        connection.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _socket_of(stream):
    """Over a plain connection docker-py hands back a socket.SocketIO, which cannot half-close:
    the socket under it can."""
    return getattr(stream, "_sock", stream)


def _client_of_agreed_version(options: dict) -> docker.APIClient:
    """A client of the API version the engine names in the Api-Version header of its /_ping.
    docker-py's own "auto" reads /version instead, for which the engine first asks containerd and
    runc theirs: 7-10 ms of every worker's start."""
    probe = _client(docker.constants.MINIMUM_DOCKER_API_VERSION, options)
    answer = probe._get(probe._url("/_ping", versioned_api=False))
    probe._raise_for_status(answer)
    probe.close()
    return _client(answer.headers.get("Api-Version") or "auto", options)


def _client(version: str, options: dict) -> docker.APIClient:
    client = docker.APIClient(version=version, timeout=_CALL_TIMEOUT_S, **options)
    # No proxy variables or ~/.netrc for the engine's own socket: requests reads them on every
    # call, a third of a call's CPU.
    client.trust_env = False
    return client


def _close(stream) -> None:
    connection = _socket_of(stream)  # closing a SocketIO forgets its socket, which stays open
    stream.close()
    connection.close()


def _remove(api: docker.APIClient, container_id: str, force: bool = False) -> None:
    try:
        api.remove_container(container_id, v=True, force=force)  # v: its anonymous volumes, as `run --rm`
    except docker.errors.APIError:
        pass  # gone already, or being removed; anything left goes with the attempt's kill_all


def _explain(exc: docker.errors.APIError) -> str:
    """The engine's own message."""
    return exc.explanation or str(exc)


def _root_cause(exc: BaseException) -> str:
    """The system error under a connection failure ("No such file or directory", "Connection
    refused", "Permission denied"), else the failure's own text."""
    return next((cause.strerror for cause in causes(exc) if isinstance(cause, OSError) and cause.strerror), str(exc))
