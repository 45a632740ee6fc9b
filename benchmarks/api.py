"""Benchmark the tes-cts API against a do-nothing Connexion app served the same way.

    poetry run python benchmarks/api.py                 # defaults: ~2-3 minutes on 2 cores
    .venv/bin/python benchmarks/api.py --growth 100000,1000000 --prefill-batch 10000
    .venv/bin/python benchmarks/api.py --growth 100000,1000000 --prefill-batch 10000 --http --requests 10000

What it does, in one run:
1. pre-fills a fresh SQLite store (in a temporary work dir) with --tasks realistic task records
   through SqliteTaskDatabase.insert, one transaction per task as the API does (or
   SqliteTaskDatabase.insert_many, --prefill-batch tasks per transaction);
2. starts `tes-cts serve` on that store and the "framework floor" (benchmarks/floor_app.py: a bare
   Connexion 3 FlaskApp whose operations return a constant small JSON) with the same gunicorn
   worker class, worker count and access log, each on a free loopback port;
3. for every endpoint (a task, list pages, filtered lists, create), warms both servers up, then
   sends the same fixed number of requests to ours and then to the floor from --concurrency
   threads with keep-alive connections, and prints throughput and p50/p99 latency for both with
   the ratio ours / floor;
4. prints in-process diagnostics (store and rendering times, SQLite query plans) that say where
   the time of our requests goes;
5. stops both servers (whole process groups) and removes the temporary directory, whatever
   happens.

With --growth N1,N2,...: pre-fills to N1, times the filter queries in-process, grows the same
store to N2, times them again, and so on, then prints each filter's median at every size and the
ratio last / first; steps 2-4 then run on the last size only with --http.

Only ratios measured in the same run mean something; the absolute numbers depend on the machine,
and the client threads run on the same cores as the servers.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import http.client
import itertools
import json
import os
import platform
import random
import re
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
from array import array
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlencode

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # run from a checkout without installing

from tes_cts.clock import now_us, rfc3339  # noqa: E402
from tes_cts.database import sqlite as sqlite_store  # noqa: E402
from tes_cts.database.sqlite import SqliteTaskDatabase  # noqa: E402
from tes_cts.model.query import Cursor, TaskQuery  # noqa: E402
from tes_cts.model.record import TaskRecord, new_task_id  # noqa: E402
from tes_cts.model.states import STATE_OF_PHASE, Phase, TesState  # noqa: E402
from tes_cts.model.views import View, render_task  # noqa: E402
from tes_cts.tasks.paging import encode_token  # noqa: E402
from tes_cts.tasks.validation import TaskValidationError, ValidationLimits, validate_task  # noqa: E402
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
# Samples arrive over time, each in one project: a new sample every TASKS_PER_SAMPLE tasks, and a
# task works on one of the SAMPLE_WINDOW samples in progress at its time. So a sample gets a
# handful of tasks (4 on average) close together in time, and the tasks of a sample stored once
# never change in number when the store grows: a rare tag or name prefix matches as many tasks
# at 100k as at 1M.
TASKS_PER_SAMPLE = 4
SAMPLE_WINDOW = 32
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

# The parts of a task that do not depend on its sample, built once. Records share these objects
# (nothing here changes a record after building it; the stores only serialize them).
_REFERENCE = {"name": "reference", "url": "s3://lab-references/GRCh38/genome.fa", "path": "/data/ref/genome.fa", "type": "FILE"}
_SCRIPT = {
    "name": "summarize.py", "path": "/data/in/summarize.py", "type": "FILE",
    "content": "import sys\nfrom pathlib import Path\nrows = sorted(Path(sys.argv[1]).glob('*.tsv'))\n"
               "Path(sys.argv[2]).write_text(''.join(p.read_text() for p in rows))\n",
}
_VOLUMES = ["/data/work"]
# (step, first image, first command, second executor)
_STEPS = tuple(
    (step, image1, [*head1, "/data/in/R1.fastq.gz", "/data/in/R2.fastq.gz"],
     {"image": image2, "command": command2, "stderr": "/data/out/reports/step2.err"})
    for step, image1, head1, image2, command2 in PIPELINES
)
_USERS = tuple(f"user{n:02d}" for n in range(60))
_HOSTS = tuple(f"node-{n:02d}" for n in range(64))
_CPUS, _RAMS, _DISKS = (2, 4, 8), (4.0, 8.0, 16.0, 32.0), (20.0, 50.0, 200.0)
_PHASES = tuple(p for p, _ in PHASE_MIX)
_PHASE_CUMULATIVE = tuple(itertools.accumulate(w for _, w in PHASE_MIX))
_MOVES = {  # phase -> the history entries' constant parts (state, phase, reason) of its path
    phase: tuple((STATE_OF_PHASE[step].value, step.value, f"moved to {step.value}") for step in path)
    for phase, path in PATH_TO.items()
}
_LOGGED = frozenset(p for p, path in PATH_TO.items() if path and p not in (Phase.PREFLIGHT, Phase.SUBMITTED, Phase.CANCELED))
_STDERR = "[M::process] read 400000 sequences (40000000 bp)...\n" * 3
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_PAIRS = tuple(a + b for a in _BASE32 for b in _BASE32)  # every 10 bits as 2 characters


def sample_index(rng: random.Random, serial: int) -> int:
    return serial // TASKS_PER_SAMPLE + int(rng.random() * SAMPLE_WINDOW)


def sample_name(index: int) -> str:
    return f"S{index:06d}"


def project_of(index: int) -> str:
    """A sample's one project, spread evenly (Fibonacci hashing of its index)."""
    return PROJECTS[((index * 2654435761) & 0xFFFFFFFF) * len(PROJECTS) >> 32]


