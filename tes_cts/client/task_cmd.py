"""`tes-cts task create|get|list|cancel|wait|logs`: tasks on any TES server.

Every verb fails with one line on stderr (`tes-cts: ...`) and exit code 1 when the server cannot
be reached or refuses, or a local file cannot be used; `wait` says how the tasks ended by its exit
code (EXIT_* in api.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .api import (
    EXIT_COMPLETE,
    EXIT_ERROR,
    EXIT_TIMEOUT,
    TERMINAL_STATES,
    ApiError,
    WaitTimeout,
    add_connection_arguments,
    api_from,
    worst_exit,
)
from .failures import CommandError, one_line_errors, say

VIEWS = ("MINIMAL", "BASIC", "FULL")
FOLLOW_POLL_S = 1.0


def register(commands) -> None:
    """Add this module's verbs to the `tes-cts` subparsers `commands`."""
    task = commands.add_parser("task", help="create, show, list, cancel, wait for and read the logs of TES tasks",
                               description="Tasks on any TES server.")
    verbs = task.add_subparsers(dest="verb", required=True, metavar="VERB")
    for declare in (_declare_create, _declare_get, _declare_list, _declare_cancel, _declare_wait, _declare_logs):
        declare(verbs)


# -- the verbs' arguments ----------------------------------------------------------------------


def _verb(verbs, name: str, help_text: str, handler) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, help=help_text, description=help_text)
    add_connection_arguments(parser)
    parser.set_defaults(handler=one_line_errors(handler))
    return parser


def _declare_create(verbs) -> None:
    parser = _verb(verbs, "create", "submit a task (tesTask JSON) and print its id", _create)
    parser.add_argument("file", metavar="FILE", help="the task's JSON, or - for stdin")


def _declare_get(verbs) -> None:
    parser = _verb(verbs, "get", "show a task: a readable summary, or its JSON", _get)
    parser.add_argument("task_id", metavar="ID")
    parser.add_argument("--view", type=str.upper, choices=VIEWS, default="FULL",
                        help="how much of the task (default FULL)")
    parser.add_argument("--json", action="store_true", help="print the task's JSON as the server sends it")


def _declare_list(verbs) -> None:
    parser = _verb(verbs, "list", "list tasks, newest first: a table, or JSON lines", _list)
    parser.add_argument("--state", type=str.upper, help="only tasks in this state (QUEUED, RUNNING, COMPLETE, ...)")
    parser.add_argument("--name-prefix", metavar="PREFIX", help="only tasks whose name starts with PREFIX")
    parser.add_argument("--tag", type=_tag, action="append", default=[], metavar="KEY[=VALUE]",
                        help="only tasks with this tag (KEY or KEY=: any value); repeat for all of several")
    parser.add_argument("--view", type=str.upper, choices=VIEWS, default="BASIC",
                        help="how much of each task (default BASIC, which has the name and creation time)")
    parser.add_argument("--all", action="store_true", help="every page (default: the first page only)")
    parser.add_argument("--page-size", type=_positive_int, metavar="N", help="tasks per page (default: the server's)")
    parser.add_argument("--json", action="store_true", help="one JSON task per line")


def _declare_cancel(verbs) -> None:
    parser = _verb(verbs, "cancel", "cancel tasks; print the id of each one canceled", _cancel)
    parser.add_argument("task_ids", metavar="ID", nargs="+")


def _declare_wait(verbs) -> None:
    parser = _verb(verbs, "wait", "wait until tasks end; print `ID STATE` as each ends; exit with the worst "
                   "outcome (0 complete, 3 canceled, 4 executor error, 5 system error, 6 timed out)", _wait)
    parser.add_argument("task_ids", metavar="ID", nargs="+")
    parser.add_argument("--timeout", type=_duration, metavar="DURATION",
                        help="give up after this long: seconds (600) or ISO 8601 (PT10M)")


def _declare_logs(verbs) -> None:
    parser = _verb(verbs, "logs", "print an executor's stdout (or stderr): all of it from a tes-cts server (live while "
                   "it runs), else the tail the FULL view holds", _logs)
    parser.add_argument("task_id", metavar="ID")
    parser.add_argument("--attempt", type=_index, metavar="N", help="the attempt, from 0 (default: the last)")
    parser.add_argument("--executor", type=_index, metavar="N",
                        help="the executor, from 0 (default: the last one that ran; with --follow, each in turn)")
    parser.add_argument("--stderr", action="store_true", help="stderr instead of stdout")
    parser.add_argument("--follow", action="store_true", help="keep printing what is new until the task ends")


