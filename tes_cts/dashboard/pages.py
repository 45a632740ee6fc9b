"""What the dashboard's pages show, as plain data for the templates (which only lay it out): the
filters of the list, its rows and the counts per state, and a task's page built from its record
(history, owner, verified inputs) and its FULL view (what the API shows of it)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from ..clock import rfc3339
from ..durations import describe_duration
from ..model.query import Cursor, TaskQuery
from ..model.record import TaskRecord
from ..model.states import TERMINAL_STATES, Phase, TesState
from ..model.views import View, render_task
from ..tasks.attempts import BACKEND_JOB_ID_KEY, OUTPUT_CHECKSUM_KEY
from ..tasks.paging import BadListRequest, decode_token, encode_token

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# The counts bar shows these even at zero, the other states only when some task is in them.
MAIN_STATES = (TesState.QUEUED, TesState.INITIALIZING, TesState.RUNNING, TesState.COMPLETE,
               TesState.EXECUTOR_ERROR, TesState.SYSTEM_ERROR, TesState.CANCELED)
STATE_ORDER = (TesState.QUEUED, TesState.INITIALIZING, TesState.RUNNING, TesState.PAUSED, TesState.CANCELING,
               TesState.COMPLETE, TesState.EXECUTOR_ERROR, TesState.SYSTEM_ERROR, TesState.CANCELED,
               TesState.PREEMPTED, TesState.UNKNOWN)


@dataclass(frozen=True)
class Filters:
    """The list's query string: `tag` is `key=value`, or `key` for any value; `owner` is an
    admin's choice of one owner's tasks."""

    state: str = ""
    name_prefix: str = ""
    tag: str = ""
    owner: str | None = None
    page_token: str = ""
    page_size: int = PAGE_SIZE

    @classmethod
    def from_args(cls, args) -> Filters:
        state = args.get("state", "").strip().upper()
        if state and state not in TesState.__members__:
            raise BadListRequest("state", f"{state!r} is not a TES state")
        try:
            size = int(args.get("page_size") or PAGE_SIZE)
        except ValueError:
            raise BadListRequest("page_size", "is not a whole number") from None
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadListRequest("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
        return cls(state=state, name_prefix=args.get("name_prefix", ""), tag=args.get("tag", "").strip(),
                   owner=args.get("owner") or None, page_token=args.get("page_token", ""), page_size=size)

    @property
    def narrowed(self) -> bool:
        return bool(self.state or self.name_prefix or self.tag or self.owner is not None)

    def query(self, owner: str | None) -> TaskQuery:
        """One task more than a page: whether a next page exists."""
        key, _, value = self.tag.partition("=")
        return TaskQuery(limit=self.page_size + 1, owner=owner, name_prefix=self.name_prefix or None,
                         state=TesState(self.state) if self.state else None,
                         tags={key.strip(): value.strip()} if key.strip() else {},
                         after=decode_token(self.page_token) if self.page_token else None)

    def args(self, **changes) -> dict[str, str]:
        """The query string of a link: these filters with `changes`; a changed filter starts
        from the first page."""
        if set(changes) - {"page_token"}:
            changes.setdefault("page_token", "")
        changed = replace(self, **changes)
        values = {"state": changed.state, "name_prefix": changed.name_prefix, "tag": changed.tag,
                  "owner": changed.owner, "page_token": changed.page_token,
                  "page_size": "" if changed.page_size == PAGE_SIZE else str(changed.page_size)}
        return {name: value for name, value in values.items() if value}


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    state: str
    owner: str
    created: str
    duration: str
    finished: bool
    tags: list[tuple[str, str]]


@dataclass(frozen=True)
class ListPage:
    rows: list[Row]
    next_token: str | None


def list_page(records: list[TaskRecord], filters: Filters, now_us: int) -> ListPage:
    page = records[:filters.page_size]
    more = len(records) > filters.page_size
    return ListPage(rows=[_row(record, now_us) for record in page],
                    next_token=encode_token(Cursor(page[-1].created_us, page[-1].id)) if more else None)


def _row(record: TaskRecord, now_us: int) -> Row:
    finished = record.state in TERMINAL_STATES
    return Row(id=record.id, name=record.name or "", state=record.state.value, owner=record.owner,
               created=rfc3339(record.created_us), duration=task_duration(record, now_us), finished=finished,
               tags=sorted(record.tags.items()))


def task_duration(record: TaskRecord, now_us: int) -> str:
    """From creation to the terminal state (or to now, for a task not finished)."""
    end_us = _us(record.history[-1]["time"]) if record.state in TERMINAL_STATES and record.history else now_us
    return human_seconds((end_us - record.created_us) / 1e6)


def counts(by_state: dict[str, int]) -> list[tuple[str, int]]:
    return [(state.value, by_state.get(state.value, 0)) for state in STATE_ORDER
            if state in MAIN_STATES or by_state.get(state.value)]


# --- a task's page ---------------------------------------------------------------------------------


@dataclass
class TimelineEntry:
    time: str
    state: str
    phase: str
    reason: str
    after: str  # since the entry before, "" for the first


@dataclass
class Attempt:
    """One column of the timeline: the history from a claim to the end of what it started
    (a retry, or the task's end), and the attempt's log entry when it has one."""

    number: int
    entries: list[TimelineEntry] = field(default_factory=list)
    started: str = ""
    ended: str = ""
    duration: str = ""
    backend_job_id: str = ""
    metadata: list[tuple[str, str]] = field(default_factory=list)
    system_logs: list[str] = field(default_factory=list)


@dataclass
class ExecutorLog:
    attempt: int  # the index in logs[], as the full-log endpoint numbers attempts
    exit_code: int
    started: str
    ended: str
    stdout: str
    stderr: str


@dataclass
class Executor:
    index: int
    image: str
    command: str
    workdir: str
    streams: list[str]  # where the executor's stdin/stdout/stderr are redirected, as "stdout > /path"
    env: list[str]
    logs: list[ExecutorLog]


@dataclass
class InputRow:
    path: str
    source: str
    type: str
    name: str
    objects: list[tuple[str, str, str]]  # (url, size, CRC64NVME) that preflight recorded


@dataclass
class OutputFile:
    attempt: int
    path: str
    url: str
    size: str
    crc64nvme: str


@dataclass
class TaskPage:
    id: str
    name: str
    state: str
    owner: str
    description: str
    created: str
    duration: str
    finished: bool
    tags: list[tuple[str, str]]
    attempts: list[Attempt]
    executors: list[Executor]
    inputs: list[InputRow]
    outputs: list[dict]
    output_files: list[OutputFile]
    resources: list[tuple[str, str]]
    volumes: list[str]


def task_page(record: TaskRecord, now_us: int) -> TaskPage:
    view = render_task(record, View.FULL)
    logs = view.get("logs", [])
    return TaskPage(
        id=record.id, name=view.get("name", ""), state=view["state"], owner=record.owner,
        description=view.get("description", ""), created=view["creation_time"],
        duration=task_duration(record, now_us), finished=record.state in TERMINAL_STATES,
        tags=sorted(view.get("tags", {}).items()), attempts=_attempts(record.history, logs, now_us),
        executors=_executors(view["executors"], logs), inputs=_inputs(view.get("inputs", []), record.verified_inputs),
        outputs=view.get("outputs", []), output_files=_output_files(logs),
        resources=[(key, value if isinstance(value, str) else json.dumps(value))
                   for key, value in view.get("resources", {}).items()],
        volumes=view.get("volumes", []),
    )


def _attempts(history: list[dict], logs: list[dict], now_us: int) -> list[Attempt]:
    """The history cut into attempts: a move back to `created` after a submission (a retry)
    ends one. A claim that lost its lease before submitting goes back to `created` too; that
    is no new attempt, so it stays in the column it happened in."""
    columns = [Attempt(number=1)]
    submitted = ended = False
    previous_us = None
    for entry in history:
        if ended:
            columns.append(Attempt(number=len(columns) + 1))
            submitted = ended = False
        at_us = _us(entry["time"])
        columns[-1].entries.append(TimelineEntry(
            time=entry["time"], state=entry["state"], phase=entry["phase"], reason=entry.get("reason", ""),
            after="" if previous_us is None else "+" + human_seconds((at_us - previous_us) / 1e6)))
        previous_us = at_us
        submitted = submitted or entry["phase"] == Phase.SUBMITTED
        ended = submitted and entry["phase"] == Phase.CREATED
    for column, log in zip(columns, logs):
        _fill(column, log, now_us)
    return columns


def _fill(column: Attempt, log: dict, now_us: int) -> None:
    metadata = log.get("metadata", {})
    column.started, column.ended = log.get("start_time", ""), log.get("end_time", "")
    if column.started:
        column.duration = human_seconds(((_us(column.ended) if column.ended else now_us) - _us(column.started)) / 1e6)
    column.backend_job_id = metadata.get(BACKEND_JOB_ID_KEY, "")
    column.metadata = sorted((k, v) for k, v in metadata.items()
                             if k != BACKEND_JOB_ID_KEY and not k.startswith(OUTPUT_CHECKSUM_KEY))
    column.system_logs = log.get("system_logs", [])


def _executors(executors: list[dict], logs: list[dict]) -> list[Executor]:
    shown = []
    for index, executor in enumerate(executors):
        runs = [ExecutorLog(attempt=attempt, exit_code=run["exit_code"], started=run.get("start_time", ""),
                            ended=run.get("end_time", ""), stdout=run.get("stdout", ""), stderr=run.get("stderr", ""))
                for attempt, run in ((a, log["logs"][index]) for a, log in enumerate(logs) if len(log["logs"]) > index)]
        shown.append(Executor(
            index=index, image=executor["image"], command=shlex.join(executor["command"]),
            workdir=executor.get("workdir", ""),
            streams=[f"{name} {'<' if name == 'stdin' else '>'} {executor[name]}"
                     for name in ("stdin", "stdout", "stderr") if executor.get(name)],
            env=sorted(executor.get("env", {})), logs=runs))
    return shown


def _inputs(inputs: list[dict], verified: dict) -> list[InputRow]:
    return [InputRow(path=item.get("path", ""),
                     source=item.get("url") or f"inline content, {human_bytes(len(item.get('content', '').encode()))}",
                     type=item.get("type", "FILE"), name=item.get("name", ""),
                     objects=[(o.get("url", ""), human_bytes(o["size"]) if o.get("size") is not None else "",
                               o.get("crc64nvme") or "") for o in verified.get(str(index), [])])
            for index, item in enumerate(inputs)]


def _output_files(logs: list[dict]) -> list[OutputFile]:
    return [OutputFile(attempt=attempt + 1, path=output.get("path", ""), url=output["url"],
                       size=human_bytes(int(output.get("size_bytes", 0))),
                       crc64nvme=log.get("metadata", {}).get(OUTPUT_CHECKSUM_KEY + output["url"], ""))
            for attempt, log in enumerate(logs) for output in log.get("outputs", [])]


# --- how values read ---------------------------------------------------------------------------------


def human_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 0):.1f}s"
    return describe_duration(round(seconds))


def human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled, unit = float(size), "B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        scaled /= 1024
        if scaled < 1024:
            break
    return f"{scaled:.1f} {unit} ({size:,} bytes)"


def shown_time(text: str, precise: bool = False) -> str:
    """An RFC 3339 time as a person reads it, in UTC: 2026-11-21 10:52:03 (precise: .123)."""
    try:
        moment = datetime.fromisoformat(text).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return text or ""
    shown = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{shown}.{moment.microsecond // 1000:03d}" if precise else shown


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)
