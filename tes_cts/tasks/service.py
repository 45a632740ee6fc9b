"""The TES operations over the task database: what the API handlers call."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..clock import now_us
from ..database.base import STORED_VIEWS, DuplicateTaskId, TaskDatabase
from ..metrics import record as metrics
from ..model.query import Cursor, TaskQuery
from ..model.record import TaskRecord, history_entry, new_task_id
from ..model.states import Phase, TesState
from ..model.views import View, render_task
from ..storage.preflight import InputPreflight
from .cancel import DIRECT_CANCEL_MAX_CHARS, apply_cancel, finished_for_cancel
from .executor_logs import ExecutorLog, LogNotThere, open_executor_log
from .log_access import ExecutorLogNotFound, absence_detail, run_attempt
from .paging import BadListRequest, decode_token, encode_token, page_size_or_default
from .validation import Problem, TaskValidationError, ValidationLimits, validate_task


class JsonText(str):
    """A response already encoded as JSON: the API sends it as it is."""


class TaskNotFound(Exception):
    def __init__(self, task_id: str):
        super().__init__(f"no task with id {task_id!r}")
        self.task_id = task_id


@dataclass(frozen=True)
class ListRequest:
    name_prefix: str | None = None
    state: str | None = None
    tag_keys: tuple[str, ...] = ()
    tag_values: tuple[str, ...] = ()
    page_size: int | None = None
    page_token: str | None = None
    view: View = View.MINIMAL


class TaskService:
    def __init__(self, database: TaskDatabase, limits: ValidationLimits,
                 preflight: InputPreflight | None = None, wake_poller: Callable[[], None] | None = None,
                 runs: Path | None = None):
        """`preflight`, when given, checks url inputs at create (the `create` mode of
        s3.verify_inputs): a bad input is then a 400 naming it. `wake_poller`, when given, is
        called once a task is stored and once a cancel is accepted: it must be quick and
        never raise. `runs` is where the backend keeps run directories (jobfiles.runs_of), whose
        full executor logs `executor_log` reads; without it, none is found."""
        self.database = database
        self.limits = limits
        self.preflight = preflight
        self.wake_poller = wake_poller
        self.runs = runs

    def create(self, body: object, owner: str = "") -> str:
        accepted = validate_task(body, self.limits)
        verified = self._verified_inputs(accepted.task.get("inputs") or [])
        created_us = now_us()
        # The first log entry exists before any attempt only to carry what validation had to
        # say (dropped backend_parameters); the first attempt fills it in.
        logs = [{"logs": [], "outputs": [], "system_logs": accepted.warnings}] if accepted.warnings else []
        while True:
            # Built as it is stored: the accepted task is this request's own, nothing to copy.
            record = TaskRecord(
                id=new_task_id(), owner=owner, created_us=created_us, phase=Phase.CREATED,
                task=accepted.task, logs=logs, verified_inputs=verified,
                history=[history_entry(Phase.CREATED, "task accepted", at_us=created_us)],
            )
            try:
                self.database.insert(record)
            except DuplicateTaskId:  # 128 random bits: never in practice, but never an overwrite
                continue
            metrics.transitions([Phase.CREATED])  # the one phase a task enters without a move
            self._poller_has_work()
            return record.id

    def _verified_inputs(self, inputs: list[dict]) -> dict:
        if self.preflight is None or not any("url" in i for i in inputs):
            return {}
        report = self.preflight(inputs)
        if report.input_problems:
            raise TaskValidationError([Problem(f"inputs[{problem.index}].url", problem.text)
                                       for problem in report.input_problems])
        return report.verified

    def get(self, task_id: str, view: View, owner: str | None = None) -> dict | JsonText:
        if view in STORED_VIEWS:
            stored = self.database.get_view(task_id, view, owner)
            if stored is None:
                raise TaskNotFound(task_id)
            return JsonText(stored.json)
        return render_task(self._visible(task_id, owner), view)

    def list(self, request: ListRequest, owner: str | None = None) -> dict | JsonText:
        page_size = page_size_or_default(request.page_size)
        query = TaskQuery(
            limit=page_size + 1,
            owner=owner,
            name_prefix=request.name_prefix or None,
            state=TesState(request.state) if request.state else None,
            tags=tag_filter(request.tag_keys, request.tag_values),
            after=decode_token(request.page_token) if request.page_token else None,
        )
        if request.view in STORED_VIEWS:
            return self._stored_page(replace(query, limit=page_size), request.view)
        records = self.database.query(query)
        page = records[:page_size]
        response: dict = {"tasks": [render_task(r, request.view) for r in page]}
        if len(records) > page_size:
            response["next_page_token"] = _next_token(page[-1])
        return response

    def _stored_page(self, query: TaskQuery, view: View) -> JsonText:
        """A page of views the database keeps as JSON text (or writes from two columns), joined
        as they are: no task is decoded or encoded again."""
        page = self.database.view_page(query, view)
        # base64url: the token needs no escaping inside JSON.
        more = f',"next_page_token":"{encode_token(page.next_after)}"' if page.next_after else ""
        return JsonText('{"tasks":[' + page.joined + "]" + more + "}")

    def cancel(self, task_id: str, owner: str | None = None) -> None:
        """Cancel a small task at once (CANCELED before dispatch, else CANCELING for the poller);
        for a large one, or one whose single try lost to a concurrent write, record a cancel
        request, which the poller applies at its next cycle. Neither way reads a large record or
        retries: the answer takes milliseconds whatever the task's size and however often the
        poller rewrites it (at worst, it waits for one write of the poller's to end)."""
        found = self.database.phase_and_size(task_id, owner)
        if found is None:
            raise TaskNotFound(task_id)
        phase, size = found
        if finished_for_cancel(phase):
            return
        if size > DIRECT_CANCEL_MAX_CHARS or not self._canceled_now(task_id, owner):
            self.database.request_cancel(task_id)
        self._poller_has_work()

    def _canceled_now(self, task_id: str, owner: str | None) -> bool:
        record = self.database.get(task_id, owner)
        return record is not None and apply_cancel(self.database, record)

    def executor_log(self, task_id: str, attempt: int, executor: int, stream: str,
                     owner: str | None = None) -> ExecutorLog:
        """The full log `stream` of `executor` in `attempt` (both from 0), open for reading; the
        caller closes it. The task is looked up as `owner` before any file is touched, so another
        owner's task is TaskNotFound; a log the task does not have is ExecutorLogNotFound."""
        record = self._visible(task_id, owner)
        number = run_attempt(record, attempt, executor, stream)
        if self.runs is None:
            raise ExecutorLogNotFound("this server reads no run directories")
        try:
            return open_executor_log(self.runs, record.id, number, executor, stream)
        except LogNotThere as missing:
            raise ExecutorLogNotFound(absence_detail(record, attempt, executor, stream, missing.absence)) from None
        except ValueError as exc:  # an id in the store that names no run directory: never made by new_task_id
            raise ExecutorLogNotFound(f"task {record.id} has no run directory: {exc}") from None

    def _poller_has_work(self) -> None:
        if self.wake_poller is not None:
            self.wake_poller()

    def _visible(self, task_id: str, owner: str | None) -> TaskRecord:
        record = self.database.get(task_id, owner)
        if record is None:
            raise TaskNotFound(task_id)
        return record


def _next_token(last: TaskRecord) -> str:
    """The page token of the page after `last`."""
    return encode_token(Cursor(last.created_us, last.id))


def tag_filter(keys: tuple[str, ...], values: tuple[str, ...]) -> dict[str, str]:
    """Pair tag_key[i] with tag_value[i]; a key without a value matches any value."""
    if len(values) > len(keys):
        raise BadListRequest("tag_value", "has more entries than tag_key; every tag_value needs its tag_key")
    pairs: dict[str, str] = {}
    for index, key in enumerate(keys):
        if key in pairs:
            raise BadListRequest("tag_key", f"{key!r} is given more than once")
        pairs[key] = values[index] if index < len(values) else ""
    return pairs
