"""How many calls a poll cycle makes to the schedd: the same for ten active tasks as for a
thousand, whatever their jobs are doing."""

from __future__ import annotations

import pytest

from tes_cts.backends.htcondor_description import JobTemplate
from tes_cts.model.query import TaskQuery
from tes_cts.model.states import TesState
from tes_cts.poller import Poller

from .builders import htcondor_backend, poller_config, task_record
from .condor_sim import SimulatedSchedd


def cycle_calls(schedd: SimulatedSchedd, poller: Poller) -> dict[str, int]:
    schedd.calls.clear()
    poller.cycle()
    return dict(schedd.calls)


@pytest.mark.parametrize("tasks", [10, 1000])
def test_a_poll_cycle_makes_the_same_few_calls_whatever_the_number_of_tasks(tmp_path, sqlite_db, settings, tasks):
    # A pool without slots that matches nothing by itself (no thread): the test moves each job.
    schedd = SimulatedSchedd(tmp_path / "pool", slots=0)
    backend = htcondor_backend(settings, tmp_path / "work", JobTemplate("test.tes-cts", ("/bin/true",)),
                               lambda: schedd, lost_grace_s=3600)
    poller = Poller(sqlite_db, backend, poller_config(settings, batch_size=100), poller_id="p")
    for _ in range(tasks):
        sqlite_db.insert(task_record())

    assert cycle_calls(schedd, poller) == {"query": 1, "submit": tasks}  # the check at start, then dispatch
    assert cycle_calls(schedd, poller) == {"query": 1}  # every job idle: one query, all tasks noted
    assert cycle_calls(schedd, poller) == {"query": 1}

    jobs = list(schedd.queue)
    for job in jobs[0::4]:                   # running
        schedd.queue[job].update({"JobStatus": 2, "NumJobStarts": 1, "RemoteHost": "slot1@node"})
    for job in jobs[1::4]:                   # removed by an admin: in the history
        schedd.remove(job, "condor_rm by admin")
    for job in jobs[2::4]:                   # lost by the schedd
        schedd.forget(job)
    assert cycle_calls(schedd, poller) == {"query": 1, "history": 1}
    # The lost jobs wait out their grace period without another look at the history.
    assert cycle_calls(schedd, poller) == {"query": 1}

    records = {r.logs[0]["metadata"]["backend_job_id"]: r for r in sqlite_db.query(TaskQuery(limit=tasks + 1))}
    assert {records[job].state for job in jobs[0::4]} == {TesState.RUNNING}
    assert {records[job].state for job in jobs[1::4]} == {TesState.SYSTEM_ERROR}
    assert {records[job].state for job in jobs[2::4] + jobs[3::4]} == {TesState.INITIALIZING}
