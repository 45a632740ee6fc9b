"""Start `tes-cts serve` as a real process on a free port and wait until it answers."""

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
    def __init__(self, cwd: Path, args: list[str] = (), env: dict | None = None, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("TES_CTS_")}
        clean_env.update(env or {})
        self.log = open(cwd / f"serve-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [TES_CTS, "serve", "--bind", f"127.0.0.1:{self.port}", *args],
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

    def __enter__(self):
        return self.wait_ready()

    def __exit__(self, *exc):
        self.kill(signal.SIGTERM)
