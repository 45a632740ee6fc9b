"""`python -m tes_cts.worker.launcher`: the local backend's worker launcher. It imports the worker's
modules once and forks one worker per attempt, so that no attempt pays for Python's start-up and
imports.

The local backend starts it at its first submit, with the environment the workers need (the S3
secrets among it, never written to disk), and talks to it over its stdin and stdout, one JSON
object a line, one reply per request, in order:

    request  {"job_file": ..., "run_dir": ..., "log": ..., "argv": [...]}   (LaunchRequest)
    reply    {"pid": N, "start_ticks": T}  or  {"error": "why no worker was started"}

Each worker leads a session of its own (it outlives the launcher, the poller and serve, whichever
is killed), reads /dev/null, appends stdout and stderr to `log`, runs in `run_dir`, and keeps
nothing of the launcher's: default signal handling and mask, no descriptor above 2. It runs the
built-in worker (`run.work(job_file)`), or, given an `argv`, executes that program with the job
file appended. The launcher reaps the workers that end, and exits when its stdin closes (the
poller stopped or died), leaving the running workers alone.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

# The docker runtime is loaded only once a job chooses it (it imports the Docker SDK): the launcher
# pays for it once, not each worker.
from . import engine_api  # noqa: F401
from .run import work

_READ_BYTES = 65536
_COULD_NOT_RUN = 127                       # as a shell says of a program it cannot run


@dataclass(frozen=True)
class LaunchRequest:
    job_file: str
    run_dir: str
    log: str                                   # the worker's stdout and stderr, appended
    argv: tuple[str, ...] = ()                 # a program to run instead of the built-in worker

    def line(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> LaunchRequest:
        fields = json.loads(line)
        return cls(job_file=str(fields["job_file"]), run_dir=str(fields["run_dir"]), log=str(fields["log"]),
                   argv=tuple(str(word) for word in fields.get("argv") or ()))


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]; None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def start_ticks(pid: int) -> int:
    """When the process started (field 22 of /proc/PID/stat), which tells it from a later
    process given the same pid; 0 if it is gone."""
    stat = proc_stat(pid)
    return int(stat[19]) if stat else 0


def serve(requests_fd: int = 0, replies_fd: int = 1) -> None:
    """Answer requests until the backend closes its end."""
    children_ended = _wakeup_on_sigchld()
    events = select.poll()
    events.register(requests_fd, select.POLLIN)
    events.register(children_ended, select.POLLIN)
    pending = b""
    while True:
        ready = {fd for fd, _ in events.poll()}
        if children_ended in ready:
            _drain(children_ended)
            _reap_children()
        if requests_fd in ready:
            chunk = os.read(requests_fd, _READ_BYTES)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                os.write(replies_fd, _answer(line))


def _wakeup_on_sigchld() -> int:
    """A descriptor that turns readable when a child ends. The children are reaped by the loop,
    never by the handler, so none is reaped before its start time is read."""
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the signal reaches the wakeup fd
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    return read_end


def _drain(fd: int) -> None:
    try:
        while os.read(fd, _READ_BYTES):
            pass
    except BlockingIOError:
        pass


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _answer(line: bytes) -> bytes:
    try:
        reply = _launch(LaunchRequest.from_line(line))
    except Exception as exc:  # a bad request, or no fork possible now: the backend says why
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    return (json.dumps(reply) + "\n").encode()


def _launch(request: LaunchRequest) -> dict:
    # The child starts with SIGCHLD blocked and unblocks it once the launcher's handling is undone.
    with _sigchld_blocked():
        pid = os.fork()
        if pid == 0:
            _become_worker(request)
        return {"pid": pid, "start_ticks": start_ticks(pid)}


@contextmanager
def _sigchld_blocked():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def _become_worker(request: LaunchRequest) -> NoReturn:
    """The forked child: never returns into the launcher's loop."""
    code = _COULD_NOT_RUN
    try:
        _detach(request)
        if request.argv:
            _exec(request.argv, request.job_file)
        Path("/proc/self/comm").write_text("tes-cts worker")  # what ps and top show, not the launcher's name
        code = work(request.job_file)
    except BaseException:
        traceback.print_exc()
    finally:
        _leave(code)


def _leave(code: int) -> NoReturn:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _detach(request: LaunchRequest) -> None:
    os.setsid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    stdin = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(stdin, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.chdir(request.run_dir)


def _exec(argv: tuple[str, ...], job_file: str) -> NoReturn:
    # As Popen does: Python ignores these for itself, and a program it starts expects the default.
    for number in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(number, signal.SIG_DFL)
    os.execvpe(argv[0], [*argv, job_file], os.environ)


def main() -> int:
    # Everything imported so far is left alone by the garbage collector from now on, so that a
    # forked worker does not copy the pages of objects it never changes when a collection runs.
    gc.freeze()
    try:
        serve()
    except BrokenPipeError:  # the backend went away before its reply
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
