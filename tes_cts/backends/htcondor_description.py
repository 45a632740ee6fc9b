"""The HTCondor submit description of one task attempt.

One vanilla-universe job runs the worker on an execute node: the job file goes in, and
`result.json` with the executors' full logs comes back to the attempt's run directory
(`initialdir`) on the submit side. The job carries attributes naming the service, task, attempt
and owner, so that one query finds every job of the service and an admin can tell what a job is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import classad2

from ..jobfiles import JOB_FILE, LOGS_DIR, RESULT_FILE, Job

SERVICE_ATTRIBUTE = "TesService"
TASK_ATTRIBUTE = "TesTaskId"
ATTEMPT_ATTRIBUTE = "TesAttempt"
OWNER_ATTRIBUTE = "TesOwner"
RUNTIME_LIMIT_ATTRIBUTE = "TesRuntimeLimit"

WORKER_OUT = "worker.out"
WORKER_ERR = "worker.err"
# What HTCondor brings back to initialdir when the job exits.
OUTPUT_FILES = (RESULT_FILE, LOGS_DIR)
# Removal and eviction send SIGTERM; the worker then stops its containers and records that, and
# gets this long before HTCondor kills it.
STOP_GRACE_S = 60
REQUIREMENTS_PARAMETER = "requirements"


@dataclass(frozen=True)
class JobTemplate:
    """What every job of this service shares, from settings."""

    service_id: str
    worker_command: tuple[str, ...]             # on the execute node; the job file's name is appended
    environment: dict[str, str] = field(default_factory=dict)
    requirements: str = ""                      # ClassAd expression every machine must satisfy
    accounting_group: str = ""                  # each owner is an accounting user within it
    concurrency_limit: str = ""                 # each owner's jobs count against <limit>.<owner>
    # The worker stops itself at the runtime limit; the pool removes the job this long after,
    # if it did not.
    runtime_limit_grace_s: int = 30


def describe(job: Job, owner: str, template: JobTemplate) -> dict[str, str]:
    """Submit commands for `job`; raises ValueError naming what cannot be submitted."""
    description = {
        **_worker_run(job, template),
        **_requests(job),
        **_job_attributes(job, owner, template),
        **_requirements(job, template),
        **_accounting(owner, template),
        **_runtime_limit(job, template),
    }
    for command, value in description.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"the HTCondor submit command {command} cannot hold a line break: {value!r}")
    return description


def _worker_run(job: Job, template: JobTemplate) -> dict[str, str]:
    """The worker, its files both ways, and how it is stopped."""
    return {
        "universe": "vanilla",
        "executable": template.worker_command[0],
        "arguments": condor_arguments([*template.worker_command[1:], JOB_FILE]),
        "transfer_executable": "false",
        "initialdir": job.run_dir,
        "should_transfer_files": "YES",
        "transfer_input_files": JOB_FILE,
        "when_to_transfer_output": "ON_EXIT_OR_EVICT",
        "transfer_output_files": ", ".join(OUTPUT_FILES),
        "output": WORKER_OUT,
        "error": WORKER_ERR,
        "getenv": "false",
        "environment": condor_environment(template.environment),
        "kill_sig": "SIGTERM",
        "job_max_vacate_time": str(STOP_GRACE_S),
    }


def _requests(job: Job) -> dict[str, str]:
    """The task's resources: CPUs always, memory (MiB) and disk (KiB) when it asks."""
    resources = job.task.get("resources") or {}
    requests = {"request_cpus": str(int(resources.get("cpu_cores") or 1))}
    if resources.get("ram_gb"):
        requests["request_memory"] = str(math.ceil(float(resources["ram_gb"]) * 1024))
    if resources.get("disk_gb"):
        requests["request_disk"] = str(math.ceil(float(resources["disk_gb"]) * 1024 * 1024))
    return requests


def _job_attributes(job: Job, owner: str, template: JobTemplate) -> dict[str, str]:
    return {
        f"MY.{SERVICE_ATTRIBUTE}": classad2.quote(template.service_id),
        f"MY.{TASK_ATTRIBUTE}": classad2.quote(job.task_id),
        f"MY.{ATTEMPT_ATTRIBUTE}": str(job.attempt),
        f"MY.{OWNER_ATTRIBUTE}": classad2.quote(owner),
    }


def _requirements(job: Job, template: JobTemplate) -> dict[str, str]:
    requirements = [r for r in (template.requirements, task_requirements(job)) if r]
    return {"requirements": " && ".join(f"({r})" for r in requirements)} if requirements else {}


def _accounting(owner: str, template: JobTemplate) -> dict[str, str]:
    """The owner as an accounting user of the group, and its own concurrency limit."""
    accounting = {}
    if template.accounting_group:
        accounting["accounting_group"] = template.accounting_group
        accounting["accounting_group_user"] = owner_name(owner)
    if template.concurrency_limit:
        accounting["concurrency_limits"] = f"{template.concurrency_limit}.{owner_name(owner)}"
    return accounting


def _runtime_limit(job: Job, template: JobTemplate) -> dict[str, str]:
    """The pool removes a running job that outlives its limit by the template's grace."""
    if not job.runtime_limit_s:
        return {}
    return {
        f"MY.{RUNTIME_LIMIT_ATTRIBUTE}": str(math.ceil(job.runtime_limit_s)),
        "periodic_remove": (f"(JobStatus == 2) && (time() - JobCurrentStartDate > "
                            f"{RUNTIME_LIMIT_ATTRIBUTE} + {template.runtime_limit_grace_s})"),
    }


def task_requirements(job: Job) -> str:
    """The task's backend parameter `requirements`, as one well-formed ClassAd expression (so that
    it cannot reach outside its parentheses)."""
    parameters = (job.task.get("resources") or {}).get("backend_parameters") or {}
    given = parameters.get(REQUIREMENTS_PARAMETER, "")
    return expression(given, f"backend parameter {REQUIREMENTS_PARAMETER}") if given.strip() else ""


def expression(text: str, what: str) -> str:
    try:
        return str(classad2.ExprTree(text))
    except classad2.ClassAdException:
        raise ValueError(f"{what} is not a ClassAd expression: {text!r}") from None


def owner_name(owner: str) -> str:
    """The owner as an HTCondor accounting user and concurrency limit name: letters, digits and _
    ("basic:alice" -> "basic_alice"; the single local user, "", is "local")."""
    return re.sub(r"[^A-Za-z0-9_]", "_", owner) or "local"


def condor_arguments(words: list[str]) -> str:
    """HTCondor's quoted form of an argument list: each word with white space or quotes is put in
    single quotes, a ' inside is doubled, and every " is doubled."""
    return '"' + " ".join(_quote_word(word) for word in words) + '"'


def condor_environment(variables: dict[str, str]) -> str:
    """HTCondor's quoted form of an environment: NAME=value pairs, values quoted as arguments are."""
    for name in variables:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not an environment variable name")
    return '"' + " ".join(f"{name}={_quote_word(value)}" for name, value in variables.items()) + '"'


def _quote_word(word: str) -> str:
    doubled = word.replace('"', '""')
    if word and not re.search(r"[\s']", word):
        return doubled
    return "'" + doubled.replace("'", "''") + "'"
