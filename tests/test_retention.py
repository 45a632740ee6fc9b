"""Finished tasks' run directories go after `poller.run_retention`, active and unknown ones stay;
events go after `poller.event_retention`."""

from __future__ import annotations

import os
import time

from tes_cts.clock import now_us
from tes_cts.model.events import EventQuery
from tes_cts.model.states import Phase
from tes_cts.poller.retention import SWEEP_EVERY_S, EventRetention, RunRetention

from .builders import task_record

DAY_S = 86_400.0


def run_dir_of(runs, task_id: str, age_s: float) -> None:
    """A task's run directory with one attempt whose files were written `age_s` ago."""
    attempt = runs / task_id / "1"
    (attempt / "logs").mkdir(parents=True)
    (attempt / "result.json").write_text("{}")
    then = time.time() - age_s
    for path in (attempt / "logs", attempt / "result.json", attempt, runs / task_id):
        os.utime(path, (then, then))


def test_finished_tasks_older_than_the_retention_go_and_everything_else_stays(sqlite_db, tmp_path):
    runs = tmp_path / "runs"
    records = {name: task_record(phase=phase) for name, phase in (
        ("old_done", Phase.COMPLETE), ("old_failed", Phase.SYSTEM_ERROR), ("old_running", Phase.RUNNING),
        ("new_done", Phase.COMPLETE))}
    for name, record in records.items():
        sqlite_db.insert(record)
        run_dir_of(runs, record.id, age_s=DAY_S if name.startswith("new") else 8 * DAY_S)
    run_dir_of(runs, "not-a-task-of-this-store", age_s=8 * DAY_S)

    removed = RunRetention(runs, 7 * DAY_S, sqlite_db).sweep(time.time())

    assert sorted(removed) == sorted([records["old_done"].id, records["old_failed"].id])
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        [records["old_running"].id, records["new_done"].id, "not-a-task-of-this-store"])
    assert sqlite_db.get(records["old_done"].id).phase is Phase.COMPLETE  # what the API shows stays


def test_a_sweep_runs_once_an_hour_and_not_at_all_without_a_retention(sqlite_db, tmp_path):
    runs = tmp_path / "runs"
    sqlite_db.insert(record := task_record(phase=Phase.COMPLETE))
    now = [time.time()]
    retention = RunRetention(runs, 7 * DAY_S, sqlite_db, clock=lambda: now[0])
    assert retention.maybe_sweep() == []  # nothing there yet: the first sweep found nothing
    run_dir_of(runs, record.id, age_s=8 * DAY_S)
    assert retention.maybe_sweep() == []  # not due
    now[0] += SWEEP_EVERY_S
    assert retention.maybe_sweep() == [record.id]

    run_dir_of(runs, record.id, age_s=8 * DAY_S)
    assert RunRetention(runs, None, sqlite_db).maybe_sweep() == [] and (runs / record.id).exists()


def test_events_older_than_their_retention_are_pruned_at_most_once_per_sweep_period(sqlite_db):
    old, new = (task_record(created_us=now_us() - int(age * 1e6)) for age in (3 * DAY_S, 60.0))
    for record in (old, new):
        sqlite_db.insert(record)
    now = [time.time()]
    retention = EventRetention(DAY_S, sqlite_db, clock=lambda: now[0])
    assert retention.maybe_sweep() == 1
    assert [e.task_id for e in sqlite_db.events(EventQuery())] == [new.id]
    sqlite_db.insert(task_record(created_us=now_us() - int(2 * DAY_S * 1e6)))
    sqlite_db.insert(task_record())  # the newest event always stays: this one is newer
    assert retention.maybe_sweep() == 0  # swept already within the period
    now[0] += SWEEP_EVERY_S
    assert retention.maybe_sweep() == 1
    assert EventRetention(None, sqlite_db).maybe_sweep() == 0
