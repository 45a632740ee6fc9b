"""How much big requests slow the small ones: service-info latency while big POSTs run.

    .venv/bin/python benchmarks/request_stall.py                  # defaults: about a minute on 2 cores
    .venv/bin/python benchmarks/request_stall.py --requests 500 --rounds 5

What it does, in one run:
1. starts `tes-cts serve` on its defaults (one worker unless --workers; no embedded poller,
   which would only try to run the stored tasks) in a temporary work dir, on a free loopback port;
2. builds two bodies from the default limits, read from the settings as serve reads them: the
   largest valid task (tasks.max_executors executors, each with a long command, filling
   server.max_body_bytes) and a body of the same size that is wrong in every executor;
3. --rounds times, in turn:
   - idle: --requests `GET /service-info` one after another from one thread on one keep-alive
     connection, after a warm-up: the baseline;
   - for each body: --posters threads POST it in a loop, each on its own connection; once every
     poster has its first answer, the same GET sequence again; then the posters stop. The valid
     body must be answered 200, the invalid one 400 naming its fields;
4. prints p50/p90/p99 of each row's GETs (all rounds together) and their ratio to idle, the big
   POSTs' own latency, the in-process cost of the big body's steps (JSON decoding, validation,
   the store's two JSON encodings: each but validation one C call that holds the GIL
   throughout), and the load average;
5. stops the server (its whole process group) and removes the work dir, whatever happens.

The client threads share the 2 cores with the server; only ratios of the same run mean something.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout: tes_cts and tests/ are importable

from benchmarks.tables import table  # noqa: E402
from tes_cts import __version__  # noqa: E402
from tes_cts.model.views import View, view_json  # noqa: E402
from tes_cts.tasks.validation import TaskValidationError, validate_task  # noqa: E402
from tests import big_tasks  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402

API = "/ga4gh/tes/v1"
SERVICE_INFO = f"{API}/service-info"
WARMUP = 20


class Interrupted(Exception):
    pass


def _interrupt(*_):
    raise Interrupted("interrupted by SIGTERM")


# --- the big bodies ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_executors: int
    validation: object  # tes_cts.tasks.validation.ValidationLimits as serve builds it


def default_limits(scratch: Path) -> Limits:
    """The limits `tes-cts serve` applies in `scratch` with no TES_CTS_* variable (LiveServer passes none)."""
    from tes_cts.backends import supported_backend_parameters
    from tes_cts.wiring import _validation_limits, load_checked_settings

    saved_env = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("TES_CTS_")}
    saved_cwd = os.getcwd()
    try:
        os.chdir(scratch)
        settings = load_checked_settings()
        return Limits(settings.server.max_body_bytes, settings.tasks.max_executors,
                      _validation_limits(settings, supported_backend_parameters(settings.backend.kind)))
    finally:
        os.chdir(saved_cwd)
        os.environ.update(saved_env)


def big_body(limits: Limits, wrong: bool) -> bytes:
    """The task of `limits.max_executors` executors as big as the server takes (`wrong`: as big,
    and refused), as the bytes a client sends; checked to be accepted (refused) as meant."""
    body = big_tasks.big_body(limits.max_body_bytes, limits.max_executors, wrong=wrong)
    check_body(body, limits, wrong)
    return body


def check_body(body: bytes, limits: Limits, wrong: bool) -> None:
    try:
        validate_task(json.loads(body), limits.validation)
    except TaskValidationError:
        if not wrong:
            raise SystemExit("benchmark out of date: the server now refuses the big valid body") from None
        return
    if wrong:
        raise SystemExit("benchmark out of date: the server now accepts the big invalid body")


def step_costs(body: bytes, limits: Limits) -> list[tuple[str, float]]:
    """Seconds of each step of a create of `body`, in this process, one thread: the longest
    stretches one request holds the GIL for."""
    from tes_cts.model.record import TaskRecord
    from tes_cts.model.states import Phase

    started = time.perf_counter()
    parsed = json.loads(body)
    decoded = time.perf_counter()
    accepted = validate_task(parsed, limits.validation)
    validated = time.perf_counter()
    record = TaskRecord(id="x" * 26, owner="", created_us=0, phase=Phase.CREATED, task=accepted.task)
    view_json(record, View.BASIC)
    basic = time.perf_counter()
    json.dumps(record.to_document(), separators=(",", ":"))
    doc = time.perf_counter()
    return [("json.loads", decoded - started), ("validate_task", validated - decoded),
            ("the store: BASIC view as JSON", basic - validated), ("the store: record as JSON", doc - basic)]


# --- measuring -----------------------------------------------------------------------------------

def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def get_latencies(port: int, count: int) -> list[float]:
    """Seconds of each of `count` GET service-info, one after another on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies = []
    try:
        for n in range(WARMUP + count):
            started = time.perf_counter()
            conn.request("GET", SERVICE_INFO)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"service-info answered {response.status}")
            if n >= WARMUP:
                latencies.append(elapsed)
    finally:
        conn.close()
    return latencies


