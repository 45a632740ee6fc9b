"""Start `tes-cts serve` as a real process on a free port and wait until it answers.

`LiveServer` is one process; `LiveServers` (the `live_servers` fixture of conftest) starts them for
a test module with the tests' defaults and stops every one it started when the module ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

TES_CTS = str(Path(sys.executable).parent / "tes-cts")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> None:
    """Signal a process's whole group (it leads its own session) and wait; SIGKILL whatever is
    still there after `timeout`, so nothing outlives a test or a benchmark."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
        except ProcessLookupError:
            pass


class LiveServer:
    """`tes-cts serve [args]` in `cwd` with `env` over none of the caller's TES_CTS_* variables,
    on `port` (a free one unless given); its output goes to `serve-<port>.log` in `cwd`.

    `bind=False` leaves out `--bind`: serve then listens where its settings say (for instance
    TES_CTS_SERVER__BIND in `env`), which must be 127.0.0.1:`port`."""

    def __init__(self, cwd: Path, args: list[str] = (), env: dict | None = None, port: int | None = None, *,
                 bind: bool = True):
        self.cwd = cwd
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tasks = f"{self.url}/ga4gh/tes/v1/tasks"
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("TES_CTS_")}
        clean_env.update(env or {})
        self.log = open(cwd / f"serve-{self.port}.log", "ab")
        bind_args = ["--bind", f"127.0.0.1:{self.port}"] if bind else []
        self.process = subprocess.Popen(
            [TES_CTS, "serve", *bind_args, *args],
            cwd=cwd, env=clean_env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30) -> "LiveServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tes-cts serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/ga4gh/tes/v1/service-info", timeout=5).ok:
                    return self
            except requests.RequestException:  # not listening yet, or workers still booting
                pass
            time.sleep(0.1)
        raise TimeoutError(f"tes-cts serve did not answer within {timeout}s")

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signal the whole process group: gunicorn's master and its workers."""
        stop_process_group(self.process, sig)
        self.log.close()

    def log_text(self) -> str:
        """What the server has written so far."""
        self.log.flush()
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")

    def __enter__(self):
        return self.wait_ready()

    def __exit__(self, *exc):
        self.kill(signal.SIGTERM)


class LiveServers:
    """Starts live servers for one test module; `stop_all()` (at the module's end) stops each one
    still running. A server is stopped sooner by `with live_servers.start(...) as server:`."""

    def __init__(self, tmp_path_factory):
        self._tmp_path_factory = tmp_path_factory
        self._started: list[LiveServer] = []

    def start(self, env: dict[str, str | None] | None = None, *, args: list[str] = (), workers: int | None = 2,
              poller: bool = False, cwd: Path | None = None, port: int | None = None,
              bind: bool = True) -> LiveServer:
        """A server that answers: `tes-cts serve --workers <workers> [args]` (no `--workers` for
        None: the settings' count) in `cwd` (a new directory unless given), its work dir
        `cwd/work` and, unless `poller`, no embedded poller. `env` is laid over those settings;
        a variable it sets to None is left unset (serve's own default then holds)."""
        cwd = cwd or self._tmp_path_factory.mktemp("serve")
        defaults = {"TES_CTS_WORK_DIR": str(cwd / "work"), "TES_CTS_POLLER__EMBEDDED": None if poller else "false"}
        merged = {**defaults, **(env or {})}
        workers_args = ["--workers", str(workers)] if workers is not None else []
        server = LiveServer(cwd, [*workers_args, *args], {k: v for k, v in merged.items() if v is not None},
                            port, bind=bind)
        self._started.append(server)
        return server.wait_ready()

    def stop_all(self) -> None:
        for server in self._started:
            server.kill(signal.SIGTERM)
        self._started.clear()
