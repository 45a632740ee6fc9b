"""`tes-cts run`: one command from a script and local files to results on this machine.

Local inputs are uploaded under `--stage` with their CRC64NVME (an object already there with the
same checksum is not sent again) and the task reads them from there; a local script given as the
command travels inline, as the input's `content`. With `--wait` the state changes are shown as
they happen and the exit code is the task's; `--download` fetches every output and checks it
against the CRC64NVME the task log reports.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

from .api import (
    EXIT_COMPLETE,
    EXIT_EXECUTOR_ERROR,
    EXIT_OF_STATE,
    EXIT_SYSTEM_ERROR,
    add_connection_arguments,
    api_from,
    last_attempt,
    output_checksum,
    wait_reason,
)
from .failures import CommandError, one_line_errors, say

DEFAULT_IMAGE = "ubuntu:24.04"
INPUTS_DIR = "/inputs"
OUTPUTS_DIR = "/outputs"
SCRIPTS_DIR = "/scripts"
SCRIPT_MAX_BYTES = 128 * 1024  # the smallest `tasks.content_max_bytes` a tes-cts server allows
URL_SCHEMES = ("s3://", "http://", "https://", "file://", "gs://", "ftp://")
STDERR_TAIL_LINES = 20


def register(commands) -> None:
    """Add this module's verbs to the `tes-cts` subparsers `commands`."""
    run = commands.add_parser(
        "run", help="run a command (or a local script) as a TES task, with local inputs staged to S3",
        description=__doc__.split("\n\n")[0],
        epilog="example: tes-cts run --image ubuntu:24.04 --input reads=reads.fq --stage s3://lab/me/ "
               "--wait --download results -- sh -c 'wc -l /inputs/reads > /outputs/count'")
    run.add_argument("--image", default=DEFAULT_IMAGE, help=f"container image (default {DEFAULT_IMAGE})")
    run.add_argument("--input", action="append", default=[], metavar="NAME=PATH_OR_URL",
                     help=f"an input at {INPUTS_DIR}/NAME (NAME may be an absolute container path instead); "
                          "a local file or directory is uploaded under --stage")
    run.add_argument("--output", action="append", default=[], metavar="NAME[=URL]",
                     help=f"an output at {OUTPUTS_DIR}/NAME (or an absolute container path), to URL "
                          "(a URL ending in / is a directory); without URL, under --stage")
    run.add_argument("--cpu", type=int, help="CPU cores")
    run.add_argument("--ram", type=float, metavar="GB", help="memory in GB")
    run.add_argument("--disk", type=float, metavar="GB", help="disk in GB")
    run.add_argument("--runtime", metavar="DURATION", help="time limit (ISO 8601, as PT1H, or seconds)")
    run.add_argument("--env", action="append", default=[], metavar="K=V", help="an environment variable")
    run.add_argument("--tag", action="append", default=[], metavar="K=V", help="a tag of the task")
    run.add_argument("--name", help="the task's name")
    run.add_argument("--stage", metavar="s3://BUCKET/PREFIX/",
                     help="where local inputs are uploaded and outputs without a URL go")
    run.add_argument("--wait", action="store_true", help="show each state change; exit with the task's exit code")
    run.add_argument("--download", metavar="DIR", type=Path,
                     help="when the task is done, fetch every output into DIR (CRC64NVME checked); implies --wait")
    run.add_argument("--quiet", action="store_true", help="no progress bars and no state changes")
    add_connection_arguments(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ARG...",
                     help="what the executor runs; a local text file first is sent as a script")
    run.set_defaults(handler=one_line_errors(_run))


