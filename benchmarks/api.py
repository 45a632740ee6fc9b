"""Benchmark the tes-cts API against a do-nothing Connexion app served the same way.

    poetry run python benchmarks/api.py                 # defaults: ~2-3 minutes on 2 cores
    .venv/bin/python benchmarks/api.py --tasks 1000000 --prefill-batch 1000 --workers 2

What it does, in one run:
1. pre-fills a fresh SQLite store (in a temporary work dir) with --tasks realistic task records
   through SqliteTaskDatabase.insert, one transaction per task as the API does;
2. starts `tes-cts serve` on that store and the "framework floor" (benchmarks/floor_app.py: a bare
   Connexion 3 FlaskApp whose operations return a constant small JSON) with the same gunicorn
   worker class, worker count and access log, each on a free loopback port;
3. for every endpoint, warms both servers up, then sends the same fixed number of requests to
   ours and then to the floor from --concurrency threads with keep-alive connections, and prints
   throughput and p50/p99 latency for both with the ratio ours / floor;
4. prints in-process diagnostics (store and rendering times, SQLite query plans) that say where
   the time of our requests goes;
5. stops both servers (whole process groups) and removes the temporary directory, whatever
   happens.

Only ratios measured in the same run mean something; the absolute numbers depend on the machine,
and the client threads run on the same cores as the servers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # run from a checkout without installing

from tes_cts.clock import now_us, rfc3339  # noqa: E402
from tes_cts.database import sqlite as sqlite_store  # noqa: E402
from tes_cts.database.sqlite import SqliteTaskDatabase  # noqa: E402
from tes_cts.model.query import Cursor, TaskQuery  # noqa: E402
from tes_cts.model.record import TaskRecord, new_task_id
from tes_cts.model.states import Phase, TesState  # noqa: E402
from tes_cts.tasks.paging import encode_token  # noqa: E402
from tes_cts.tasks.validation import TaskValidationError, ValidationLimits, validate_task  # noqa: E402
from tes_cts.tasks.views import View, render_task  # noqa: E402
from tests.live_server import stop_process_group  # noqa: E402

BIN = Path(sys.executable).parent
API = "/ga4gh/tes/v1"
WORKER_CLASS = "uvicorn.workers.UvicornWorker"  # what tes_cts.server uses
PAGE = 256

# --- realistic task documents ----------------------------------------------------------------

PROJECTS = ("cancer-wgs", "rnaseq-atlas", "microbiome-16s", "cohort-exomes", "pilot-ont", "scrna-pbmc")
PIPELINES = (
    # name, first image, its command head, second image, its command
    ("align", "quay.io/biocontainers/bwa:0.7.17--h5bf99c6_8", ["bwa", "mem", "-t", "4"],
     "quay.io/biocontainers/samtools:1.19--h50ea8bc_0", ["samtools", "sort", "-@", "4", "-o", "/data/out/result.bam", "/data/work/aln.sam"]),
    ("quant", "quay.io/biocontainers/salmon:1.10.2--hecfa306_0", ["salmon", "quant", "-l", "A", "-p", "4"],
     "python:3.12-slim", ["python", "/data/in/summarize.py", "/data/work", "/data/out/result.tsv"]),
    ("qc", "quay.io/biocontainers/fastqc:0.12.1--hdfd78af_0", ["fastqc", "-t", "2", "-o", "/data/work"],
     "quay.io/biocontainers/multiqc:1.21--pyhdfd78af_0", ["multiqc", "-o", "/data/out", "/data/work"]),
    ("call", "broadinstitute/gatk:4.5.0.0", ["gatk", "HaplotypeCaller", "-R", "/data/ref/genome.fa"],
     "quay.io/biocontainers/bcftools:1.19--h8b25389_0", ["bcftools", "view", "-Oz", "-o", "/data/out/result.vcf.gz", "/data/work/calls.vcf"]),
)
# TES state mix of a busy server's history: mostly finished tasks, some queued and running.
PHASE_MIX = (
    (Phase.COMPLETE, 62), (Phase.EXECUTOR_ERROR, 6), (Phase.SYSTEM_ERROR, 2), (Phase.CANCELED, 3),
    (Phase.CREATED, 12), (Phase.PREFLIGHT, 2), (Phase.SUBMITTED, 2), (Phase.STAGING_IN, 2),
    (Phase.RUNNING, 8), (Phase.STAGING_OUT, 1),
)
# The phases a task went through to reach each phase (after created).
PATH_TO = {
    Phase.CREATED: [],
    Phase.PREFLIGHT: [Phase.PREFLIGHT],
    Phase.SUBMITTED: [Phase.PREFLIGHT, Phase.SUBMITTED],
    Phase.STAGING_IN: [Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN],
    Phase.RUNNING: [Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING],
    Phase.STAGING_OUT: [Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING, Phase.RUNNING, Phase.STAGING_OUT],
    Phase.COMPLETE: [Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING, Phase.RUNNING, Phase.STAGING_OUT, Phase.COMPLETE],
    Phase.EXECUTOR_ERROR: [Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING, Phase.RUNNING, Phase.STAGING_OUT, Phase.EXECUTOR_ERROR],
    Phase.SYSTEM_ERROR: [Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.SYSTEM_ERROR],
    Phase.CANCELED: [Phase.CANCELED],
}
LIMITS = ValidationLimits(content_max_bytes=128 * 1024, file_roots=(), supported_backend_parameters=frozenset())


def task_body(rng: random.Random, serial: int) -> dict:
    """A TES task as a client would submit it: 2 executors, 3-4 inputs, 2 outputs, 3-5 tags."""
    project = rng.choice(PROJECTS)
    step, image1, head1, image2, command2 = rng.choice(PIPELINES)
    sample = f"S{rng.randrange(20000):05d}"
    base = f"s3://lab-raw-{project}/{sample}"
    inputs = [
        {"name": "reads_1", "url": f"{base}/{sample}_R1.fastq.gz", "path": "/data/in/R1.fastq.gz", "type": "FILE"},
        {"name": "reads_2", "url": f"{base}/{sample}_R2.fastq.gz", "path": "/data/in/R2.fastq.gz", "type": "FILE"},
        {"name": "reference", "url": "s3://lab-references/GRCh38/genome.fa", "path": "/data/ref/genome.fa", "type": "FILE"},
    ]
    if rng.random() < 0.5:
        inputs.append({
            "name": "summarize.py", "path": "/data/in/summarize.py", "type": "FILE",
            "content": "import sys\nfrom pathlib import Path\nrows = sorted(Path(sys.argv[1]).glob('*.tsv'))\n"
                       "Path(sys.argv[2]).write_text(''.join(p.read_text() for p in rows))\n",
        })
    tags = {"project": project, "sample": sample, "pipeline": f"{step}-v{rng.randrange(1, 4)}", "user": f"user{rng.randrange(60):02d}"}
    if rng.random() < 0.3:
        tags["run"] = f"run-2026-{rng.randrange(1, 12):02d}-{rng.randrange(1, 29):02d}"
    if rng.random() < 0.1:
        tags["priority"] = "high"
    return {
        "name": f"{project}.{sample}.{step}.{serial}",
        "description": f"{step} for sample {sample} of project {project}",
        "inputs": inputs,
        "outputs": [
            {"name": "result", "url": f"s3://lab-results-{project}/{sample}/{step}/result", "path": "/data/out/result", "type": "FILE"},
            {"name": "reports", "url": f"s3://lab-results-{project}/{sample}/{step}/reports/", "path": "/data/out/reports", "type": "DIRECTORY"},
        ],
        "resources": {"cpu_cores": rng.choice((2, 4, 8)), "ram_gb": rng.choice((4.0, 8.0, 16.0, 32.0)),
                      "disk_gb": rng.choice((20.0, 50.0, 200.0)), "preemptible": rng.random() < 0.7},
        "executors": [
            {"image": image1, "command": [*head1, "/data/in/R1.fastq.gz", "/data/in/R2.fastq.gz"],
             "workdir": "/data/work", "stdout": "/data/work/aln.sam", "stderr": "/data/out/reports/step1.err",
             "env": {"OMP_NUM_THREADS": "4", "SAMPLE": sample}},
            {"image": image2, "command": command2, "stderr": "/data/out/reports/step2.err"},
        ],
        "volumes": ["/data/work"],
        "tags": tags,
    }


def task_record(rng: random.Random, serial: int, created_us: int, phase: Phase) -> TaskRecord:
    record = TaskRecord(id=new_task_id(), owner="", created_us=created_us, phase=Phase.CREATED,
                        task=task_body(rng, serial)).with_phase(Phase.CREATED, "task accepted", at_us=created_us)
    at = created_us
    for step in PATH_TO[phase]:
        at += rng.randrange(1_000_000, 600_000_000)
        record.phase = step
        record.history.append({"state": record.state.value, "phase": step.value, "time": rfc3339(at), "reason": f"moved to {step.value}"})
    if PATH_TO[phase] and phase not in (Phase.PREFLIGHT, Phase.SUBMITTED, Phase.CANCELED):
        record.logs = [attempt_log(rng, record, created_us, at, phase)]
    return record


def attempt_log(rng: random.Random, record: TaskRecord, start_us: int, end_us: int, phase: Phase) -> dict:
    """One tesTaskLog as the poller would write it after the attempt."""
    finished = phase in (Phase.COMPLETE, Phase.EXECUTOR_ERROR, Phase.STAGING_OUT)
    executors = []
    for index in range(2 if finished else 1):
        code = 1 if (phase is Phase.EXECUTOR_ERROR and index == 1) else 0
        executors.append({"start_time": rfc3339(start_us), "end_time": rfc3339(end_us), "exit_code": code,
                          "stdout": "", "stderr": "[M::process] read 400000 sequences (40000000 bp)...\n" * 3})
    log = {"logs": executors, "outputs": [], "metadata": {"host": f"node-{rng.randrange(64):02d}",
                                                         "backend_job_id": f"{rng.randrange(100000)}.0"},
           "start_time": rfc3339(start_us), "system_logs": [f"attempt 1 on node-{rng.randrange(64):02d}"]}
    if phase is Phase.COMPLETE:
        log["end_time"] = rfc3339(end_us)
        for output in record.task["outputs"]:
            path = output["path"] if output["type"] == "FILE" else output["path"] + "/multiqc.html"
            url = output["url"] if output["type"] == "FILE" else output["url"] + "multiqc.html"
            log["outputs"].append({"url": url, "path": path, "size_bytes": str(rng.randrange(10**3, 10**10))})
            log["metadata"][f"crc64nvme:{path}"] = f"{rng.getrandbits(64):016x}"
    if phase is Phase.SYSTEM_ERROR:
        log["system_logs"].append("input s3://lab-references/GRCh38/genome.fa changed since submission")
    return log


def check_documents(rng: random.Random) -> None:
    """The generated bodies are what validation accepts unchanged, so skipping it is honest."""
    for serial in range(200):
        body = task_body(rng, serial)
        try:
            accepted = validate_task(body, LIMITS)
        except TaskValidationError as exc:
            raise SystemExit(f"benchmark out of date: the server now rejects its task bodies: {exc}") from None
        if accepted.task != body or accepted.warnings:
            raise SystemExit(f"benchmark bug: generated task {serial} is not in normalized form")


# --- pre-fill ------------------------------------------------------------------------------


@dataclass
class Prefill:
    seconds: float  # in the store's insert code only
    wall_seconds: float  # with generating the records
    keys: list[tuple[int, str]]  # (created_us, id) of every stored task
    states: dict[str, int]


def prefill(path: Path, count: int, batch: int, seed: int) -> Prefill:
    rng = random.Random(seed)
    check_documents(random.Random(seed + 1))
    phases = [p for p, _ in PHASE_MIX]
    weights = [w for _, w in PHASE_MIX]
    span_us = 30 * 24 * 3600 * 1_000_000  # submitted over the last 30 days, in order
    start_us = now_us() - span_us - 3600 * 1_000_000
    store = SqliteTaskDatabase(path)
    keys: list[tuple[int, str]] = []
    states: dict[str, int] = {}
    spent = 0.0
    began_all = time.perf_counter()
    pending: list[TaskRecord] = []
    try:
        for serial in range(count):
            created_us = start_us + serial * span_us // max(count, 1) + rng.randrange(1000)
            phase = rng.choices(phases, weights)[0]
            record = task_record(rng, serial, created_us, phase)
            keys.append((record.created_us, record.id))
            states[record.state.value] = states.get(record.state.value, 0) + 1
            if batch <= 1:
                began = time.perf_counter()
                store.insert(record)
                spent += time.perf_counter() - began
            else:
                pending.append(record)
                if len(pending) >= batch or serial == count - 1:
                    began = time.perf_counter()
                    insert_batch(store, pending)
                    spent += time.perf_counter() - began
                    pending = []
            if serial and serial % 20000 == 0:
                print(f"  ... {serial:,} tasks stored ({serial / spent:,.0f}/s)", flush=True)
    finally:
        store.close()
    return Prefill(spent, time.perf_counter() - began_all, keys, states)


def insert_batch(store: SqliteTaskDatabase, records: list[TaskRecord]) -> None:
    """Many records per transaction, for --prefill-batch > 1 (big stores).

    SqliteTaskDatabase.insert commits once per task, which is what the API does and what the default
    pre-fill measures. For millions of tasks that is slow, so this runs the very statement, row
    mapping (_row) and tag writing (_write_tags) of SqliteTaskDatabase.insert, on the store's own
    connection, with one BEGIN IMMEDIATE ... COMMIT around many of them. The schema is still
    the one SqliteTaskDatabase created; nothing here writes a column the store does not.
    """
    conn = store._connection()
    insert = f"INSERT INTO tasks ({sqlite_store._COLUMNS}) VALUES (:id, :owner, :created_us, :name, :state, :phase, :version, :doc)"
    with sqlite_store._write_transaction(conn):
        for record in records:
            conn.execute(insert, sqlite_store._row(record, record.version))
            sqlite_store._write_tags(conn, record)


def store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


# --- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, label: str, argv: list[str], cwd: Path, env: dict, log: Path, port: int):
        self.label = label
        self.port = port
        self.log_path = log
        self.log = open(log, "ab")
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{tail(self.log_path)}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", f"{API}/service-info")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.label} did not answer within {timeout:.0f}s:\n{tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM to the whole process group (gunicorn master and workers), SIGKILL if needed."""
        stop_process_group(self.process, signal.SIGTERM, timeout=20)
        # A worker that outlived its master would still be in the group.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_ours(tmp: Path, workers: int) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TES_CTS_")}
    env["TES_CTS_WORK_DIR"] = str(tmp / "work")
    # The API alone: the embedded poller would start dispatching the pre-filled QUEUED tasks to
    # the local backend (containers) and compete with the API for the two cores and the store.
    env["TES_CTS_POLLER__EMBEDDED"] = "false"
    port = free_port()
    argv = [str(BIN / "tes-cts"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    return Server("tes-cts serve", argv, tmp, env, tmp / "ours.log", port)


def start_floor(tmp: Path, workers: int) -> Server:
    port = free_port()
    # The same gunicorn settings as tes_cts.server.GunicornServer (worker class, workers, access
    # log to stdout, graceful timeout); its own control socket so it does not take over the one
    # of `tes-cts serve` (gunicorn's default path is shared by every server of the user).
    argv = [str(BIN / "gunicorn"), "--chdir", str(BENCH_DIR), "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--worker-class", WORKER_CLASS, "--access-logfile", "-",
            "--graceful-timeout", "10", "--control-socket", str(tmp / "floor-gunicorn.ctl"), "floor_app:app"]
    return Server("framework floor", argv, tmp, dict(os.environ), tmp / "floor.log", port)


# --- load generation ------------------------------------------------------------------------


@dataclass
class Run:
    requests: int
    seconds: float
    latencies_ms: list[float]
    body_bytes: int
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def run_load(port: int, requests: list[tuple[str, str, bytes | None]], concurrency: int) -> Run:
    """Send `requests` from `concurrency` threads, each with one keep-alive connection."""
    lock = threading.Lock()
    position = iter(range(len(requests)))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sizes = [0]
    ready = threading.Barrier(concurrency + 1)

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.connect()
        mine: list[float] = []
        size = 0
        ready.wait()
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                break
            method, path, body = requests[index]
            began = time.perf_counter_ns()
            try:
                conn.request(method, path, body=body, headers=HEADERS)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            mine.append((time.perf_counter_ns() - began) / 1e6)
            size += len(data)
            if status != 200:
                with lock:
                    errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            sizes[0] += size

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return Run(len(requests), seconds, latencies, sizes[0] // max(1, len(latencies)), errors)


@dataclass
class Endpoint:
    label: str
    make: object  # (rng, count) -> list of (method, path, body)
    requests: int


def compare(endpoint: Endpoint, ours: Server, floor: Server, args, seed: int) -> tuple[Run, Run]:
    """Warm both servers up, then measure them in --rounds alternating turns (ours first, then the
    floor first, ...) so that drift on a shared machine falls on both alike."""
    warmup = max(10, min(args.warmup, endpoint.requests // 10))
    for server in (ours, floor):
        run_load(server.port, endpoint.make(random.Random(seed), warmup), args.concurrency)
    per_round = [endpoint.requests // args.rounds + (r < endpoint.requests % args.rounds) for r in range(args.rounds)]
    parts: dict[str, list[Run]] = {ours.label: [], floor.label: []}
    for turn, count in enumerate(per_round):
        # The same request sequence for both servers (same seed).
        for server in ((ours, floor) if turn % 2 == 0 else (floor, ours)):
            run = run_load(server.port, endpoint.make(random.Random(seed + 1 + turn), count), args.concurrency)
            if run.errors:
                print(f"  !! {server.label} {endpoint.label}: errors {run.errors}", flush=True)
            parts[server.label].append(run)
    ours_run, floor_run = merged(parts[ours.label]), merged(parts[floor.label])
    print(f"  {endpoint.label:<62} ours {ours_run.rate:8.1f} req/s   floor {floor_run.rate:8.1f} req/s", flush=True)
    return ours_run, floor_run


def merged(runs: list[Run]) -> Run:
    errors: dict[str, int] = {}
    for run in runs:
        for kind, count in run.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    answered = sum(len(run.latencies_ms) for run in runs)
    return Run(
        requests=sum(run.requests for run in runs),
        seconds=sum(run.seconds for run in runs),
        latencies_ms=[ms for run in runs for ms in run.latencies_ms],
        body_bytes=sum(run.body_bytes * len(run.latencies_ms) for run in runs) // max(1, answered),
        errors=errors,
    )


# --- diagnostics ----------------------------------------------------------------------------


def timed_ms(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter_ns()
        function()
        samples.append((time.perf_counter_ns() - began) / 1e6)
    return statistics.median(samples)


def diagnostics(db: Path, keys: list[tuple[int, str]], deep_cursor: Cursor, seed: int) -> list[str]:
    """In-process figures for the work behind each endpoint, and SQLite's plans for the queries.

    Run on the pre-filled store before the servers start, so the pages are the ones the HTTP
    benchmark lists; the tasks inserted here are older than every pre-filled one, so they only
    lengthen the tail of the list.
    """
    rng = random.Random(seed)
    store = SqliteTaskDatabase(db)
    lines = []

    def line(label: str, ms: float, extra: str = "") -> None:
        lines.append(f"  {label:<64} {ms:8.3f} ms{extra}")

    try:
        ids = [task_id for _, task_id in rng.sample(keys, min(len(keys), 500))]
        it = iter(ids * 2)
        line("store.get(id), random pre-filled id", timed_ms(lambda: store.get(next(it)), 1000))
        record = store.get(ids[0])
        line("render_task(view=BASIC) of one task", timed_ms(lambda: render_task(record, View.BASIC), 200))

        first = TaskQuery(limit=PAGE + 1)
        deep = TaskQuery(limit=PAGE + 1, after=deep_cursor)
        line(f"store.query(limit={PAGE + 1}) first page", timed_ms(lambda: store.query(first), 30))
        line(f"store.query(limit={PAGE + 1}) deep page (after cursor)", timed_ms(lambda: store.query(deep), 30))
        conn = store._connection()
        raw = f"SELECT doc FROM tasks ORDER BY created_us DESC, id DESC LIMIT {PAGE + 1}"
        line(f"  of which SQLite alone (fetch the {PAGE + 1} doc strings)", timed_ms(lambda: conn.execute(raw).fetchall(), 30))
        docs = [row[0] for row in conn.execute(raw)]
        line(f"  of which json.loads + TaskRecord.from_document x{PAGE + 1}",
             timed_ms(lambda: [sqlite_store._record(d) for d in docs], 30),
             f"  (docs average {sum(map(len, docs)) // len(docs):,} bytes)")
        columns = f"SELECT id, state FROM tasks ORDER BY created_us DESC, id DESC LIMIT {PAGE + 1}"
        line("  (for comparison: SELECT id, state, the columns MINIMAL shows)", timed_ms(lambda: conn.execute(columns).fetchall(), 30))
        records = store.query(first)[:PAGE]
        for view in (View.MINIMAL, View.BASIC):
            rendered = {"tasks": [render_task(r, view) for r in records]}
            line(f"render_task x{PAGE} view={view.value}", timed_ms(lambda: [render_task(r, view) for r in records], 30))
            pretty = len(json.dumps(rendered, indent=2))
            compact = len(json.dumps(rendered, separators=(",", ":")))
            line("  json.dumps of that page, indent=2 (Connexion's default)", timed_ms(lambda: json.dumps(rendered, indent=2), 30),
                 f"  {pretty:,} bytes")
            line("  json.dumps of that page, compact", timed_ms(lambda: json.dumps(rendered, separators=(",", ":")), 30),
                 f"  {compact:,} bytes")

        # Create: validation, then store.insert alone, one transaction per task as the API does.
        body = task_body(rng, 0)
        line("validate_task(a realistic body)", timed_ms(lambda: validate_task(body, LIMITS), 200))
        oldest = min(keys)[0]
        latencies = []
        for serial in range(1000):
            extra = task_record(rng, 20_000_000 + serial, oldest - 1_000_000 - serial, Phase.CREATED)
            began = time.perf_counter_ns()
            store.insert(extra)
            latencies.append((time.perf_counter_ns() - began) / 1e6)
        latencies.sort()
        line("store.insert(new task), p50 of 1000", latencies[499], f"  p99 {latencies[989]:.3f} ms, max {latencies[-1]:.3f} ms")

        # Filters the HTTP benchmark does not exercise, each with a rare match.
        sample_tag = json.loads(conn.execute("SELECT doc FROM tasks LIMIT 1").fetchone()[0])["task"]["tags"]["sample"]
        filtered = {
            "state=SYSTEM_ERROR": TaskQuery(limit=PAGE + 1, state=TesState.SYSTEM_ERROR),
            "tag project=cancer-wgs (common)": TaskQuery(limit=PAGE + 1, tags={"project": "cancer-wgs"}),
            f"tag sample={sample_tag} (rare)": TaskQuery(limit=PAGE + 1, tags={"sample": sample_tag}),
            "name_prefix=cancer-wgs.S00001 (rare)": TaskQuery(limit=PAGE + 1, name_prefix="cancer-wgs.S00001"),
        }
        for label, query in filtered.items():
            found = len(store.query(query))
            line(f"store.query {label}", timed_ms(lambda: store.query(query), 5), f"  ({found} found)")

        lines.append("  SQLite query plans (EXPLAIN QUERY PLAN of the SQL the store runs):")
        for label, query in {"first page": first, "deep page": deep, **filtered}.items():
            statements: list[str] = []
            conn.set_trace_callback(statements.append)
            try:
                store.query(query)
            finally:
                conn.set_trace_callback(None)
            sql = next(s for s in statements if s.lstrip().upper().startswith("SELECT"))
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            lines.append(f"    {label}: " + " | ".join(plan))
    finally:
        store.close()
    return lines


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks to pre-fill the store with (default 100000)")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per server for create and get (default 3000)")
    parser.add_argument("--list-requests", type=int, default=None,
                        help="measured requests per server for each list page (default: requests / 10, at least 50)")
    parser.add_argument("--warmup", type=int, default=100,
                        help="warm-up requests per server before each endpoint, at most a tenth of its requests (default 100)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="turns the measured requests are split into, alternating which server goes first (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers of both servers (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads, one keep-alive connection each (default 4)")
    parser.add_argument("--deep", type=int, default=None, help="position of the deep page in the list (default: tasks / 2)")
    parser.add_argument("--prefill-batch", type=int, default=1,
                        help="tasks per transaction when pre-filling; 1 (default) is SqliteTaskDatabase.insert itself")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--no-diagnostics", action="store_true", help="skip the in-process breakdown and query plans")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (store, server logs)")
    args = parser.parse_args(argv)
    if args.tasks < 2 * PAGE or args.requests < 1 or args.workers < 1 or args.concurrency < 1 or args.rounds < 1:
        parser.error(f"need --tasks >= {2 * PAGE} and positive --requests, --workers, --concurrency")
    list_requests = args.list_requests or max(50, args.requests // 10)
    deep = min(args.deep if args.deep is not None else args.tasks // 2, args.tasks - 1)

    # SIGTERM (e.g. a CI timeout) unwinds through the finally blocks like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)

    tmp = Path(tempfile.mkdtemp(prefix="tes-cts-bench-"))
    servers: list[Server] = []
    began_all = time.perf_counter()
    try:
        header(args, list_requests, deep, tmp)
        db = tmp / "work" / "tes-cts.sqlite3"
        print(f"\npre-filling {args.tasks:,} tasks ...", flush=True)
        filled = prefill(db, args.tasks, args.prefill_batch, args.seed)
        size = store_bytes(db)
        how = "SqliteTaskDatabase.insert, one transaction each" if args.prefill_batch <= 1 else f"{args.prefill_batch} per transaction"
        store_line = (f"store: {args.tasks:,} tasks pre-filled at {args.tasks / filled.seconds:,.0f} tasks/s ({how}; "
                      f"{filled.seconds:.1f} s in the store, {filled.wall_seconds:.1f} s with generating them); "
                      f"{size / 2**20:,.1f} MiB on disk ({size / args.tasks:,.0f} bytes/task)")
        print(store_line)
        mix = ", ".join(f"{state} {n * 100 / args.tasks:.0f}%" for state, n in sorted(filled.states.items(), key=lambda x: -x[1]))
        print(f"states: {mix}")

        newest_first = sorted(filled.keys, reverse=True)
        deep_key = newest_first[deep - 1]
        deep_token = encode_token(Cursor(*deep_key))
        notes = []
        if not args.no_diagnostics:
            print("in-process diagnostics ...", flush=True)
            notes = diagnostics(db, filled.keys, Cursor(*deep_key), args.seed + 9)

        print("\nstarting servers ...", flush=True)
        ours = start_ours(tmp, args.workers)
        servers.append(ours)
        floor = start_floor(tmp, args.workers)
        servers.append(floor)
        ours.wait_ready()
        floor.wait_ready()
        check_token(ours.port, newest_first)

        rng = random.Random(args.seed + 7)
        ids = [task_id for _, task_id in filled.keys]
        bodies = [json.dumps(task_body(rng, 10_000_000 + i)).encode() for i in range(args.requests + args.warmup)]

        def creates(r: random.Random, n: int):
            return [("POST", f"{API}/tasks", r.choice(bodies)) for _ in range(n)]

        def gets(r: random.Random, n: int):
            return [("GET", f"{API}/tasks/{r.choice(ids)}?view=BASIC", None) for _ in range(n)]

        def page(query: str):
            return lambda r, n: [("GET", f"{API}/tasks?{query}", None)] * n

        endpoints = [
            Endpoint("GET /tasks/{id}?view=BASIC", gets, args.requests),
            Endpoint(f"GET /tasks?page_size={PAGE}&view=MINIMAL", page(f"page_size={PAGE}&view=MINIMAL"), list_requests),
            Endpoint(f"GET /tasks?page_size={PAGE}&view=BASIC", page(f"page_size={PAGE}&view=BASIC"), list_requests),
            Endpoint(f"GET /tasks?page_size={PAGE}&view=MINIMAL&page_token=<at {deep:,}>",
                     page(f"page_size={PAGE}&view=MINIMAL&page_token={deep_token}"), list_requests),
            # Last, so that the pages above list the pre-filled tasks, not the ones created here.
            Endpoint("POST /tasks (create)", creates, args.requests),
        ]
        print("\nmeasuring (ours, then the floor, for each endpoint) ...", flush=True)
        results = [(endpoint, *compare(endpoint, ours, floor, args, args.seed + 100 * i)) for i, endpoint in enumerate(endpoints)]
        for server in servers:
            server.stop()
        servers.clear()

        print()
        print(table(results))
        print(f"\n{store_line}")
        if notes:
            print("\nin-process diagnostics (this process, no HTTP, on the pre-filled store; median unless said):")
            print("\n".join(notes))
        print(f"\ntotal time {time.perf_counter() - began_all:.0f} s; load average {os.getloadavg()[0]:.2f} at the end "
              "(other processes on the machine add noise; compare the floor's own rows)")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def header(args, list_requests: int, deep: int, tmp: Path) -> None:
    print("tes-cts API benchmark: ours (tes-cts serve, SQLite) vs the framework floor (bare Connexion app)")
    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {platform.machine()}, "
          f"{platform.system()} {platform.release()}; Python {platform.python_version()} ({sys.executable}); "
          f"SQLite {sqlite3.sqlite_version}; load average {os.getloadavg()[0]:.2f} at start")
    print(f"parameters: tasks={args.tasks:,} requests={args.requests:,} list-requests={list_requests:,} "
          f"warmup={args.warmup} rounds={args.rounds} workers={args.workers} concurrency={args.concurrency} deep-page-at={deep:,} "
          f"prefill-batch={args.prefill_batch} seed={args.seed}")
    print(f"servers: gunicorn -k {WORKER_CLASS}, {args.workers} worker(s) each, access log on, "
          f"embedded poller off; client: "
          f"http.client keep-alive, {args.concurrency} threads in this process (same cores as the servers)")
    print(f"work dir: {tmp}")


def check_token(port: int, newest_first: list[tuple[int, str]]) -> None:
    """Our deep page token is built with the server's encoder: check it matches what it issues."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"{API}/tasks?page_size={PAGE}&view=MINIMAL", headers=HEADERS)
    page = json.loads(conn.getresponse().read())
    conn.close()
    expected = encode_token(Cursor(*newest_first[PAGE - 1]))
    if page.get("next_page_token") != expected or [t["id"] for t in page["tasks"]] != [i for _, i in newest_first[:PAGE]]:
        raise SystemExit("benchmark bug: the server's first page or token differs from the pre-filled order")


def table(results) -> str:
    rows = [("endpoint", "figure", "ours", "floor", "ours/floor", "ours body")]
    for endpoint, ours, floor in results:
        rows.append((endpoint.label, "req/s", f"{ours.rate:.1f}", f"{floor.rate:.1f}", f"{ours.rate / floor.rate:.2f}",
                     f"{ours.body_bytes:,} B"))
        for q in (50, 99):
            o, f = ours.percentile(q), floor.percentile(q)
            rows.append(("", f"p{q} ms", f"{o:.2f}", f"{f:.2f}", f"{o / f:.2f}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])] + [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths[:2]) + "|" + "|".join("-" * (w + 1) + ":" for w in widths[2:]) + "|")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
