"""What tes-cts adds to running a container: one task end to end against a bare `docker run`.

    .venv/bin/python benchmarks/overhead.py                  # the service's defaults: about 3 minutes on 2 cores
    .venv/bin/python benchmarks/overhead.py --runs 10 --concurrent 60 --interval 0.2

What it does, in one run:
1. checks that the Docker engine answers (DOCKER_HOST, default the tests' engine) and that the
   test image tes-cts-test/busybox:1 exists (built locally by tests/docker_env.py if not);
2. starts `tes-cts serve` (API and embedded poller, local backend) on a free loopback port in a
   temporary work dir, on the service's default settings (--interval sets poller.interval_s);
3. latency, --runs times, alternating: the baseline `docker run --rm --network none IMAGE true`,
   then one tes-cts task with that one executor, timed from POST /tasks to the GET (polled every
   10 ms) that shows COMPLETE; median and p90 of both, their ratio and the absolute overhead, and
   where the overhead goes, from the task's history in the SQLite store, the worker's result.json
   and the executor log's times;
4. throughput: --concurrent containers through --cpu-slots parallel `docker run --rm` processes,
   then --concurrent tasks submitted at once from threads, until every one is terminal (all must
   be COMPLETE; a list every second says when, the store's history says at what moment the last
   one was stored terminal); tasks per minute of both and the ratio, how the CPU slots' time was spent, and
   the CPU time of both (every process of serve's tree against the baseline's docker clients; the
   engine apart);
5. prints the three ratios the service is held to (latency, throughput, CPU per task);
6. stops the server (its whole process group) and removes the work dir, whatever happens.

The machine is shared with whatever else runs on it (the load average is printed); only the
ratios and the breakdown measured in the same run mean something.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout: tes_cts and tests/ are importable

import requests  # noqa: E402

from benchmarks.tables import table  # noqa: E402
from tes_cts import __version__  # noqa: E402
from tes_cts.database.sqlite import SqliteTaskDatabase  # noqa: E402
from tests.docker_env import TEST_IMAGE, docker, docker_env, docker_reachable, ensure_test_image  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402

TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
COMMAND = ["true"]
BASELINE = ["docker", "run", "--rm", "--network", "none", TEST_IMAGE, *COMMAND]
GET_EVERY_S = 0.01          # how often a latency run asks whether its task is COMPLETE (the error of the measure)
LIST_EVERY_S = 1.0          # how often the throughput run lists the burst's states (its end is read from the store)
TASK_TIMEOUT_S = 120.0


class Interrupted(Exception):
    pass


def _interrupt(*_):
    raise Interrupted("interrupted by SIGTERM")


# --- small helpers ---------------------------------------------------------------------------

def median(values):
    return statistics.median(values)


def p90(values):
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def seconds(rfc3339: str) -> float:
    """RFC 3339 UTC with microseconds (what tes-cts writes) as Unix seconds."""
    return datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def ms(value: float) -> str:
    return f"{value * 1000:.0f}"


def timed_docker(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, env=docker_env(), capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}: {done.stderr.strip()}")
    return elapsed


# --- machine facts -----------------------------------------------------------------------------

def machine_facts(args) -> list[tuple[str, str]]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    info = docker("info", "--format", "{{.ServerVersion}} / {{.Driver}} / cgroup v{{.CgroupVersion}} / {{.DefaultRuntime}}",
                  check=False).stdout.strip()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        ("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("machine", f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, {platform.system()} {platform.release()}"),
        ("software", f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, tes-cts {__version__} ({commit})"),
        ("docker engine", f"{info} (DOCKER_HOST={docker_env()['DOCKER_HOST']})"),
        ("load average at start", f"{load} (1, 5, 15 min; the machine is shared)"),
        ("parameters", f"--runs {args.runs} --concurrent {args.concurrent} --interval {args.interval} "
                       f"--cpu-slots {args.cpu_slots} --workers {args.workers}"),
        ("task", f'one executor {{"image": "{TEST_IMAGE}", "command": {json.dumps(COMMAND)}}}'),
        ("baseline", " ".join(BASELINE)),
    ]


# --- the server and its tasks -------------------------------------------------------------------

class Client:
    def __init__(self, url: str):
        self.base = f"{url}/ga4gh/tes/v1"
        self.session = requests.Session()

    def submit(self, name: str) -> str:
        body = {"name": name, "executors": [{"image": TEST_IMAGE, "command": COMMAND}]}
        response = self.session.post(f"{self.base}/tasks", json=body, timeout=30)
        response.raise_for_status()
        return response.json()["id"]

    def state(self, task_id: str) -> str:
        response = self.session.get(f"{self.base}/tasks/{task_id}", timeout=30)
        response.raise_for_status()
        return response.json()["state"]

    def states(self, name_prefix: str) -> dict[str, str]:
        found, token = {}, None
        while True:
            params = {"name_prefix": name_prefix, "page_size": 2047, "view": "MINIMAL"}
            if token:
                params["page_token"] = token
            page = self.session.get(f"{self.base}/tasks", params=params, timeout=60).json()
            found.update({t["id"]: t["state"] for t in page.get("tasks", [])})
            token = page.get("next_page_token")
            if not token:
                return found


def one_task(client: Client, name: str) -> tuple[str, float, float, str]:
    """Submit, poll until terminal; (id, seconds from POST to the answer showing it, POST send
    time as Unix seconds, final state)."""
    sent_wall, started = time.time(), time.perf_counter()
    task_id = client.submit(name)
    while True:
        state = client.state(task_id)
        if state in TERMINAL:
            return task_id, time.perf_counter() - started, sent_wall, state
        if time.perf_counter() - started > TASK_TIMEOUT_S:
            raise TimeoutError(f"task {task_id} still {state} after {TASK_TIMEOUT_S:.0f}s")
        time.sleep(GET_EVERY_S)


def timeline(store: SqliteTaskDatabase, work_dir: Path, task_id: str) -> dict:
    """The moments of one task, as Unix seconds, from its history, the worker's result.json and
    the executor log."""
    record = store.get(task_id)
    phases = {}
    for entry in record.history:  # first time each phase was reached
        phases.setdefault(entry["phase"], seconds(entry["time"]))
    result = json.loads((work_dir / "runs" / task_id / "1" / "result.json").read_text())
    executor = result["executor_logs"][0]
    return {
        "created": record.created_us / 1e6,
        "preflight": phases["preflight"],
        "submitted": phases["submitted"],
        "worker_start": seconds(result["start_time"]),
        "container_start": seconds(executor["start_time"]),
        "container_end": seconds(executor["end_time"]),
        "worker_end": seconds(result["end_time"]),
        "complete": phases["complete"],
        "history": record.history,
        "attempts": len(record.logs),
    }


SEGMENTS = [
    # (label, from, to, what it is)
    ("POST -> stored", "sent", "created", "API: request, validation, SQLite insert, poller woken"),
    ("stored -> claimed", "created", "preflight", "the poller wakes and claims it"),
    ("claimed -> worker spawned", "preflight", "submitted", "job.json, the launcher forks the worker, worker.json"),
    ("spawned -> worker running", "submitted", "worker_start", "the forked worker starts"),
    ("worker -> container start", "worker_start", "container_start", "kill_all (list by label), staging, image check"),
    ("container", "container_start", "container_end", "the executor's container: create, attach, start, wait"),
    ("container end -> result", "container_end", "worker_end", "remove, kill_all, staging out, result.json"),
    ("result -> COMPLETE stored", "worker_end", "complete", "the worker wakes the poller: one state write"),
    ("COMPLETE -> client sees it", "complete", "seen", f"client GET every {GET_EVERY_S * 1000:.0f} ms"),
]


# --- the measurements --------------------------------------------------------------------------

def latency(client: Client, store: SqliteTaskDatabase, work_dir: Path, runs: int, tag: str):
    flags_command = ["docker", "run", "--rm", "--pull", "never", "--name", "", "--label", f"tes-cts-bench={tag}",
                     "--network", "none", "--security-opt", "no-new-privileges", TEST_IMAGE, *COMMAND]
    timed_docker(BASELINE)                      # warm-up, not counted
    one_task(client, f"overhead-{tag}-warmup")  # warm-up, not counted
    docker_s, docker_flags_s, ours_s, timelines = [], [], [], []
    for i in range(runs):
        docker_s.append(timed_docker(BASELINE))
        task_id, elapsed, sent, state = one_task(client, f"overhead-{tag}-latency-{i}")
        if state != "COMPLETE":
            raise RuntimeError(f"task {task_id} ended {state}, not COMPLETE")
        ours_s.append(elapsed)
        moments = timeline(store, work_dir, task_id)
        moments.update(sent=sent, seen=sent + elapsed, id=task_id, total=elapsed)
        timelines.append(moments)
        flags_command[6] = f"tes-cts-bench-{tag}-{i}"
        docker_flags_s.append(timed_docker(flags_command))
        print(f"  run {i + 1}/{runs}: docker run {ms(docker_s[-1])} ms, tes-cts {ms(elapsed)} ms", flush=True)
    return docker_s, docker_flags_s, ours_s, timelines


def docker_costs(runs: int) -> dict[str, float]:
    """Median of the short engine calls tes-cts makes around each container, as it makes them."""
    from tes_cts.jobfiles import ContainerSettings
    from tes_cts.worker.runtime import runtime_for

    runtime = runtime_for(ContainerSettings())
    calls = {
        "engine_problem (the poller, every dispatch cycle)": runtime.engine_problem,
        "kill_all: list by label (the worker, before and after its containers)": lambda: runtime.kill_all("none", 1),
        "image_present (the worker, once per image)": lambda: runtime.image_present(TEST_IMAGE),
    }
    measured = {}
    for label, call in calls.items():
        times = []
        for _ in range(max(10, runs)):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        measured[label] = median(times)
    return measured


def worker_startup(runs: int) -> dict[str, float]:
    """Python start-up plus imports, without running a job: what the launcher imports once, and
    what a `tes-cts worker` started by hand (or by HTCondor) imports."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    measured = {}
    for label, code in (("python -c pass", "pass"),
                        ("import tes_cts.worker.launcher (what the launcher loads once)", "import tes_cts.worker.launcher"),
                        ("import tes_cts.cli, tes_cts.worker.run (what `tes-cts worker` loads)",
                         "import tes_cts.cli, tes_cts.worker.run")):
        times = []
        for _ in range(max(3, runs // 2)):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=tempfile.gettempdir(), env=env)
            times.append(time.perf_counter() - started)
        measured[label] = median(times)
    return measured


def cpu_snapshot(server_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) so far, of every process in serve's tree, each with what it has
    reaped: the gunicorn master and workers ("api"), the embedded poller ("poller"), and under the
    poller the worker launcher, the workers it forked and the docker clients they ran, whether
    still running or already reaped ("workers"); the engine (dockerd, containerd; not the
    per-container shims); and this script's reaped children (the baseline's docker clients:
    "script children"). A worker runs in a session of its own but stays the launcher's child."""
    tick = os.sysconf("SC_CLK_TCK")
    processes = {}  # pid -> (ppid, comm, command line, own CPU, CPU of the children it reaped)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            raw = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm, fields = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        times = [int(f) / tick for f in fields[11:15]]  # utime, stime, cutime, cstime
        processes[int(proc.name)] = (int(fields[1]), comm, f" {cmdline} ", times[0] + times[1], times[2] + times[3])
    poller = next((pid for pid, (ppid, _, cmdline, _, _) in processes.items()
                   if ppid == server_pid and " poller " in cmdline), None)
    found = {"api": 0.0, "poller": 0.0, "workers": 0.0, "engine": 0.0}
    for pid, (ppid, comm, _, own, reaped) in processes.items():
        if comm in ("dockerd", "containerd"):
            found["engine"] += own
        elif pid == poller:  # what it reaped: launchers and workers of its own
            found["poller"] += own
            found["workers"] += reaped
        elif pid == server_pid or ppid == server_pid:
            found["api"] += own + reaped
        elif _descends_from(pid, poller, processes):
            found["workers"] += own + reaped
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    found["script children"] = usage.ru_utime + usage.ru_stime
    return found


def _descends_from(pid: int, ancestor: int | None, processes: dict) -> bool:
    while ancestor is not None and pid in processes and pid > 1:
        pid = processes[pid][0]
        if pid == ancestor:
            return True
    return False


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in before}