def task_body(rng: random.Random, serial: int) -> dict:
    """A TES task as a client would submit it: 2 executors, 3-4 inputs, 2 outputs, 4-6 tags."""
    rand = rng.random
    index = sample_index(rng, serial)
    sample, project = sample_name(index), project_of(index)
    step, image1, command1, executor2 = _STEPS[int(rand() * len(_STEPS))]
    raw = f"s3://lab-raw-{project}/{sample}/{sample}"
    results = f"s3://lab-results-{project}/{sample}/{step}"
    inputs = [
        {"name": "reads_1", "url": f"{raw}_R1.fastq.gz", "path": "/data/in/R1.fastq.gz", "type": "FILE"},
        {"name": "reads_2", "url": f"{raw}_R2.fastq.gz", "path": "/data/in/R2.fastq.gz", "type": "FILE"},
        _REFERENCE,
    ]
    if rand() < 0.5:
        inputs.append(_SCRIPT)
    tags = {"project": project, "sample": sample, "pipeline": f"{step}-v{1 + int(rand() * 3)}", "user": _USERS[int(rand() * 60)]}
    if rand() < 0.3:
        tags["run"] = f"run-2026-{1 + int(rand() * 11):02d}-{1 + int(rand() * 28):02d}"
    if rand() < 0.1:
        tags["priority"] = "high"
    return {
        "name": f"{project}.{sample}.{step}.{serial}",
        "description": f"{step} for sample {sample} of project {project}",
        "inputs": inputs,
        "outputs": [
            {"name": "result", "url": f"{results}/result", "path": "/data/out/result", "type": "FILE"},
            {"name": "reports", "url": f"{results}/reports/", "path": "/data/out/reports", "type": "DIRECTORY"},
        ],
        "resources": {"cpu_cores": _CPUS[int(rand() * 3)], "ram_gb": _RAMS[int(rand() * 4)],
                      "disk_gb": _DISKS[int(rand() * 3)], "preemptible": rand() < 0.7},
        "executors": [
            {"image": image1, "command": command1,
             "workdir": "/data/work", "stdout": "/data/work/aln.sam", "stderr": "/data/out/reports/step1.err",
             "env": {"OMP_NUM_THREADS": "4", "SAMPLE": sample}},
            executor2,
        ],
        "volumes": _VOLUMES,
        "tags": tags,
    }


def random_phase(rng: random.Random) -> Phase:
    return _PHASES[bisect.bisect(_PHASE_CUMULATIVE, rng.random() * _PHASE_CUMULATIVE[-1])]


def task_id(rng: random.Random) -> str:
    """An id of new_task_id's form (128 bits in lower-case base32, unpadded), from the seeded rng."""
    bits = rng.getrandbits(128) << 2  # 26 characters of 5 bits: the last one ends in 2 zero bits
    return "".join([_BASE32_PAIRS[(bits >> shift) & 1023] for shift in range(120, -1, -10)])


_MINUTE_PREFIXES: dict[int, str] = {}


