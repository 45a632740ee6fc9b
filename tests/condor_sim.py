"""A simulated HTCondor schedd with execute slots on this host, for tests (no HTCondor daemon can
be installed where the tests run).

It accepts exactly the calls the HTCondor backend makes, with htcondor2's signatures:
`submit(htcondor2.Submit, count)`, `query(constraint, projection, limit)`,
`history(constraint, projection, match)` and `act(JobAction.Remove, job_spec, reason)`; anything
else it does not model raises NotImplementedError. Job ads are real classad2 ads, and constraints,
`requirements` and `periodic_remove` are evaluated by classad2 as a schedd and negotiator would.

What a pool does, it does for real: it matches idle jobs to slots, runs the job's executable in a
scratch directory of its own with the transferred input files and the job's environment (nothing
inherited), sends KillSig on removal and eviction and kills after JobMaxVacateTime, brings
`output`, `error` and `transfer_output_files` back to `initialdir` (holding the job, as HTCondor
does, when an output file is missing), keeps evicted jobs' outputs in a spool for their next run,
and moves finished and removed jobs to the history. Tests can also make it do what a pool does
on its own: hold, evict, remove (as an admin), forget a job, or stop answering.
"""

from __future__ import annotations

import collections
import errno
import getpass
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import classad2
import htcondor2

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5

# Submit command -> (job attribute, how its value is read). Others are refused: the simulator
# must know every command it is given.
SUBMIT_COMMANDS = {
    "universe": ("JobUniverse", "universe"),
    "executable": ("Cmd", "string"),
    "arguments": ("Arguments", "string"),
    "environment": ("Environment", "string"),
    "getenv": ("GetEnv", "bool"),
    "initialdir": ("Iwd", "string"),
    "should_transfer_files": ("ShouldTransferFiles", "string"),
    "when_to_transfer_output": ("WhenToTransferOutput", "string"),
    "transfer_executable": ("TransferExecutable", "bool"),
    "transfer_input_files": ("TransferInput", "string"),
    "transfer_output_files": ("TransferOutput", "string"),
    "output": ("Out", "string"),
    "error": ("Err", "string"),
    "request_cpus": ("RequestCpus", "int"),
    "request_memory": ("RequestMemory", "int"),
    "request_disk": ("RequestDisk", "int"),
    "requirements": ("Requirements", "expression"),
    "periodic_remove": ("PeriodicRemove", "expression"),
    "kill_sig": ("KillSig", "string"),
    "job_max_vacate_time": ("JobMaxVacateTime", "int"),
    "accounting_group": ("AcctGroup", "string"),
    "accounting_group_user": ("AcctGroupUser", "string"),
    "concurrency_limits": ("ConcurrencyLimits", "string"),
}
UNIVERSES = {"vanilla": 5}
DEFAULT_REQUEST_MEMORY_MB = 128
DEFAULT_REQUEST_DISK_KB = 1024


def condor_words(quoted: str) -> list[str]:
    """HTCondor's quoted argument syntax, read the way the condor_starter reads it: outer double
    quotes, `""` for a double quote, words split at white space outside single quotes, `''` for a
    single quote inside them."""
    if not (len(quoted) >= 2 and quoted[0] == quoted[-1] == '"'):
        raise ValueError(f"not in HTCondor's quoted syntax: {quoted!r}")
    raw = quoted[1:-1].replace('""', '"')
    words, word, in_word, quoted_part, i = [], [], False, False, 0
    while i < len(raw):
        char = raw[i]
        if char == "'":
            if quoted_part and raw[i + 1:i + 2] == "'":
                word.append("'")
                i += 1
            else:
                quoted_part, in_word = not quoted_part, True
        elif char.isspace() and not quoted_part:
            if in_word:
                words.append("".join(word))
            word, in_word = [], False
        else:
            word.append(char)
            in_word = True
        i += 1
    if quoted_part:
        raise ValueError(f"unbalanced single quote in {quoted!r}")
    if in_word:
        words.append("".join(word))
    return words


def condor_environment(quoted: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in condor_words(quoted)) if quoted else {}


@dataclass
class Slot:
    ad: classad2.ClassAd
    job: str | None = None

    @property
    def name(self) -> str:
        return self.ad["Name"]


@dataclass
class Execution:
    """A job's executable running in a slot, and what happens once it is gone."""

    process: subprocess.Popen | None
    slot: Slot
    scratch: Path
    then: str = "exit"                       # "exit", "remove", "hold", "evict" or "forget"
    kill_at: float | None = None             # when a still-running process is killed hard