def docker_burst(count: int, parallel: int) -> float:
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: timed_docker(BASELINE), range(count)))
    return time.perf_counter() - started


def tes_burst(client_url: str, store: SqliteTaskDatabase, work_dir: Path, count: int, tag: str):
    prefix = f"overhead-{tag}-burst-"
    local = threading.local()

    def submit(i: int) -> str:
        if not hasattr(local, "client"):
            local.client = Client(client_url)
        return local.client.submit(f"{prefix}{i}")

    started_wall, started = time.time(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(min(count, 64)) as pool:
        ids = list(pool.map(submit, range(count)))
    submitted_s = time.perf_counter() - started
    watcher = Client(client_url)
    deadline = started + TASK_TIMEOUT_S + count * 10
    while True:
        states = watcher.states(prefix)
        if len(states) == count and all(s in TERMINAL for s in states.values()):
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"burst not finished: {sorted(states.values())}")
        time.sleep(LIST_EVERY_S)
    ended = [states[i] for i in ids]
    failures: dict[str, int] = {}
    for task_id in ids:
        if states[task_id] != "COMPLETE":
            record = store.get(task_id)
            reason = f"{record.history[-1]['state']}: {record.history[-1]['reason']}"
            failures[reason] = failures.get(reason, 0) + 1
    timelines = []
    for task_id in ids:
        if states[task_id] == "COMPLETE":
            moments = timeline(store, work_dir, task_id)
            moments.update(sent=started_wall, id=task_id)
            timelines.append(moments)
    # Until the last task was stored terminal (from its history), not until the list that saw it:
    # the list's period would count against the service, and listing more often costs API CPU.
    last_terminal = max(seconds(store.get(task_id).history[-1]["time"]) for task_id in ids)
    return last_terminal - started_wall, submitted_s, ended, failures, timelines, started_wall