def _tag(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"{text!r}: a tag filter is KEY, KEY= or KEY=VALUE")
    return key, value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def _index(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an index (0, 1, ...)")
    return int(text)


def _duration(text: str) -> float:
    from ..durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- the verbs ---------------------------------------------------------------------------------


def _create(args) -> int:
    print(api_from(args).create(_read_task(args.file)))
    return EXIT_COMPLETE


def _read_task(name: str) -> dict:
    where = "stdin" if name == "-" else name
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{where} is not UTF-8 text") from None
    try:
        task = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(task, dict):
        raise CommandError(f"{where}: a task is a JSON object ({{\"executors\": [...], ...}})")
    return task


def _get(args) -> int:
    task = api_from(args).get(args.task_id, args.view)
    if args.json:
        print(json.dumps(task, indent=2))
    else:
        from .summary import task_summary

        print(task_summary(task))
    return EXIT_COMPLETE


def _list(args) -> int:
    tasks = api_from(args).list(view=args.view, page_size=args.page_size, every_page=args.all,
                                state=args.state, name_prefix=args.name_prefix, tags=dict(args.tag))
    if args.json:
        for task in tasks:
            print(json.dumps(task), flush=True)
    else:
        from .summary import task_table

        print(task_table(tasks))
    return EXIT_COMPLETE


def _cancel(args) -> int:
    api = api_from(args)
    failed = False
    for task_id in args.task_ids:
        try:
            api.cancel(task_id)
        except ApiError as exc:
            say(f"cancel {task_id}: {exc}")
            failed = True
        else:
            print(task_id, flush=True)
    return EXIT_ERROR if failed else EXIT_COMPLETE


def _wait(args) -> int:
    task_ids = list(dict.fromkeys(args.task_ids))

    def print_end(task: dict, _previous_state) -> None:
        if task.get("state") in TERMINAL_STATES:
            print(f"{task.get('id')} {task['state']}", flush=True)

    try:
        ended = api_from(args).wait(task_ids, timeout_s=args.timeout, view="MINIMAL", on_change=print_end)
    except WaitTimeout as timeout:
        from ..durations import describe_duration

        pending = [f"{task_id} ({timeout.tasks.get(task_id, {}).get('state', 'UNKNOWN')})" for task_id in task_ids
                   if timeout.tasks.get(task_id, {}).get("state") not in TERMINAL_STATES]
        say(f"timed out after {describe_duration(args.timeout)}; not done: {', '.join(pending)}")
        return EXIT_TIMEOUT
    return worst_exit(ended.values())


def _logs(args) -> int:
    api = api_from(args)
    stream = "stderr" if args.stderr else "stdout"

    def read_full(attempt: int, executor: int, offset: int, length: int | None = None):
        return api.executor_log(args.task_id, attempt, executor, stream, offset, length)

    printer = LogPrinter(stream, args.attempt, args.executor, args.follow, read_full)
    task = api.get(args.task_id, "FULL")
    printer.show(task)
    while args.follow and task.get("state") not in TERMINAL_STATES:
        time.sleep(FOLLOW_POLL_S)
        task = api.get(args.task_id, "FULL")
        printer.show(task)
    if not printer.read_full_logs:  # the full logs are the server's word on what exists
        _check_log_exists(task, args.attempt, args.executor)
    return EXIT_COMPLETE


class LogPrinter:
    """Prints one stream of a task's executor logs, each part once however often it is shown the
    task. The position (attempt, executor) is fixed where the arguments give it; otherwise it
    starts at the last attempt and its last executor (with `follow`, its first) and moves on to
    the next executor and the next attempt as they appear.

    A position's log comes whole from `read_full(attempt, executor, offset, length)` (tes-cts's
    logs extension: bytes and the log's size, or None), as it grows while the executor runs;
    where that has nothing, from the tail the FULL view holds once the attempt has ended. With
    the full logs, an executor has begun once its log is there (the one before has then ended,
    and what it wrote last is printed before moving on); the last executor that ran is the last
    that began."""

    def __init__(self, stream: str, attempt: int | None, executor: int | None, follow: bool, read_full=None):
        self.stream = stream
        self.fixed_attempt, self.fixed_executor = attempt is not None, executor is not None
        self.attempt = attempt
        self.executor = 0 if follow and executor is None else executor
        self.follow = follow
        self.read_full = read_full
        self.read_full_logs = False  # whether any full log was read
        self.printed = ""  # the tail of the current position as last shown
        self.printed_bytes = 0  # how much of the current position's full log was printed

    def show(self, task: dict) -> None:
        attempts = task.get("logs") or []
        if self.attempt is None:
            if not attempts:
                return
            self.attempt = len(attempts) - 1
        while True:
            executor_logs = (attempts[self.attempt].get("logs") or []) if self.attempt < len(attempts) else []
            if self.executor is None:  # the last one that began
                self.executor = max(len(executor_logs) - 1, 0)
                while self._executors_begun(len(executor_logs)) > self.executor + 1:
                    self.executor += 1
            self._print_position(executor_logs)
            begun = self._executors_begun(len(executor_logs)) if self.follow else len(executor_logs)
            following = self._next_position(len(attempts), begun)
            if following is None:
                return
            self._print_position(executor_logs)  # what it wrote since, now that it has ended
            self.attempt, self.executor = following
            self.printed, self.printed_bytes = "", 0

    def _print_position(self, executor_logs: list[dict]) -> None:
        if not self.printed and self._print_full():
            return
        if not self.printed_bytes and self.executor < len(executor_logs):
            self._print_new(executor_logs[self.executor].get(self.stream) or "")

    def _print_full(self) -> bool:
        """What is new in the current position's full log, up to its size; False if it has none."""
        while self.read_full is not None:
            part = self.read_full(self.attempt, self.executor, self.printed_bytes)
            if part is None:
                return False
            data, size = part
            self.read_full_logs = True
            sys.stdout.flush()
            sys.stdout.buffer.write(data)  # the bytes as the executor wrote them
            sys.stdout.buffer.flush()
            self.printed_bytes += len(data)
            if not data or self.printed_bytes >= size:
                return True
        return False

    def _executors_begun(self, logged: int) -> int:
        """How many executors of the current attempt have begun: those its FULL view logs (once it
        ended), or, while it runs, the next one too once its full log is there."""
        if self.read_full is None or self.fixed_executor or self.executor + 1 < logged:
            return logged
        next_one = self.executor + 1
        return next_one + 1 if self.read_full(self.attempt, next_one, 0, 0) is not None else logged

    def _next_position(self, attempt_count: int, executor_count: int) -> tuple[int, int] | None:
        """The (attempt, executor) to print after the current one, once it has begun, or None."""
        if not self.fixed_executor and self.executor + 1 < executor_count:
            return self.attempt, self.executor + 1
        if not self.fixed_attempt and self.attempt + 1 < attempt_count:
            return self.attempt + 1, self.executor if self.fixed_executor else 0
        return None

    def _print_new(self, text: str) -> None:
        sys.stdout.write(text[overlap(self.printed, text):])
        sys.stdout.flush()
        self.printed = text


def overlap(old: str, new: str) -> int:
    """How much of `new` was already in `old`: the length of the longest suffix of `old` that is a
    prefix of `new`. The server keeps only a log's tail, so a grown log may have lost its start.
    Knuth-Morris-Pratt: linear in the tail's size, which is polled every second."""
    if new.startswith(old):
        return len(old)
    if not new:
        return 0
    failure = [0] * len(new)  # failure[i]: the longest proper prefix of new[:i+1] that is also its suffix
    matched = 0
    for i in range(1, len(new)):
        while matched and new[i] != new[matched]:
            matched = failure[matched - 1]
        if new[i] == new[matched]:
            matched += 1
        failure[i] = matched
    matched = 0
    for char in old:
        while matched and (matched == len(new) or char != new[matched]):
            matched = failure[matched - 1]
        if char == new[matched]:
            matched += 1
    return matched


def _check_log_exists(task: dict, attempt: int | None, executor: int | None) -> None:
    """An attempt or executor the arguments name that the task does not have is an error."""
    attempts = task.get("logs") or []
    if attempt is not None and attempt >= len(attempts):
        raise CommandError(f"task {task.get('id')} has {len(attempts)} attempt(s): no attempt {attempt}")
    if executor is not None:
        chosen = len(attempts) - 1 if attempt is None else attempt
        count = len(attempts[chosen].get("logs") or []) if attempts else 0
        if executor >= count:
            raise CommandError(f"attempt {max(chosen, 0)} of task {task.get('id')} has the logs of {count} "
                             f"executor(s): no executor {executor}")