def timestamp(us: int) -> str:
    """rfc3339(us), exact and a few times faster: date, hour and minute are formatted once each
    minute (30 days of them: 43,200 short strings)."""
    minute, micros = divmod(us, 60_000_000)
    prefix = _MINUTE_PREFIXES.get(minute)
    if prefix is None:
        prefix = _MINUTE_PREFIXES[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return f"{prefix}{micros // 1_000_000:02d}.{micros % 1_000_000:06d}Z"


def task_record(rng: random.Random, serial: int, created_us: int, phase: Phase) -> TaskRecord:
    """A stored task that went through PATH_TO[phase], as the API and the poller would leave it."""
    rand = rng.random
    history = [{"state": "QUEUED", "phase": "created", "time": timestamp(created_us), "reason": "task accepted"}]
    at = created_us
    for state, step, reason in _MOVES[phase]:
        at += 1_000_000 + int(rand() * 599_000_000)
        history.append({"state": state, "phase": step, "time": timestamp(at), "reason": reason})
    record = TaskRecord(id=task_id(rng), owner="", created_us=created_us, phase=phase, task=task_body(rng, serial),
                        history=history)
    if phase in _LOGGED:
        record.logs = [attempt_log(rng, record, created_us, at, phase)]
    return record


def attempt_log(rng: random.Random, record: TaskRecord, start_us: int, end_us: int, phase: Phase) -> dict:
    """One tesTaskLog as the poller would write it after the attempt."""
    rand = rng.random
    start, end = timestamp(start_us), timestamp(end_us)
    executors = [{"start_time": start, "end_time": end, "exit_code": 0, "stdout": "", "stderr": _STDERR}]
    if phase in (Phase.COMPLETE, Phase.EXECUTOR_ERROR, Phase.STAGING_OUT):  # both executors ran
        executors.append({"start_time": start, "end_time": end, "exit_code": int(phase is Phase.EXECUTOR_ERROR),
                          "stdout": "", "stderr": _STDERR})
    host = _HOSTS[int(rand() * len(_HOSTS))]
    log = {"logs": executors, "outputs": [], "metadata": {"host": host, "backend_job_id": f"{int(rand() * 100000)}.0"},
           "start_time": start, "system_logs": [f"attempt 1 on {host}"]}
    if phase is Phase.COMPLETE:
        log["end_time"] = end
        for output in record.task["outputs"]:
            path = output["path"] if output["type"] == "FILE" else output["path"] + "/multiqc.html"
            url = output["url"] if output["type"] == "FILE" else output["url"] + "multiqc.html"
            log["outputs"].append({"url": url, "path": path, "size_bytes": str(1000 + int(rand() * 9_999_999_000))})
            log["metadata"][f"crc64nvme:{path}"] = f"{rng.getrandbits(64):016x}"
    if phase is Phase.SYSTEM_ERROR:
        log["system_logs"].append("input s3://lab-references/GRCh38/genome.fa changed since submission")
    return log


def check_documents(rng: random.Random) -> None:
    """The generated bodies are what validation accepts unchanged, so skipping it is honest; the
    fast id and timestamp are exactly the server's forms."""
    for serial in range(200):
        body = task_body(rng, serial * 997)
        try:
            accepted = validate_task(body, LIMITS)
        except TaskValidationError as exc:
            raise SystemExit(f"benchmark out of date: the server now rejects its task bodies: {exc}") from None
        if accepted.task != body or accepted.warnings:
            raise SystemExit(f"benchmark bug: generated task {serial} is not in normalized form")
        us = 1_700_000_000_000_000 + rng.randrange(10**15)
        if timestamp(us) != rfc3339(us) or len(task_id(rng)) != len(new_task_id()):
            raise SystemExit(f"benchmark bug: timestamp({us}) or task_id differs from the server's form")


# --- pre-fill ------------------------------------------------------------------------------


@dataclass
class Stage:
    tasks: int  # stored by this stage
    seconds: float  # in the store's code only: inserts, and the checkpoint of closing it
    wall_seconds: float  # with generating the records


class Prefill:
    """Fills one store with generated tasks, in stages: `fill_to(n)` grows it to n tasks.

    The tasks are spread evenly over 30 days sized for `final` tasks, oldest first, so a store
    grown in stages (--growth) holds the same tasks as one filled at once. Records are made one
    at a time as the store writes them: only the (created_us, id) key and the sample of each task
    stay in memory.
    """

    def __init__(self, path: Path, final: int, batch: int, seed: int):
        self.path = path
        self.rng = random.Random(seed)
        check_documents(random.Random(seed + 1))
        self.span_us = 30 * 24 * 3600 * 1_000_000  # submitted over the last 30 days, in order
        self.start_us = now_us() - self.span_us - 3600 * 1_000_000
        self.final = max(final, 1)
        self.batch = max(batch, 1)
        self.bulk = self.batch > 1 and hasattr(SqliteTaskDatabase, "insert_many")
        self.keys: list[tuple[int, str]] = []  # (created_us, id) of every stored task, by serial
        self.samples = array("I")  # sample index of every stored task, by serial
        self.states: dict[str, int] = {}
        self.projects: dict[str, int] = {}
        self.seconds = 0.0
        self.wall_seconds = 0.0

    @property
    def count(self) -> int:
        return len(self.keys)

    @property
    def how(self) -> str:
        if self.batch <= 1:
            return "SqliteTaskDatabase.insert, one transaction each"
        if self.bulk:
            return f"SqliteTaskDatabase.insert_many, {self.batch} per transaction"
        return f"{self.batch} per transaction, with the store's _row and _write_tags"

    def fill_to(self, count: int) -> Stage:
        """Store tasks up to `count`, then close the store: its last connection checkpoints the WAL
        into the file, so what is measured next reads a settled store (the time is the store's)."""
        rng, keys, samples, states, projects = self.rng, self.keys, self.samples, self.states, self.projects
        generating = 0.0

        def generated(low: int, high: int):
            """The records of serials low..high-1, made one at a time as the store asks for them."""
            nonlocal generating
            for serial in range(low, high):
                began = time.perf_counter()
                created_us = self.start_us + serial * self.span_us // self.final + int(rng.random() * 1000)
                record = task_record(rng, serial, created_us, random_phase(rng))
                keys.append((created_us, record.id))
                tags = record.task["tags"]
                samples.append(int(tags["sample"][1:]))
                projects[tags["project"]] = projects.get(tags["project"], 0) + 1
                state = record.state.value
                states[state] = states.get(state, 0) + 1
                generating += time.perf_counter() - began
                yield record

        report_every = max(20_000, self.final // 10)
        chunk = max(self.batch, 1000)
        first = self.count
        began_all = time.perf_counter()
        store = SqliteTaskDatabase(self.path)
        # A bulk load makes no reference cycles (records are trees of dicts and lists, freed as
        # soon as they are written), so the cyclic GC would only walk them: off while it runs.
        # One transaction per task is what the API does, and keeps the GC as a server has it.
        collecting = gc.isenabled()
        if self.batch > 1:
            gc.disable()
        try:
            for low in range(first, count, chunk):
                high = min(low + chunk, count)
                if self.batch <= 1:
                    for record in generated(low, high):
                        store.insert(record)
                elif self.bulk:
                    store.insert_many(generated(low, high))  # one transaction; records made as it goes
                else:
                    insert_batch(store, list(generated(low, high)))
                if high < count and high // report_every > low // report_every:
                    wall = time.perf_counter() - began_all
                    print(f"  ... {high:,} tasks stored ({(high - first) / (wall - generating):,.0f}/s in the store, "
                          f"{(high - first) / wall:,.0f}/s with generating them)", flush=True)
        finally:
            store.close()
            if collecting:
                gc.enable()
        wall = time.perf_counter() - began_all
        stage = Stage(count - first, wall - generating, wall)
        self.seconds += stage.seconds
        self.wall_seconds += stage.wall_seconds
        return stage


def insert_batch(store: SqliteTaskDatabase, records: list[TaskRecord]) -> None:
    """Many records per transaction, for --prefill-batch > 1 on a store without insert_many.

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


# --- the filters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    label: str  # for the in-process lines and the growth table
    query: TaskQuery
    params: tuple  # of GET /tasks, besides page_size and view; None: no HTTP row
    matching: int  # tasks that match it in the store (from the generator's own counts)
    note: str  # what kind of filter


@dataclass(frozen=True)
class Picks:
    """The rare values, taken from the tasks generated first, so that they match the same tasks
    at every size of a growing store."""

    tag_sample: int
    prefix_sample: int

    @classmethod
    def of(cls, filled: Prefill, size: int) -> Picks:
        tag = filled.samples[size * 2 // 5]
        serial = size * 3 // 5
        while filled.samples[serial] == tag:
            serial += 1
        return cls(tag, filled.samples[serial])


COMMON_PROJECT = PROJECTS[0]


# The owner `serve` lists for when authentication is off: the local user's tasks (every
# pre-filled task is theirs), so the in-process queries are the ones the HTTP rows make.
SERVE_OWNER = ""


def filters(filled: Prefill, picks: Picks, with_first_page: bool = False) -> list[Filter]:
    limit = PAGE + 1
    tag, prefix_index = sample_name(picks.tag_sample), picks.prefix_sample
    prefix = f"{project_of(prefix_index)}.{sample_name(prefix_index)}."
    errors = filled.states.get(TesState.SYSTEM_ERROR.value, 0)
    chosen = [
        Filter(f"tag sample={tag}", TaskQuery(limit=limit, owner=SERVE_OWNER, tags={"sample": tag}),
               (("tag_key", "sample"), ("tag_value", tag)), filled.samples.count(picks.tag_sample), "rare"),
        Filter(f"tag project={COMMON_PROJECT}", TaskQuery(limit=limit, owner=SERVE_OWNER, tags={"project": COMMON_PROJECT}),
               (("tag_key", "project"), ("tag_value", COMMON_PROJECT)), filled.projects.get(COMMON_PROJECT, 0), "common"),
        Filter(f"name_prefix={prefix}", TaskQuery(limit=limit, owner=SERVE_OWNER, name_prefix=prefix),
               (("name_prefix", prefix),), filled.samples.count(prefix_index), "rare"),
        Filter("state=SYSTEM_ERROR", TaskQuery(limit=limit, owner=SERVE_OWNER, state=TesState.SYSTEM_ERROR),
               (("state", "SYSTEM_ERROR"),), errors, f"{errors * 100 / max(filled.count, 1):.0f}%"),
    ]
    if with_first_page:
        chosen.insert(0, Filter("no filter", TaskQuery(limit=limit, owner=SERVE_OWNER), None, filled.count, "control: the first page"))
    return chosen


def matches(f: Filter) -> str:
    return f"{f.matching:,} task{'s' if f.matching != 1 else ''} match, {f.note}"


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



def compare(endpoint: Endpoint, ours: Server, floor: Server, args, seed: int) -> tuple[str, Run, Run]:
    """Warm both servers up, then measure them in --rounds alternating turns (ours first, then the
    floor first, ...) so that drift on a shared machine falls on both alike.

    The first warm-up requests to ours also say how fast it answers this endpoint: a row whose
    measured requests would keep ours busy for more than --row-seconds is cut to what fits (at
    least 20 requests), and its label says so. Returns the row's label and both runs.
    """
    requests, label = endpoint.requests, endpoint.label
    probe = run_load(ours.port, endpoint.make(random.Random(seed), args.concurrency), args.concurrency)
    if probe.rate * args.row_seconds < requests:
        requests = max(20, int(probe.rate * args.row_seconds))
        label = f"{label} [{requests} req]"
    warmup = max(10, min(args.warmup, requests // 10))
    run_load(ours.port, endpoint.make(random.Random(seed), max(0, warmup - args.concurrency)), args.concurrency)
    run_load(floor.port, endpoint.make(random.Random(seed), warmup), args.concurrency)
    per_round = [requests // args.rounds + (r < requests % args.rounds) for r in range(args.rounds)]
    parts: dict[str, list[Run]] = {ours.label: [], floor.label: []}
    for turn, count in enumerate(per_round):
        # The same request sequence for both servers (same seed).
        for server in ((ours, floor) if turn % 2 == 0 else (floor, ours)):
            run = run_load(server.port, endpoint.make(random.Random(seed + 1 + turn), count), args.concurrency)
            if run.errors:
                print(f"  !! {server.label} {label}: errors {run.errors}", flush=True)
            parts[server.label].append(run)
    ours_run, floor_run = merged(parts[ours.label]), merged(parts[floor.label])
    print(f"  {label:<62} ours {ours_run.rate:8.1f} req/s   floor {floor_run.rate:8.1f} req/s", flush=True)
    return label, ours_run, floor_run


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


def timed(function, repeat: int, budget_s: float | None = None) -> tuple[float, int]:
    """Median ms of `repeat` runs, or of fewer (at least 3) once `budget_s` is spent; and the runs."""
    samples = []
    deadline = None if budget_s is None else time.perf_counter() + budget_s
    for _ in range(repeat):
        began = time.perf_counter_ns()
        function()
        samples.append((time.perf_counter_ns() - began) / 1e6)
        if deadline is not None and len(samples) >= 3 and time.perf_counter() > deadline:
            break
    return statistics.median(samples), len(samples)


def timed_ms(function, repeat: int, budget_s: float | None = None) -> float:
    return timed(function, repeat, budget_s)[0]


def view_call(store: SqliteTaskDatabase, view: View) -> tuple[str, object] | None:
    """The database's call for a page of stored views, as (name, call(query of PAGE + 1)):
    `view_page` (which reads one more than its limit itself), or `query_views` in code from
    before it; None in code from before stored views."""
    if hasattr(store, "view_page"):
        return f"store.view_page({view.value})", lambda query: store.view_page(replace(query, limit=query.limit - 1), view)
    if hasattr(store, "query_views"):
        return f"store.query_views({view.value})", lambda query: store.query_views(query, view)
    return None


def found_by(result) -> int:
    """How many tasks a call of query_methods found: a list's length; for a page of views, its
    tasks and, when more follow, the one more it read (so that every call counts alike)."""
    if isinstance(result, list):
        return len(result)
    return len(json.loads(f"[{result.joined}]")) + (result.next_after is not None)


def query_methods(store: SqliteTaskDatabase) -> list[tuple[str, object]]:
    """The database calls behind a list page: records (FULL), the MINIMAL page the HTTP filter
    rows ask for, and BASIC."""
    views = [view_call(store, view) for view in (View.MINIMAL, View.BASIC)]
    if views[0] is None:
        return [("store.query", store.query), ("store.query_summaries (MINIMAL)", store.query_summaries)]
    return [("store.query", store.query), *views]


def growth_method(store: SqliteTaskDatabase) -> tuple[str, object]:
    """What --growth times: the BASIC page where the database stores it, else the records."""
    return view_call(store, View.BASIC) or ("store.query", store.query)


def sql_plan(store: SqliteTaskDatabase, query: TaskQuery, call) -> tuple[str, str]:
    """SQLite's plan of the SELECT that `call(query)` runs, and where its SQL came from.

    The statements are traced on the store's connection while `call` runs; the last SELECT is the
    query (a store may run others first, as a count). Where the store has its SQL builder
    (`select_sql(query, columns) -> (sql, params)`), the plan is of the SQL it builds for the
    columns that statement selects, with its parameters bound; otherwise of the traced statement.
    """
    conn = store._connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        call(query)
    finally:
        conn.set_trace_callback(None)
    traced = [s for s in statements if s.split(None, 1)[0].upper() in ("SELECT", "WITH")][-1]
    builder = getattr(store, "select_sql", None)
    if builder is not None:
        try:
            columns = re.match(r"\s*SELECT\s+(.*?)\s+FROM\s", traced, re.S | re.I).group(1)
            built = builder(query, columns)
            sql, params = (built, ()) if isinstance(built, str) else built
            return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, tuple(params))), "select_sql"
        except Exception:  # noqa: BLE001 - a builder of another form: fall back to the traced SQL
            pass
    # The trace gives the statement with its parameters expanded, ready to explain.
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + traced)), "traced"


def plan_lines(store: SqliteTaskDatabase, queries: dict[str, TaskQuery]) -> list[str]:
    """One line per query; one per method where the methods' plans differ."""
    body, sources = [], set()
    for label, query in queries.items():
        plans = {}
        for name, call in query_methods(store):
            plan, source = sql_plan(store, query, call)
            plans[name] = plan
            sources.add(source)
        if len(set(plans.values())) == 1:
            body.append(f"    {label}: {next(iter(plans.values()))}")
        else:
            body.extend(f"    {label}, {name}: {plan}" for name, plan in plans.items())
    how = " and ".join(sorted({"select_sql": "SQL built by store.select_sql", "traced": "SQL traced on the connection"}[s]
                              for s in sources))
    return [f"  SQLite query plans (EXPLAIN QUERY PLAN of the SQL the store runs; {how}):", *body]


def diagnostics(db: Path, keys: list[tuple[int, str]], deep_cursor: Cursor, chosen: list[Filter], seed: int) -> list[str]:
    """In-process figures for the work behind each endpoint, and SQLite's plans for the queries.

    Run on the pre-filled store before the servers start, so the pages are the ones the HTTP
    benchmark lists; the tasks inserted here are older than every pre-filled one, so they only
    lengthen the tail of the list (and match none of the rare filters).
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

        first = TaskQuery(limit=PAGE + 1, owner=SERVE_OWNER)
        deep = TaskQuery(limit=PAGE + 1, owner=SERVE_OWNER, after=deep_cursor)
        line(f"store.query(limit={PAGE + 1}) first page", timed_ms(lambda: store.query(first), 30))
        line(f"store.query(limit={PAGE + 1}) deep page (after cursor)", timed_ms(lambda: store.query(deep), 30))
        conn = store._connection()
        raw = f"SELECT doc FROM tasks ORDER BY created_us DESC, id DESC LIMIT {PAGE + 1}"
        line(f"  of which SQLite alone (fetch the {PAGE + 1} doc strings)", timed_ms(lambda: conn.execute(raw).fetchall(), 30))
        docs = [row[0] for row in conn.execute(raw)]
        line(f"  of which json.loads + TaskRecord.from_document x{PAGE + 1}",
             timed_ms(lambda: [TaskRecord.from_document(json.loads(d)) for d in docs], 30),
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

        # The filters of the HTTP filter rows, through each database call a list page can make.
        for f in chosen:
            lines.append(f"  filter {f.label} ({matches(f)}):")
            for name, call in query_methods(store):
                found = found_by(call(f.query))
                line(f"  {name}", timed_ms(lambda: call(f.query), 5, budget_s=10), f"  ({found} found)")

        lines.extend(plan_lines(store, {"first page": first, "deep page": deep, **{f.label: f.query for f in chosen}}))
    finally:
        store.close()
    return lines


# --- growth ---------------------------------------------------------------------------------


def measure_filters(db: Path, chosen: list[Filter], repeat: int, budget_s: float) -> list[tuple[float, int, int]]:
    """(p50 ms, found, runs) of each filter, on a fresh connection as a server worker would have."""
    store = SqliteTaskDatabase(db)
    try:
        _, call = growth_method(store)
        results = []
        for f in chosen:
            found = found_by(call(f.query))  # also warms the page cache for this query
            p50, runs = timed(lambda: call(f.query), repeat, budget_s)
            results.append((p50, found, runs))
        return results
    finally:
        store.close()


def growth_table(sizes: list[int], per_size: list[list[Filter]], measured: list[list[tuple[float, int, int]]]) -> str:
    rows = [("filter", "matching tasks", *(f"{size:,} tasks" for size in sizes), f"{sizes[-1]:,} / {sizes[0]:,}")]
    for i, f in enumerate(per_size[-1]):
        counts = []
        for filters_at, results in zip(per_size, measured):
            expected, found = filters_at[i].matching, results[i][1]
            counts.append(f"{expected:,}" + ("" if found == min(expected, PAGE + 1) else f" (!! {found} found)"))
        p50s = [results[i][0] for results in measured]
        rows.append((f"{f.label} ({f.note})", " / ".join(counts), *(f"{ms:.3f} ms" for ms in p50s), f"{p50s[-1] / p50s[0]:.2f}"))
    return markdown_table(rows, left=1)


def markdown_table(rows: list[tuple[str, ...]], left: int) -> str:
    """`rows` (the first is the header) as a Markdown table, columns aligned: the first `left`
    to the left, the others (figures) to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "|" + "|".join("-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    lines = []
    for row in rows:
        cells = [cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([lines[0], rule, *lines[1:]])


# --- main -----------------------------------------------------------------------------------


def sizes_of(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of task counts: {text!r}") from None
    if len(sizes) < 2 or sizes != sorted(set(sizes)):
        raise argparse.ArgumentTypeError(f"need two or more increasing task counts, as 100000,1000000: {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=None, help="tasks to pre-fill the store with (default 100000)")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per server for create and get (default 3000)")
    parser.add_argument("--list-requests", type=int, default=None,
                        help="measured requests per server for each list page and filter (default: requests / 10, at least 50)")
    parser.add_argument("--warmup", type=int, default=100,
                        help="warm-up requests per server before each endpoint, at most a tenth of its requests (default 100)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="turns the measured requests are split into, alternating which server goes first (default 2)")
    parser.add_argument("--row-seconds", type=float, default=60,
                        help="cut a row's measured requests to what ours answers in about this long (default 60)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers of both servers (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads, one keep-alive connection each (default 4)")
    parser.add_argument("--deep", type=int, default=None, help="position of the deep page in the list (default: tasks / 2)")
    parser.add_argument("--prefill-batch", type=int, default=1,
                        help="tasks per transaction when pre-filling (insert_many where the store has it); "
                             "1 (default) is SqliteTaskDatabase.insert itself")
    parser.add_argument("--growth", type=sizes_of, default=None, metavar="N1,N2,...",
                        help="pre-fill to N1 tasks, time the filter queries in-process, grow the same store to N2, "
                             "time them again, ...; print how they grow (no HTTP unless --http)")
    parser.add_argument("--growth-repeat", type=int, default=50,
                        help="runs of each filter query at each size, for its median (default 50; fewer past 20 s)")
    parser.add_argument("--http", action="store_true",
                        help="with --growth: then run the in-process diagnostics and the HTTP comparison on the last size")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--no-diagnostics", action="store_true", help="skip the in-process breakdown and query plans")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (store, server logs)")
    args = parser.parse_args(argv)
    if args.growth and args.tasks is not None:
        parser.error("--growth sets the sizes: leave --tasks out")
    if args.http and not args.growth:
        parser.error("--http goes with --growth (without --growth the HTTP comparison always runs)")
    sizes = args.growth or [args.tasks if args.tasks is not None else 100_000]
    args.tasks = sizes[-1]
    if (sizes[0] < 2 * PAGE or args.requests < 1 or args.workers < 1 or args.concurrency < 1 or args.rounds < 1
            or args.growth_repeat < 1 or args.row_seconds <= 0):
        parser.error(f"need --tasks (and every --growth size) >= {2 * PAGE} and positive --requests, --workers, "
                     "--concurrency, --rounds, --growth-repeat, --row-seconds")
    list_requests = args.list_requests or max(50, args.requests // 10)
    deep = min(args.deep if args.deep is not None else args.tasks // 2, args.tasks - 1)
    http = args.http or not args.growth

    # SIGTERM (e.g. a CI timeout) unwinds through the finally blocks like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)

    tmp = Path(tempfile.mkdtemp(prefix="tes-cts-bench-"))
    servers: list[Server] = []
    began_all = time.perf_counter()
    try:
        header(args, list_requests, deep, tmp, http)
        db = tmp / "work" / "tes-cts.sqlite3"
        filled = Prefill(db, args.tasks, args.prefill_batch, args.seed)
        picks = None
        grown: list[list[Filter]] = []
        measured: list[list[tuple[float, int, int]]] = []
        method = growth_method(SqliteTaskDatabase)[0]  # its name only
        for size in sizes:
            print(f"\npre-filling {size - filled.count:,} tasks{f' (to {size:,})' if filled.count else ''} ...", flush=True)
            stage = filled.fill_to(size)
            print(f"  {stage.tasks:,} tasks at {stage.tasks / stage.seconds:,.0f} tasks/s in the store ({filled.how}), "
                  f"{stage.tasks / stage.wall_seconds:,.0f} tasks/s with generating them ({stage.wall_seconds:.1f} s); "
                  f"{store_bytes(db) / 2**20:,.1f} MiB on disk", flush=True)
            picks = picks or Picks.of(filled, sizes[0])
            if args.growth:
                chosen = filters(filled, picks, with_first_page=True)
                print(f"  timing the filters in-process ({method}, up to {args.growth_repeat} runs each) ...", flush=True)
                results = measure_filters(db, chosen, args.growth_repeat, budget_s=20)
                for f, (p50, found, runs) in zip(chosen, results):
                    print(f"    {f.label:<44} {p50:9.3f} ms  p50 of {runs:>2}, {found:>3} found ({matches(f)})", flush=True)
                grown.append(chosen)
                measured.append(results)
        size = store_bytes(db)
        store_line = (f"store: {args.tasks:,} tasks pre-filled at {args.tasks / filled.seconds:,.0f} tasks/s ({filled.how}; "
                      f"{filled.seconds:.1f} s in the store, {filled.wall_seconds:.1f} s with generating them); "
                      f"{size / 2**20:,.1f} MiB on disk ({size / args.tasks:,.0f} bytes/task)")
        print(store_line)
        mix = ", ".join(f"{state} {n * 100 / args.tasks:.0f}%" for state, n in sorted(filled.states.items(), key=lambda x: -x[1]))
        print(f"states: {mix}")
        chosen = filters(filled, picks)
        if args.growth:
            growth_lines = [
                f"growth: the same store grown from {sizes[0]:,} to {sizes[-1]:,} tasks; in-process {method}, "
                f"p50 of up to {args.growth_repeat} runs each (limit {PAGE + 1}); flat = 1.00",
                "", growth_table(sizes, grown, measured), ""]
            store = SqliteTaskDatabase(db)
            try:
                growth_lines += plan_lines(store, {f.label: f.query for f in grown[-1]})
            finally:
                store.close()
            print("\n" + "\n".join(growth_lines))
            if not http:
                print(f"\ntotal time {time.perf_counter() - began_all:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")
                return 0

        newest_first = sorted(filled.keys, reverse=True)
        deep_key = newest_first[deep - 1]
        deep_token = encode_token(Cursor(*deep_key))
        notes = []
        if not args.no_diagnostics:
            print("in-process diagnostics ...", flush=True)
            notes = diagnostics(db, filled.keys, Cursor(*deep_key), chosen, args.seed + 9)

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
        ]
        for f in chosen:
            query = urlencode((("page_size", PAGE), ("view", "MINIMAL"), *f.params))
            endpoints.append(Endpoint(f"GET /tasks?{query}", page(query), list_requests))
        # Last, so that the pages above list the pre-filled tasks, not the ones created here.
        endpoints.append(Endpoint("POST /tasks (create)", creates, args.requests))
        print("\nmeasuring (ours, then the floor, for each endpoint) ...", flush=True)
        results = [compare(endpoint, ours, floor, args, args.seed + 100 * i) for i, endpoint in enumerate(endpoints)]
        for server in servers:
            server.stop()
        servers.clear()

        print()
        print(table(results))
        print("filters: " + "; ".join(f"{f.label}: {matches(f)}" for f in chosen))
        print(f"\n{store_line}")
        if args.growth:
            print("\n" + "\n".join(growth_lines))
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


def header(args, list_requests: int, deep: int, tmp: Path, http: bool) -> None:
    print("tes-cts API benchmark: ours (tes-cts serve, SQLite) vs the framework floor (bare Connexion app)")
    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {platform.machine()}, "
          f"{platform.system()} {platform.release()}; Python {platform.python_version()} ({sys.executable}); "
          f"SQLite {sqlite3.sqlite_version}; load average {os.getloadavg()[0]:.2f} at start")
    growth = f"growth={','.join(map(str, args.growth))} growth-repeat={args.growth_repeat} " if args.growth else ""
    print(f"parameters: tasks={args.tasks:,} {growth}requests={args.requests:,} list-requests={list_requests:,} "
          f"warmup={args.warmup} rounds={args.rounds} row-seconds={args.row_seconds:g} workers={args.workers} "
          f"concurrency={args.concurrency} deep-page-at={deep:,} prefill-batch={args.prefill_batch} seed={args.seed}"
          + ("" if http else " (growth only, no HTTP)"))
    if http:
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
    for label, ours, floor in results:
        rows.append((label, "req/s", f"{ours.rate:.1f}", f"{floor.rate:.1f}", f"{ours.rate / floor.rate:.2f}",
                     f"{ours.body_bytes:,} B"))
        for q in (50, 99):
            o, f = ours.percentile(q), floor.percentile(q)
            rows.append(("", f"p{q} ms", f"{o:.2f}", f"{f:.2f}", f"{o / f:.2f}", ""))
    return markdown_table(rows, left=2)


if __name__ == "__main__":
    sys.exit(main())