# --- clean-up ------------------------------------------------------------------------------------

def stop_server(server: LiveServer) -> None:
    server.kill(signal.SIGTERM)


def stop_leftovers(work_dir: Path, tag: str) -> None:
    """Workers and containers of this run only (the engine may be shared with other runs)."""
    ours = {p.name for p in (work_dir / "runs").glob("*")} if (work_dir / "runs").exists() else set()
    for worker_file in (work_dir / "runs").glob("*/*/worker.json") if ours else ():
        try:
            os.killpg(json.loads(worker_file.read_text())["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError, ValueError, KeyError):
            pass
    listed = docker("ps", "-a", "--format", '{{.ID}} {{.Label "tes-cts.task"}} {{.Label "tes-cts-bench"}}',
                    check=False).stdout.split("\n")
    leftover = [fields[0] for fields in (line.split() for line in listed)
                if len(fields) >= 2 and (fields[1] in ours or fields[-1] == tag)]
    if leftover:
        docker("rm", "-f", *leftover, check=False)


# --- report --------------------------------------------------------------------------------------

def report_latency(docker_s, docker_flags_s, ours_s, timelines, interval: float, costs: dict, startup: dict):
    base_med, ours_med = median(docker_s), median(ours_s)
    overhead = ours_med - base_med
    rows = [
        ["docker run --rm --network none IMAGE true", ms(base_med), ms(p90(docker_s)), "1.00"],
        ["  same, with tes-cts's flags (--name, --label, --pull never, no-new-privileges)",
         ms(median(docker_flags_s)), ms(p90(docker_flags_s)), f"{median(docker_flags_s) / base_med:.2f}"],
        ["tes-cts: POST /tasks -> GET shows COMPLETE", ms(ours_med), ms(p90(ours_s)), f"{ours_med / base_med:.2f}"],
        ["overhead (median tes-cts - median docker run)", ms(overhead), "", ""],
    ]
    print(f"\nLatency, one task at a time ({len(ours_s)} runs each, alternating, after one warm-up of each)\n")
    print(table(["", "median ms", "p90 ms", "/ docker run"], rows))

    seg_rows = []
    for label, start, end, what in SEGMENTS:
        values = [t[end] - t[start] for t in timelines]
        seg_rows.append([label, ms(median(values)), ms(p90(values)), what])
    total = [t["total"] for t in timelines]
    seg_rows.append(["total (sum of the segments)", ms(median(total)), ms(p90(total)), ""])
    print("\nWhere a task's time goes (from the task's history in the store, the worker's result.json and the"
          "\nexecutor log; medians of each segment do not add up exactly to the median total)\n")
    print(table(["segment", "median ms", "p90 ms", "what"], seg_rows))

    dispatch_wait = [t["preflight"] - t["created"] for t in timelines]
    result_wait = [t["complete"] - t["worker_end"] for t in timelines]
    poller_wait = [a + b for a, b in zip(dispatch_wait, result_wait)]
    container = [t["container_end"] - t["container_start"] for t in timelines]
    not_container = [t["total"] - (t["container_end"] - t["container_start"]) for t in timelines]
    print(f"""
Waiting for the poller (poller.interval_s = {interval:g} s; a create and a finished worker wake it at once,
the interval is the safety net):
  stored -> claimed: median {ms(median(dispatch_wait))} ms, p90 {ms(p90(dispatch_wait))} ms; \
result -> COMPLETE stored: median {ms(median(result_wait))} ms, p90 {ms(p90(result_wait))} ms
  together {ms(median(poller_wait))} ms = {median(poller_wait) / overhead * 100:.0f}% of the {ms(overhead)} ms overhead
  the rest ({ms(overhead - median(poller_wait))} ms) is the worker process and its engine calls around the container:
    Python start-up and the worker's imports, measured alone (median of runs of `python -c CODE`;
    the launcher pays them once, each attempt's worker is forked from it):""")
    for label, value in startup.items():
        print(f"      {label}: {ms(value)} ms")
    print("    the worker's engine calls (Docker Engine API), measured alone in this process:")
    for label, value in costs.items():
        print(f"      {label}: {value * 1000:.1f} ms")
    print(f"  time outside the container, per task: median {ms(median(not_container))} ms "
          f"(container itself {ms(median(container))} ms)")
    example = sorted(timelines, key=lambda t: t["total"])[len(timelines) // 2]
    print(f"\nHistory of the median task {example['id']} (ms after POST):")
    for entry in example["history"]:
        print(f"  {ms(seconds(entry['time']) - example['sent']):>6}  {entry['state']:<12} {entry['phase']:<12} {entry['reason']}")
    return base_med, ours_med


def peak(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))
    level = highest = 0
    for _, step in events:
        level += step
        highest = max(highest, level)
    return highest


def report_throughput(count, slots, docker_burst_s, ours_s, submitted_s, ended, failures, timelines, started_wall,
                      cpu=None):
    complete = ended.count("COMPLETE")
    docker_rate, ours_rate = count / docker_burst_s * 60, count / ours_s * 60
    rows = [
        [f"docker run --rm, {slots} at a time", f"{docker_burst_s:.1f}", f"{docker_rate:.0f}", f"{count}/{count}", "1.00"],
        [f"tes-cts, {count} submitted at once, cpu_slots={slots}", f"{ours_s:.1f}", f"{ours_rate:.0f}",
         f"{complete}/{count}", f"{ours_rate / docker_rate:.2f}"],
    ]
    print(f"\nThroughput, {count} trivial containers (tes-cts: from the first POST until the last task was stored terminal;"
          f"\nsubmitting took {submitted_s:.1f} s)\n")
    print(table(["", "seconds", "tasks/min", "COMPLETE", "/ docker run"], rows))
    if complete != count:
        others = {s: ended.count(s) for s in set(ended) if s != "COMPLETE"}
        print(f"\n!! not every task ended COMPLETE: {others}; why (the last entry of their history):")
        for reason, times in sorted(failures.items(), key=lambda item: -item[1]):
            print(f"  {times} x {reason}")
    if cpu is not None:
        base_cpu, ours_cpu = cpu
        rows = [[label, f"{base_cpu[key]:.1f}", f"{ours_cpu[key]:.1f}"] for key, label in (
            ("script children", "docker clients run by this script (the baseline's docker run)"),
            ("api", "tes-cts serve: gunicorn master and workers (API)"),
            ("poller", "tes-cts poller"),
            ("workers", "tes-cts worker launcher, the workers it forked and what they ran"),
            ("engine", "dockerd + containerd (shared engine, per-container shims not counted)"),
        )]
        totals = [sum(base_cpu.values()), sum(ours_cpu.values())]
        rows.append(["total", f"{totals[0]:.1f}", f"{totals[1]:.1f}"])
        rows.append(["per container / task, ms", ms(totals[0] / count), ms(totals[1] / count)])
        print(f"\nCPU seconds spent during each burst ({slots} cores = {slots * 60} CPU-seconds a minute)\n")
        print(table(["", "docker run burst", "tes-cts burst"], rows))
    if not timelines:
        return docker_rate, ours_rate
    first = started_wall
    last = max(t["complete"] for t in timelines)
    slot_time = slots * (last - first)
    held = sum(t["complete"] - t["preflight"] for t in timelines)
    parts = [
        ("claimed, worker being spawned", sum(t["submitted"] - t["preflight"] for t in timelines)),
        ("worker start-up (spawned -> running)", sum(t["worker_start"] - t["submitted"] for t in timelines)),
        ("worker before and after its container", sum((t["container_start"] - t["worker_start"])
                                                      + (t["worker_end"] - t["container_end"]) for t in timelines)),
        ("in a container (the docker run client)", sum(t["container_end"] - t["container_start"] for t in timelines)),
        ("result written, not yet noticed by the poller", sum(t["complete"] - t["worker_end"] for t in timelines)),
    ]
    queue_wait = [t["preflight"] - t["created"] for t in timelines]
    walls = [t["complete"] - t["preflight"] for t in timelines]
    startup = [t["worker_start"] - t["submitted"] for t in timelines]
    container = [t["container_end"] - t["container_start"] for t in timelines]
    claimed_peak = peak([(t["preflight"], t["complete"]) for t in timelines])
    print(f"""
Where the tasks' time went between claim and COMPLETE stored (a task holds a CPU slot all along):
  makespan {last - first:.1f} s (first POST to last COMPLETE stored) x {slots} slots = {slot_time:.0f} slot-seconds offered;
  slot-seconds held by the tasks: {held:.0f} ({held / slot_time:.2f} x what {slots} slots offer)""")
    for label, value in parts:
        print(f"  {label:<48}{value:7.1f} s  {value / held * 100:4.0f}%")
    if held > slot_time * 1.05 or claimed_peak > slots:
        print(f"  !! more tasks held a slot at once than cpu_slots={slots} allows (peak {claimed_peak})")
    print(f"""  peak at one moment: {claimed_peak} tasks claimed, {peak([(t["submitted"], t["worker_end"]) for t in timelines])} \
workers running, {peak([(t["container_start"], t["container_end"]) for t in timelines])} containers (cpu_slots={slots})
  per task, claim -> COMPLETE stored: median {ms(median(walls))} ms, p90 {ms(p90(walls))} ms
  per task, worker start-up (spawned -> running): median {ms(median(startup))} ms, p90 {ms(p90(startup))} ms
  per task, container (docker run client): median {ms(median(container))} ms, p90 {ms(p90(container))} ms
  per task, waiting QUEUED: median {median(queue_wait):.1f} s, max {max(queue_wait):.1f} s
  tasks with more than one attempt: {sum(1 for t in timelines if t['attempts'] > 1)}""")
    return docker_rate, ours_rate


def report_ratios(latencies: tuple[float, float], rates: tuple[float, float], cpu, count: int, slots: int) -> None:
    """The three figures the service is held to, on one table."""
    base_cpu, ours_cpu = cpu
    base_client = base_cpu["script children"] / count
    ours_service = (ours_cpu["api"] + ours_cpu["poller"] + ours_cpu["workers"]) / count
    rows = [
        ["one trivial task, POST to COMPLETE seen (median ms)", ms(latencies[0]), ms(latencies[1]),
         f"{latencies[1] / latencies[0]:.2f}", "at most 1.25"],
        [f"{count} trivial tasks, {slots} slots (tasks/min)", f"{rates[0]:.0f}", f"{rates[1]:.0f}",
         f"{rates[1] / rates[0]:.2f}", "at least 0.9"],
        ["CPU per task: docker run's client / API + poller + workers (ms)", ms(base_client), ms(ours_service),
         f"{ours_service / base_client:.2f}", "at most 1.5"],
        ["engine CPU per task, apart (ms)", ms(base_cpu["engine"] / count), ms(ours_cpu["engine"] / count),
         f"{ours_cpu['engine'] / base_cpu['engine']:.2f}", ""],
    ]
    print("\nThe three ratios (tes-cts / docker run, same run)\n")
    print(table(["", "docker run", "tes-cts", "ratio", "goal"], rows))


def default_interval_s(scratch: Path) -> float:
    """poller.interval_s as serve reads it in `scratch` with no TES_CTS_* variable (LiveServer passes none)."""
    from tes_cts.settings import load_settings

    saved_env = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("TES_CTS_")}
    saved_cwd = os.getcwd()
    try:
        os.chdir(scratch)
        return float(load_settings().poller.interval_s)
    finally:
        os.chdir(saved_cwd)
        os.environ.update(saved_env)


# --- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="sequential runs of each for latency (default 20)")
    parser.add_argument("--concurrent", type=int, default=100, help="tasks and containers of the throughput run (default 100)")
    parser.add_argument("--interval", type=float, help="poller.interval_s of the server (default: the setting's default)")
    parser.add_argument("--cpu-slots", type=int, default=os.cpu_count(),
                        help=f"local.cpu_slots, and the baseline's parallel docker runs (default: cores, {os.cpu_count()})")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers of the server (default 1, the setting's default)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work dir (store, run dirs, server log)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.concurrent < 1 or args.cpu_slots < 1 or (args.interval is not None and args.interval <= 0):
        parser.error("--runs, --concurrent and --cpu-slots must be at least 1, --interval above 0")

    problem = docker_reachable()
    if problem:
        print(f"overhead.py: {problem} (DOCKER_HOST={docker_env()['DOCKER_HOST']}); start the engine or set DOCKER_HOST",
              file=sys.stderr)
        return 2
    ensure_test_image()
    os.environ["DOCKER_HOST"] = docker_env()["DOCKER_HOST"]  # the engine calls this script times itself

    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    tag = secrets.token_hex(3)
    scratch = Path(tempfile.mkdtemp(prefix="tes-cts-overhead-"))
    work_dir = scratch / "work"
    server = store = None
    interval_given = args.interval is not None
    if not interval_given:
        args.interval = default_interval_s(scratch)
    print("# tes-cts overhead over docker run\n")
    for key, value in machine_facts(args):
        print(f"{key + ':':<23}{value}")
    try:
        env = {
            "DOCKER_HOST": docker_env()["DOCKER_HOST"],
            "TES_CTS_WORK_DIR": str(work_dir),
            **({"TES_CTS_POLLER__INTERVAL_S": str(args.interval)} if interval_given else {}),
            "TES_CTS_LOCAL__CPU_SLOTS": str(args.cpu_slots),
            # serve, its poller and every worker run the code of this checkout, as this script does
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
        server = LiveServer(scratch, ["--workers", str(args.workers)], env).wait_ready()
        store = SqliteTaskDatabase(work_dir / "tes-cts.sqlite3")
        client = Client(server.url)
        print(f"server:                {server.url} (work dir {work_dir})\n")

        print(f"Latency: {args.runs} runs of docker run and tes-cts, alternating")
        docker_s, flags_s, ours_s, timelines = latency(client, store, work_dir, args.runs, tag)
        costs, startup = docker_costs(args.runs), worker_startup(args.runs)

        print(f"Throughput: {args.concurrent} containers, docker run {args.cpu_slots} at a time, then tes-cts", flush=True)
        before = cpu_snapshot(server.process.pid)
        docker_burst_s = docker_burst(args.concurrent, args.cpu_slots)
        middle = cpu_snapshot(server.process.pid)
        ours_burst = tes_burst(server.url, store, work_dir, args.concurrent, tag)
        time.sleep(2 * args.interval + 1)  # the poller reaps the last workers: their CPU time counts
        after = cpu_snapshot(server.process.pid)
        cpu = (cpu_delta(before, middle), cpu_delta(middle, after))

        print("\n## Results")
        latencies = report_latency(docker_s, flags_s, ours_s, timelines, args.interval, costs, startup)
        rates = report_throughput(args.concurrent, args.cpu_slots, docker_burst_s, *ours_burst, cpu=cpu)
        report_ratios(latencies, rates, cpu, args.concurrent, args.cpu_slots)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\nTotal time of this run: {time.perf_counter() - started:.0f} s; load average at the end: {load}")
        return 0 if ours_burst[2].count("COMPLETE") == args.concurrent else 1
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"\noverhead.py: stopped ({exc or 'Ctrl-C'})", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        if store is not None:
            store.close()
        if server is not None:
            stop_server(server)
        stop_leftovers(work_dir, tag)
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