class SimulatedSubmitResult:
    def __init__(self, cluster: int, count: int, ad: classad2.ClassAd):
        self._cluster, self._count, self._ad = cluster, count, ad

    def cluster(self) -> int:
        return self._cluster

    def first_proc(self) -> int:
        return 0

    def num_procs(self) -> int:
        return self._count

    def clusterad(self) -> classad2.ClassAd:
        return self._ad


class SimulatedSchedd:
    def __init__(self, root: Path, slots: int = 2, cpus: int = 1, memory_mb: int = 4096,
                 disk_kb: int = 50 * 1024 * 1024, machine: str = "sim-node",
                 concurrency_limits: dict[str, int] | None = None, tick_s: float = 0.05):
        self.root = Path(root)
        self.execute_dir = self.root / "execute"
        self.spool_dir = self.root / "spool"
        self.slots = [Slot(_machine_ad(f"slot{n}@{machine}", machine, cpus, memory_mb, disk_kb))
                      for n in range(1, slots + 1)]
        self.concurrency_limits = dict(concurrency_limits or {})
        self.queue: dict[str, classad2.ClassAd] = {}
        self.history_ads: list[classad2.ClassAd] = []       # oldest first
        self.executions: dict[str, Execution] = {}
        self.calls: collections.Counter = collections.Counter()
        self.unreachable: str | None = None                # set: every call fails with this
        self._clusters = itertools.count(1)
        self._scratch_numbers = itertools.count(1)
        self._lock = threading.RLock()
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the htcondor2.Schedd calls the backend makes ------------------------------------------

    def submit(self, description, count: int = 0, spool: bool = False, itemdata=None, queue: str | None = None):
        self._called("submit")
        if not isinstance(description, htcondor2.Submit):
            raise TypeError("description must be an htcondor2.Submit object")
        if spool or itemdata is not None or queue is not None:
            raise NotImplementedError("spool, itemdata and queue are not simulated")
        with self._lock:
            template = self._job_ad(description)
            cluster = next(self._clusters)
            now = int(time.time())
            for proc in range(count or 1):
                ad = _project(template, ())
                ad.update({"ClusterId": cluster, "ProcId": proc, "GlobalJobId": f"sim#{cluster}.{proc}#{now}",
                           "QDate": now, "JobStatus": IDLE, "EnteredCurrentStatus": now, "Owner": getpass.getuser(),
                           "NumJobStarts": 0, "JobRunCount": 0, "NumHolds": 0})
                self.queue[f"{cluster}.{proc}"] = ad
            return SimulatedSubmitResult(cluster, count or 1, template)

    def query(self, constraint="True", projection=(), callback=None, limit: int = -1, opts=None) -> list:
        self._called("query")
        if callback is not None:
            raise NotImplementedError("query callbacks are not simulated")
        with self._lock:
            return _select(list(self.queue.values()), constraint, projection, limit)

    def history(self, constraint=None, projection=(), match: int = -1, since=None) -> list:
        self._called("history")
        if since is not None:
            raise NotImplementedError("history(since=...) is not simulated")
        with self._lock:
            return _select(list(reversed(self.history_ads)), constraint or "true", projection, match)

    def act(self, action, job_spec, reason: str | None = None) -> classad2.ClassAd:
        self._called("act")
        if not isinstance(action, htcondor2.JobAction):
            raise TypeError("action must be a JobAction")
        if action != htcondor2.JobAction.Remove:
            raise NotImplementedError(f"{action!r} is not simulated")
        with self._lock:
            ids = self._job_ids(job_spec)
            done = [job for job in ids if job in self.queue and self.queue[job]["JobStatus"] != REMOVED]
            for job in done:
                self._remove(job, reason or "Python-initiated action")
            result = classad2.ClassAd()
            result.update({"TotalSuccess": len(done), "TotalNotFound": len([j for j in ids if j not in self.queue]),
                           "TotalBadStatus": len(ids) - len(done) - len([j for j in ids if j not in self.queue]),
                           "TotalJobAds": len(ids), "TotalChangedAds": len(done)})
            return result

    # --- what a pool does on its own ----------------------------------------------------------

    def hold(self, job: str, reason: str, code: int, subcode: int = 0) -> None:
        """Like condor_hold or a hold policy: a running job is killed at once."""
        with self._lock:
            self._hold(job, reason, code, subcode)

    def evict(self, job: str, reason: str = "Claim deactivated") -> None:
        """Like a preemption or a draining machine: KillSig, then the job is idle again."""
        with self._lock:
            self.queue[job]["VacateReason"] = reason
            self._stop_execution(job, "evict", soft=True)

    def remove(self, job: str, reason: str) -> None:
        """Like condor_rm by someone else."""
        with self._lock:
            self._remove(job, reason)

    def forget(self, job: str) -> None:
        """The schedd loses the job: gone from the queue, never written to the history."""
        with self._lock:
            if job in self.executions:
                self._stop_execution(job, "forget", soft=False)
            self.queue.pop(job, None)

    def wait_until(self, condition, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if condition(self):
                    return
            time.sleep(0.05)
        raise AssertionError(f"the simulated pool did not reach the expected state within {timeout}s")

    def status_of(self, job: str) -> int | None:
        with self._lock:
            ad = self.queue.get(job)
            return ad["JobStatus"] if ad is not None else None

    # --- running ----------------------------------------------------------------------------

    def start(self) -> SimulatedSchedd:
        self._thread = threading.Thread(target=self._run, name="simulated-condor", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for execution in self.executions.values():
                _signal(execution, signal.SIGKILL)
                if execution.process is not None:
                    execution.process.wait(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            self.step()

    def step(self) -> None:
        """One pass of the pool: finish what ended, apply job policies, match and start jobs."""
        with self._lock:
            for job, execution in list(self.executions.items()):
                self._follow(job, execution)
            for job, ad in list(self.queue.items()):
                if ad["JobStatus"] != REMOVED and "PeriodicRemove" in ad and ad.eval("PeriodicRemove") is True:
                    self._remove(job, f"The job attribute PeriodicRemove expression '{ad['PeriodicRemove']}' evaluated to TRUE")
            for job, ad in sorted(self.queue.items(), key=lambda item: (item[1]["ClusterId"], item[1]["ProcId"])):
                if ad["JobStatus"] == IDLE and job not in self.executions:
                    self._negotiate(job, ad)

    def _called(self, method: str) -> None:
        self.calls[method] += 1
        if self.unreachable:
            raise htcondor2.HTCondorException(self.unreachable)

    # --- submission ---------------------------------------------------------------------------

    def _job_ad(self, description) -> classad2.ClassAd:
        ad = classad2.ClassAd()
        for command, value in description.items():
            key = command.lower()
            if key.startswith("my.") or key.startswith("+"):
                ad[command.split(".", 1)[-1].lstrip("+")] = _expression(value, command)
                continue
            if key not in SUBMIT_COMMANDS:
                raise NotImplementedError(f"submit command {command!r} is not simulated")
            attribute, kind = SUBMIT_COMMANDS[key]
            ad[attribute] = _read(kind, value, command)
        iwd = Path(ad.get("Iwd") or os.getcwd())
        if not iwd.is_dir():
            raise htcondor2.HTCondorException(f"initialdir {iwd} does not exist")
        if not str(ad.get("Cmd", "")).startswith("/"):
            raise htcondor2.HTCondorException("executable must be an absolute path on the execute node")
        for name in _names(ad.get("TransferInput")):
            if not (iwd / name).exists():
                raise htcondor2.HTCondorException(f"Can't open \"{iwd / name}\" for reading: No such file or directory")
        ad.setdefault("RequestCpus", 1)
        ad.setdefault("RequestMemory", DEFAULT_REQUEST_MEMORY_MB)
        ad.setdefault("RequestDisk", DEFAULT_REQUEST_DISK_KB)
        given = str(ad["Requirements"]) if "Requirements" in ad else "true"
        # condor_submit adds what the requests need from the machine, as here.
        ad["Requirements"] = classad2.ExprTree(
            f"({given}) && (TARGET.Cpus >= RequestCpus) && (TARGET.Memory >= RequestMemory) && (TARGET.Disk >= RequestDisk)")
        if "AcctGroup" in ad:
            ad["AccountingGroup"] = f"{ad['AcctGroup']}.{ad.get('AcctGroupUser', getpass.getuser())}"
        return ad

    def _job_ids(self, job_spec) -> list[str]:
        if isinstance(job_spec, list):
            return [spec if "." in spec else f"{spec}.0" for spec in job_spec]
        if isinstance(job_spec, int):
            return [job for job, ad in self.queue.items() if ad["ClusterId"] == job_spec]
        return [job for job, ad in self.queue.items() if _matches(ad, job_spec)]

    # --- matching and running -----------------------------------------------------------------

    def _negotiate(self, job: str, ad: classad2.ClassAd) -> None:
        now = int(time.time())
        candidates = [slot for slot in self.slots if ad.symmetricMatch(slot.ad)]
        if not candidates:
            ad.update({"LastRejMatchReason": "no match found ", "LastRejMatchTime": now})
            return
        limit = ad.get("ConcurrencyLimits")
        if limit and limit in self.concurrency_limits:
            using = sum(1 for other in self.executions if self.queue.get(other, {}).get("ConcurrencyLimits") == limit)
            if using >= self.concurrency_limits[limit]:
                ad.update({"LastRejMatchReason": f"concurrency limit {limit} reached", "LastRejMatchTime": now})
                return
        free = [slot for slot in candidates if slot.job is None]
        if not free:
            ad.update({"LastRejMatchReason": "PREEMPTION_REQUIREMENTS == False ", "LastRejMatchTime": now})
            return
        self._execute(job, ad, free[0])

    def _execute(self, job: str, ad: classad2.ClassAd, slot: Slot) -> None:
        scratch = self.execute_dir / f"dir_{next(self._scratch_numbers)}"
        scratch.mkdir(parents=True)
        iwd = Path(ad["Iwd"])
        for name in _names(ad.get("TransferInput")):
            _copy(iwd / name, scratch / Path(name).name)
        spooled = self.spool_dir / job
        if spooled.exists():  # outputs an eviction kept come back for the next run
            shutil.copytree(spooled, scratch, dirs_exist_ok=True)
            shutil.rmtree(spooled)
        environment = condor_environment(ad.get("Environment", ""))
        environment.update({"_CONDOR_SCRATCH_DIR": str(scratch), "_CONDOR_SLOT": slot.name.split("@")[0],
                            "TMPDIR": str(scratch)})
        command = [ad["Cmd"], *condor_words(ad.get("Arguments") or '""')]
        slot.job = job
        now = int(time.time())
        try:
            with open(scratch / "_condor_stdout", "wb") as out, open(scratch / "_condor_stderr", "wb") as err:
                process = subprocess.Popen(command, cwd=scratch, env=environment, stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=err, start_new_session=True)
        except OSError as exc:
            slot.job = None
            self._hold(job, f"Error from {slot.name}: Failed to execute '{ad['Cmd']}': (errno={exc.errno}) {exc.strerror}",
                       6, exc.errno or 0)
            return
        self.executions[job] = Execution(process, slot, scratch)
        ad.update({"JobStatus": RUNNING, "EnteredCurrentStatus": now, "JobCurrentStartDate": now, "RemoteHost": slot.name,
                   "NumJobStarts": ad["NumJobStarts"] + 1, "JobRunCount": ad["JobRunCount"] + 1})

    def _follow(self, job: str, execution: Execution) -> None:
        process = execution.process
        if process is not None and process.poll() is None:
            if execution.kill_at is not None and time.time() >= execution.kill_at:
                _signal(execution, signal.SIGKILL)
            return
        del self.executions[job]
        execution.slot.job = None
        ad = self.queue.get(job)
        if ad is not None:
            getattr(self, f"_after_{execution.then}")(job, ad, execution)
        shutil.rmtree(execution.scratch, ignore_errors=True)

    def _after_exit(self, job: str, ad: classad2.ClassAd, execution: Execution) -> None:
        iwd = Path(ad["Iwd"])
        for stream, attribute in (("_condor_stdout", "Out"), ("_condor_stderr", "Err")):
            if ad.get(attribute):
                _copy(execution.scratch / stream, iwd / ad[attribute])
        for name in _names(ad.get("TransferOutput")):
            source = execution.scratch / name
            if not source.exists():
                self._hold(job, f"Error from {execution.slot.name}: STARTER failed to send file(s): reading from "
                                f"file {source}: (errno {errno.ENOENT}) No such file or directory", 12, errno.ENOENT)
                return
            _copy(source, iwd / name)
        code = execution.process.returncode
        ad.update({"ExitBySignal": code < 0, "CompletionDate": int(time.time()), "LastRemoteHost": execution.slot.name})
        ad.update({"ExitSignal": -code} if code < 0 else {"ExitCode": code})
        self._leave(job, ad, COMPLETED)

    def _after_remove(self, job: str, ad: classad2.ClassAd, execution: Execution) -> None:
        ad["LastRemoteHost"] = execution.slot.name
        self._leave(job, ad, REMOVED)

    def _after_hold(self, job: str, ad: classad2.ClassAd, execution: Execution) -> None:
        ad["LastRemoteHost"] = execution.slot.name

    def _after_forget(self, job: str, ad: classad2.ClassAd, execution: Execution) -> None:
        pass

    def _after_evict(self, job: str, ad: classad2.ClassAd, execution: Execution) -> None:
        if ad.get("WhenToTransferOutput") == "ON_EXIT_OR_EVICT":
            for name in _names(ad.get("TransferOutput")):
                if (execution.scratch / name).exists():
                    _copy(execution.scratch / name, self.spool_dir / job / name)
        now = int(time.time())
        ad.update({"JobStatus": IDLE, "EnteredCurrentStatus": now, "LastVacateTime": now,
                   "LastRemoteHost": execution.slot.name})
        del ad["RemoteHost"]

    def _stop_execution(self, job: str, then: str, soft: bool) -> None:
        execution = self.executions[job]
        execution.then = then
        if soft:
            _signal(execution, getattr(signal, self.queue[job].get("KillSig", "SIGTERM")))
            execution.kill_at = time.time() + self.queue[job].get("JobMaxVacateTime", 10)
        else:
            _signal(execution, signal.SIGKILL)

    def _remove(self, job: str, reason: str) -> None:
        ad = self.queue[job]
        ad.update({"JobStatus": REMOVED, "EnteredCurrentStatus": int(time.time()), "RemoveReason": reason})
        if job in self.executions:
            self._stop_execution(job, "remove", soft=True)
        else:
            self._leave(job, ad, REMOVED)

    def _hold(self, job: str, reason: str, code: int, subcode: int) -> None:
        ad = self.queue[job]
        ad.update({"JobStatus": HELD, "EnteredCurrentStatus": int(time.time()), "HoldReason": reason,
                   "HoldReasonCode": code, "HoldReasonSubCode": subcode, "NumHolds": ad["NumHolds"] + 1})
        if "RemoteHost" in ad:
            del ad["RemoteHost"]
        if job in self.executions:
            self._stop_execution(job, "hold", soft=False)

    def _leave(self, job: str, ad: classad2.ClassAd, status: int) -> None:
        ad.update({"JobStatus": status, "EnteredCurrentStatus": int(time.time())})
        if "RemoteHost" in ad:
            del ad["RemoteHost"]
        self.queue.pop(job, None)
        self.history_ads.append(ad)


def _machine_ad(name: str, machine: str, cpus: int, memory_mb: int, disk_kb: int) -> classad2.ClassAd:
    ad = classad2.ClassAd({"Name": name, "Machine": machine, "Cpus": cpus, "Memory": memory_mb, "Disk": disk_kb,
                           "Arch": "X86_64", "OpSys": "LINUX", "HasFileTransfer": True})
    ad["Requirements"] = classad2.ExprTree("true")
    return ad


def _select(ads: list, constraint, projection, limit: int) -> list:
    chosen = []
    for ad in ads:
        if _matches(ad, constraint):
            chosen.append(_project(ad, projection))
            if 0 <= limit <= len(chosen):
                break
    return chosen


def _matches(ad: classad2.ClassAd, constraint) -> bool:
    expression = constraint if isinstance(constraint, classad2.ExprTree) else classad2.ExprTree(str(constraint))
    return expression.eval(ad) is True


def _project(ad: classad2.ClassAd, projection) -> classad2.ClassAd:
    """A copy of the ad with the projected attributes (all with an empty projection)."""
    copy = classad2.ClassAd()
    for name in projection or list(ad.keys()):
        if name in ad:
            copy[name] = ad.lookup(name)
    return copy


def _expression(value: str, command: str) -> classad2.ExprTree:
    try:
        return classad2.ExprTree(value)
    except classad2.ClassAdException:
        raise htcondor2.HTCondorException(f"{command}: cannot parse {value!r} as a ClassAd expression") from None


def _read(kind: str, value: str, command: str):
    if kind == "string":
        return value
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise htcondor2.HTCondorException(f"{command}: {value!r} is not an integer") from None
    if kind == "bool":
        if value.lower() not in ("true", "false"):
            raise htcondor2.HTCondorException(f"{command}: {value!r} is not true or false")
        return value.lower() == "true"
    if kind == "universe":
        if value.lower() not in UNIVERSES:
            raise NotImplementedError(f"universe {value!r} is not simulated")
        return UNIVERSES[value.lower()]
    return _expression(value, command)


def _names(listed: str | None) -> list[str]:
    return [name.strip() for name in (listed or "").split(",") if name.strip()]


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.exists():
        shutil.copy2(source, target)


def _signal(execution: Execution, number: int) -> None:
    if execution.process is not None and execution.process.poll() is None:
        try:
            os.killpg(execution.process.pid, number)
        except ProcessLookupError:
            pass