def _run(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CommandError("give the command to run after --, e.g. tes-cts run -- echo hello")
    stage = _stage_prefix(args.stage)
    run_prefix = f"{stage}runs/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}/" if stage else None
    task = _task(args, command, stage, run_prefix)
    api = api_from(args)
    task_id = api.create(task)
    print(task_id, flush=True)
    if not (args.wait or args.download):
        return EXIT_COMPLETE
    return _wait_and_fetch(api, task_id, args)


# -- the task --------------------------------------------------------------------------------


def _task(args, command: list[str], stage: str | None, run_prefix: str | None) -> dict:
    inputs = [_input(spec, stage, args.quiet) for spec in args.input]
    script = _script(command[0])
    if script is not None:
        inputs.append(script[0])
        command = [*script[1], *command[1:]]
    outputs = [_output(spec, run_prefix) for spec in args.output]
    if not outputs and run_prefix:
        outputs.append({"path": OUTPUTS_DIR, "url": f"{run_prefix}outputs/", "type": "DIRECTORY"})
    executor: dict = {"image": args.image, "command": command}
    if args.env:
        executor["env"] = dict(_pair(item, "--env") for item in args.env)
    task: dict = {"executors": [executor]}
    if args.name:
        task["name"] = args.name
    if inputs:
        task["inputs"] = inputs
    if outputs:
        task["outputs"] = outputs
    resources = _resources(args)
    if resources:
        task["resources"] = resources
    if args.tag:
        task["tags"] = dict(_pair(item, "--tag") for item in args.tag)
    return task


def _resources(args) -> dict:
    resources: dict = {}
    if args.cpu is not None:
        resources["cpu_cores"] = args.cpu
    if args.ram is not None:
        resources["ram_gb"] = args.ram
    if args.disk is not None:
        resources["disk_gb"] = args.disk
    if args.runtime:
        resources["backend_parameters"] = {"runtime": args.runtime}  # tes-cts's time limit
    return resources


def _input(spec: str, stage: str | None, quiet: bool) -> dict:
    name, source = _pair(spec, "--input")
    path = _container_path(name, INPUTS_DIR)
    if source.startswith(URL_SCHEMES):
        return {"path": path, "url": source, "type": "DIRECTORY" if source.endswith("/") else "FILE"}
    local = Path(source).expanduser()
    if not local.exists():
        raise CommandError(f"--input {spec}: {source} is neither a URL nor a local file or directory")
    if stage is None:
        raise CommandError(f"--input {spec}: a local input needs --stage s3://BUCKET/PREFIX/ to be uploaded to")
    from .transfer import upload

    key = f"{stage}inputs/{name.strip('/')}/"
    url = key if local.is_dir() else key + local.name
    _, sent = upload(local, url, quiet=quiet)
    if not quiet:
        say(f"{source} {'uploaded to' if sent else 'already at'} {url}")
    return {"path": path, "url": url, "type": "DIRECTORY" if local.is_dir() else "FILE"}


def _output(spec: str, run_prefix: str | None) -> dict:
    name, _, url = spec.partition("=")
    if not name:
        raise CommandError(f"--output {spec}: give NAME or NAME=URL")
    if not url:
        if run_prefix is None:
            raise CommandError(f"--output {spec}: give a URL (NAME=URL) or --stage for outputs to go to")
        url = f"{run_prefix}outputs/{name.strip('/')}"
    return {"path": _container_path(name, OUTPUTS_DIR), "url": url,
            "type": "DIRECTORY" if url.endswith("/") else "FILE"}


def _script(first: str) -> tuple[dict, list[str]] | None:
    """If the command starts with a local text file: the input carrying it inline, and the
    interpreter to run it with (its #! line, else sh)."""
    local = Path(first)
    if first.startswith(URL_SCHEMES) or not local.is_file():
        return None
    data = local.read_bytes()[:SCRIPT_MAX_BYTES + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # a program, not a script: run as it is named
    if "\x00" in text:
        return None
    if len(data) > SCRIPT_MAX_BYTES:
        raise CommandError(f"the script {first} is larger than {SCRIPT_MAX_BYTES} bytes: stage it with --input instead")
    path = f"{SCRIPTS_DIR}/{local.name}"
    shebang = text.splitlines()[0][2:].split() if text.startswith("#!") else ["sh"]
    return {"path": path, "content": text, "type": "FILE"}, [*shebang, path]


def _container_path(name: str, under: str) -> str:
    if name.startswith("/"):
        return name
    if not name or ".." in name.split("/"):
        raise CommandError(f"{name!r} is not a name for {under}/NAME")
    return f"{under}/{name}"


def _pair(item: str, option: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise CommandError(f"{option} {item}: expected KEY=VALUE")
    return key, value


def _stage_prefix(stage: str | None) -> str | None:
    if stage is None:
        return None
    if not stage.startswith("s3://") or len(stage) <= len("s3://"):
        raise CommandError(f"--stage {stage}: expected s3://BUCKET/PREFIX/")
    return stage if stage.endswith("/") else stage + "/"


# -- waiting and fetching --------------------------------------------------------------------


def _wait_and_fetch(api, task_id: str, args) -> int:
    def show(task: dict, before: str | None) -> None:
        if args.quiet:
            return
        reason = wait_reason(task)
        say(f"{task_id} {task.get('state')}" + (f" ({reason})" if reason else ""))

    task = api.wait([task_id], view="FULL", on_change=show)[task_id]
    if task.get("state") != "COMPLETE":
        _show_failure(task)
        return _exit_of(task)
    if args.download:
        _download_outputs(task, args.download, args.quiet)
    return EXIT_COMPLETE


def _exit_of(task: dict) -> int:
    """The task's exit code: the failing executor's own for EXECUTOR_ERROR."""
    if task.get("state") == "EXECUTOR_ERROR":
        codes = [log.get("exit_code") for log in last_attempt(task).get("logs") or []]
        failed = [code for code in codes if isinstance(code, int) and code != 0]
        return failed[-1] if failed and 0 < failed[-1] < 256 else EXIT_EXECUTOR_ERROR
    return EXIT_OF_STATE.get(task.get("state"), EXIT_SYSTEM_ERROR)


def _show_failure(task: dict) -> None:
    attempt = last_attempt(task)
    executors = attempt.get("logs") or []
    if executors and executors[-1].get("stderr"):
        tail = executors[-1]["stderr"].splitlines()[-STDERR_TAIL_LINES:]
        print("\n".join(tail), file=sys.stderr)
    for line in attempt.get("system_logs") or []:
        say(line)


def _download_outputs(task: dict, into: Path, quiet: bool) -> None:
    from .transfer import download

    attempt = last_attempt(task)
    for output in attempt.get("outputs") or []:
        url, path = output.get("url", ""), output.get("path", "")
        if not url.startswith("s3://"):
            say(f"{url} is not in S3: left where it is")
            continue
        dest = into / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        download(url, dest, expected_crc64nvme=output_checksum(attempt, url), quiet=quiet)
        if not quiet:
            say(f"{url} -> {dest} (CRC64NVME checked)")