def under_load(port: int, count: int, body: bytes, expected: int, posters: int) -> tuple[list[float], list[float]]:
    """GET latencies while `posters` threads POST `body`, and the POSTs' own latencies."""
    workers = [big_tasks.Poster(port, body, expected) for _ in range(posters)]
    try:
        for worker in workers:
            worker.answered.wait()
        _raise_problem(workers)
        latencies = get_latencies(port, count)
    finally:
        for worker in workers:
            worker.stop()
    _raise_problem(workers)
    return latencies, [s for w in workers for s in w.latencies]


def _raise_problem(posters: list[big_tasks.Poster]) -> None:
    problems = [p.problem for p in posters if p.problem]
    if problems:
        raise RuntimeError(problems[0])


# --- report ------------------------------------------------------------------------------------

def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(rows: dict[str, tuple[list[float], list[float]]]) -> None:
    """`rows`: label -> (GET latencies, POST latencies); the first is the idle baseline."""
    idle = next(iter(rows.values()))[0]
    base = {pct: percentile(idle, pct) for pct in (50, 90, 99)}
    lines = []
    for label, (gets, posts) in rows.items():
        figures = {pct: percentile(gets, pct) for pct in (50, 90, 99)}
        lines.append([
            label, str(len(gets)), *(ms(figures[pct]) for pct in (50, 90, 99)),
            *(f"{figures[pct] / base[pct]:.1f}" for pct in (50, 90, 99)),
            str(len(posts)) if posts else "",
            ms(statistics.median(posts)) if posts else "", ms(max(posts)) if posts else "",
        ])
    header = ["server", "GETs", "p50 ms", "p90 ms", "p99 ms", "p50 / idle", "p90 / idle", "p99 / idle",
              "POSTs", "POST p50 ms", "POST max ms"]
    print(f"\nGET {SERVICE_INFO}, one after another from one thread\n")
    print(table(header, lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="measured GET service-info per row and round (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every row, for a shared machine's noise (default 3)")
    parser.add_argument("--posters", type=int, default=2, help="threads POSTing the big body (default 2)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the setting's, server.workers)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work dir (store, server log)")
    args = parser.parse_args(argv)
    if args.requests < 10 or args.posters < 1 or args.rounds < 1:
        parser.error("--requests must be at least 10, --posters and --rounds at least 1")

    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="tes-cts-stall-"))
    server = None
    try:
        limits = default_limits(scratch)
        valid, invalid = big_body(limits, wrong=False), big_body(limits, wrong=True)
        print("# tes-cts: small requests while big ones run\n")
        print(f"machine:               {os.cpu_count()} cores, Python {platform.python_version()}, tes-cts {__version__}")
        print(f"load average at start: {load_average()} (1, 5, 15 min; the machine is shared)")
        print(f"parameters:            --requests {args.requests} --rounds {args.rounds} --posters {args.posters}"
              + (f" --workers {args.workers}" if args.workers else " (server.workers: the default)"))
        print(f"valid body:            {len(valid):,} bytes: {limits.max_executors} executors, "
              f"server.max_body_bytes {limits.max_body_bytes:,}")
        print(f"invalid body:          {len(invalid):,} bytes: every executor without image, half its "
              "arguments numbers, a relative workdir")

        env = {
            "TES_CTS_WORK_DIR": str(scratch / "work"), "TES_CTS_POLLER__EMBEDDED": "false",
            # serve runs the code of this checkout, as this script does
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
        server = LiveServer(scratch, ["--workers", str(args.workers)] if args.workers else [], env).wait_ready()
        print(f"server:                {server.url} (work dir {scratch / 'work'})", flush=True)

        posters = f"{args.posters} poster{'s' * (args.posters > 1)}"
        loads = {f"{posters}, largest valid task": (valid, 200), f"{posters}, invalid task of the same size": (invalid, 400)}
        rows: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in ["idle", *loads]}
        for turn in range(1, args.rounds + 1):
            print(f"round {turn} of {args.rounds}", flush=True)
            rows["idle"][0].extend(get_latencies(server.port, args.requests))
            for label, (body, expected) in loads.items():
                gets, posts = under_load(server.port, args.requests, body, expected, args.posters)
                rows[label][0].extend(gets)
                rows[label][1].extend(posts)
        report(rows)

        print("\nThe big valid body's steps, in this process, one thread. The JSON encodings are each one C call"
              "\nthat holds the GIL throughout; validate_task is Python, which lets a waiting thread in after"
              "\nthe switch interval (1 ms in serve); serve's decoding lets one in at the end of every object.\n")
        print(table(["step", "ms"], [[label, ms(s)] for label, s in step_costs(valid, limits)]))
        print(f"\nTotal time of this run: {time.perf_counter() - started:.0f} s; load average at the end: {load_average()}")
        return 0
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"\nrequest_stall.py: stopped ({exc or 'Ctrl-C'})", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        if server is not None:
            server.kill(signal.SIGTERM)
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
