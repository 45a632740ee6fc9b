"""Objects the tests build: what the service builds from settings, built the same way (the
defaults are those of `tes_cts/settings.py`: pass the `settings` fixture; a test's own values
replace them), and stored task records. Task bodies as a client sends them: helpers.py."""

from __future__ import annotations

from dataclasses import replace

from tes_cts.backends.htcondor import HTCondorBackend
from tes_cts.clock import now_us
from tes_cts.model.query import Cursor, ViewPage
from tes_cts.model.record import TaskRecord, new_task_id
from tes_cts.model.states import Phase
from tes_cts.model.views import View, view_json
from tes_cts.poller import PollerConfig
from tes_cts.wiring import poller_config as poller_config_from

from .helpers import echo_task


def poller_config(settings, **fields) -> PollerConfig:
    """The poller's configuration from `settings`, with `fields` (PollerConfig's names) replaced."""
    return replace(poller_config_from(settings), **fields)


def htcondor_backend(settings, work_dir, template, schedd, lost_grace_s: float) -> HTCondorBackend:
    """An HTCondor backend with the hold codes of `settings`, its own job template and schedd, and
    the test's grace for lost jobs."""
    return HTCondorBackend(work_dir, template, schedd=schedd,
                           transient_hold_codes=settings.htcondor.transient_hold_codes, lost_grace_s=lost_grace_s)


def task_record(task_id: str | None = None, *, owner: str = "", created_us: int | None = None,
                phase: Phase = Phase.CREATED, accepted: bool = True, **task_fields) -> TaskRecord:
    """A task record as the database holds it: the task `echo_task(**task_fields)` (a field given
    as None is left out), a new id and the current time unless given; `accepted` puts the API's
    "task accepted" entry in its history, at `created_us`. `phase` is where the task is now; the
    history does not show how it got there."""
    created_us = now_us() if created_us is None else created_us
    task = {name: value for name, value in echo_task(**task_fields).items() if value is not None}
    record = TaskRecord(id=task_id or new_task_id(), owner=owner, created_us=created_us, phase=Phase.CREATED,
                        task=task)
    if accepted:
        record = record.with_phase(Phase.CREATED, "task accepted", at_us=created_us)
    record.phase = phase
    return record


def view_page_of(listed: list[TaskRecord], limit: int, view: View) -> ViewPage:
    """The page of `view`s a database answers for a query of `limit` tasks, from `listed`, the
    records its `query` lists with room for one more: fresh renders, and the last one's position
    if more follow."""
    page = listed[:max(limit, 0)]
    more = len(listed) > len(page) and page
    return ViewPage(",".join(view_json(r, view) for r in page), Cursor(page[-1].created_us, page[-1].id) if more else None)
