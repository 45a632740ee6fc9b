# PYTHON_ARGCOMPLETE_OK
"""`tes-cts` command line: `serve` runs the API (and one poller), `poller` the reconciler alone,
`worker` runs one job, `hash-password` makes the secrets of auth.basic.users and auth.bearer.tokens;
`task`, `run` and `storage` are the client's verbs, for people (`tes_cts.client`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading

from .client import run_cmd, storage_cmd, task_cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tes-cts", description="GA4GH TES v1.1 server (CTS-style jobs)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the TES API under gunicorn")
    serve.add_argument("--bind", help="HOST:PORT to listen on (setting server.bind)")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes (setting server.workers)")
    worker = commands.add_parser("worker", help="run one job and write its result.json (every backend starts this)")
    worker.add_argument("job_file", metavar="JOB_FILE", help="the job.json in the attempt's run directory")
    poller = commands.add_parser("poller", help="run the reconciling poller (serve starts one itself)")
    poller.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    hashing = commands.add_parser("hash-password", help="read a password from stdin and print its hash for "
                                  "auth.basic.users (with --token: a token's digest for auth.bearer.tokens)")
    hashing.add_argument("--token", action="store_true", help="digest a static bearer token instead")
    for verbs in (task_cmd, run_cmd, storage_cmd):
        verbs.register(commands)
    if "_ARGCOMPLETE" in os.environ:  # shell completion: `eval "$(register-python-argcomplete tes-cts)"`
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is not None:
        return args.handler(args)

    if args.command == "serve":
        return _serve(args)
    if args.command == "poller":
        return _poller(args)
    if args.command == "hash-password":
        return _hash_password(args.token)
    if args.command == "worker":
        from .worker.run import work

        return work(args.job_file)
    return 2


def _hash_password(token: bool) -> int:
    from getpass import getpass

    from .auth.hashing import hash_password, token_digest

    what = "token" if token else "password"
    # Only the line end is dropped: spaces may belong to the secret.
    secret = getpass(f"{what}: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    if not secret:
        print(f"tes-cts: no {what} on stdin", file=sys.stderr)
        return 2
    print(token_digest(secret) if token else hash_password(secret))
    return 0


def _serve(args) -> int:
    overrides = {}
    if args.bind:
        overrides["server.bind"] = args.bind
    if args.workers is not None:
        overrides["server.workers"] = args.workers
    from .wiring import STARTUP_ERRORS, check_storage, load_checked_settings, open_database

    try:
        settings = load_checked_settings(overrides)
        # Open the database once before forking workers: a bad database setting fails here,
        # once, with its message, and the schema exists before several workers race to create it.
        open_database(settings).close()
        check_storage(settings)  # a wrong S3 endpoint or credential stops here, said once
    except STARTUP_ERRORS as exc:
        print(f"tes-cts: {exc}", file=sys.stderr)
        return 2
    from .server import BindError, GunicornServer, check_bind

    try:
        check_bind(settings.server.bind)
    except BindError as exc:
        print(f"tes-cts: {exc}", file=sys.stderr)
        return 2
    if settings.metrics.enabled:  # before the poller starts and the workers fork: they count there too
        from .metrics.process import share_across_processes

        share_across_processes(settings.work_dir, fresh=True)
    poller = EmbeddedPoller() if settings.poller.embedded else None
    try:
        GunicornServer(overrides).run()
    finally:
        if poller is not None:
            poller.stop()
    return 0


class EmbeddedPoller:
    """Exactly one poller for `serve`, whatever the number of gunicorn workers: a child of the
    master, restarted if it dies, that exits by itself when the master is gone."""

    RESTART_DELAY_S = 1.0

    def __init__(self):
        self._stopping = threading.Event()
        self._process = self._start()
        threading.Thread(target=self._supervise, name="poller-supervisor", daemon=True).start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tes_cts.cli", "poller", "--exit-with-parent", str(os.getpid())],
            stdin=subprocess.DEVNULL,
        )

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            code = self._process.wait()
            if self._stopping.wait(self.RESTART_DELAY_S):
                return
            print(f"tes-cts: the poller exited with {code}; starting it again", file=sys.stderr)
            self._process = self._start()

    def stop(self) -> None:
        self._stopping.set()
        if self._process.poll() is None:
            self._process.terminate()


def _poller(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .wiring import STARTUP_ERRORS, build_poller, build_webhook_senders, check_storage, load_checked_settings, open_database

    try:
        settings = load_checked_settings()
        check_storage(settings)  # the same start-up checks as serve: bad settings stop it here
        if settings.metrics.enabled:  # where serve's /metrics reads them (serve's own poller: already set)
            from .metrics.process import share_across_processes

            share_across_processes(settings.work_dir, fresh=False)
        database = open_database(settings)
        poller = build_poller(settings, database)
        senders = build_webhook_senders(settings, database)
    except STARTUP_ERRORS as exc:
        print(f"tes-cts: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_with_parent:
        threading.Thread(target=_stop_when_orphaned, args=(args.exit_with_parent, stop), daemon=True).start()
    # Webhooks go out apart from the cycle: a receiver that is down never slows the poller.
    threads = [threading.Thread(target=sender.run, args=(stop,), name=f"webhook-{index}")
               for index, sender in enumerate(senders)]
    for thread in threads:
        thread.start()
    try:
        poller.run(stop)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        database.close()
    return 0


def _stop_when_orphaned(parent_pid: int, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        if os.getppid() != parent_pid:
            logging.getLogger("tes_cts.poller").info("serve (pid %d) is gone: stopping", parent_pid)
            stop.set()


if __name__ == "__main__":
    sys.exit(main())
