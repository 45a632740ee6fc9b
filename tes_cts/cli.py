"""`tes-cts` command line: `serve` runs the API, `worker` runs one job."""

from __future__ import annotations

import argparse
import sys

from .settings import SettingsError, load_settings
from .store import open_store
from .store.base import StoreUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tes-cts", description="GA4GH TES v1.1 server (CTS-style jobs)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the TES API under gunicorn")
    serve.add_argument("--bind", help="HOST:PORT to listen on (setting server.bind)")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes (setting server.workers)")
    worker = commands.add_parser("worker", help="run one job and write its result.json (every backend starts this)")
    worker.add_argument("job_file", metavar="JOB_FILE", help="the job.json in the attempt's run directory")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve(args)
    if args.command == "worker":
        from .worker.run import work

        return work(args.job_file)
    return 2


def _serve(args) -> int:
    overrides = {}
    if args.bind:
        overrides["server.bind"] = args.bind
    if args.workers is not None:
        overrides["server.workers"] = args.workers
    try:
        settings = load_settings(overrides)
        # Open the store once before forking workers: a bad store setting fails here, once,
        # with its message, and the schema exists before several workers race to create it.
        open_store(settings).close()
    except (SettingsError, StoreUnavailable) as exc:
        print(f"tes-cts: {exc}", file=sys.stderr)
        return 2
    from .server import GunicornServer

    GunicornServer(overrides).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
