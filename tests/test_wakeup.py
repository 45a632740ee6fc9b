"""Waking the poller through its FIFO: real FIFOs, a real poller loop in a thread."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from dataclasses import asdict, replace

import pytest

from tes_cts.backends.local import LocalBackend
from tes_cts.jobfiles import ContainerSettings, Job
from tes_cts.poller import Poller
from tes_cts.wakeup import WAKE_FILE, WakeupFifo, notify
from tes_cts.wiring import build_poller, wake_path

from .builders import poller_config
from .helpers import echo_task


class CountingPoller(Poller):
    """A poller whose cycle only notes when it began, and lasts `cycle_s`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cycles: list[float] = []
        self.cycle_s = 0.0

    def cycle(self):
        self.cycles.append(time.monotonic())
        time.sleep(self.cycle_s)


@pytest.fixture
def fifo(tmp_path):
    wakeups = WakeupFifo(tmp_path / WAKE_FILE)
    yield wakeups
    wakeups.close()


@pytest.fixture
def running_loop(sqlite_db, settings, tmp_path, fifo):
    """A poller waiting on `fifo` with an interval of 30 s, in a thread, past its first cycle."""
    backend = LocalBackend(tmp_path, cpu_slots=1, ram_gb=1, containers=ContainerSettings())
    poller = CountingPoller(sqlite_db, backend, poller_config(settings, interval_s=30.0), wakeups=fifo)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,))
    thread.start()
    wait_until(lambda: poller.cycles)
    yield poller, stop, thread
    stop.set()
    thread.join(5)


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_notify_without_a_listener_is_silent_and_never_blocks(tmp_path):
    """Nobody to wake is no error; a blocking open or write would hang here (pytest-timeout)."""
    nothing_there = tmp_path / "absent.wake"
    nobody_listening = tmp_path / "unheld.wake"
    os.mkfifo(nobody_listening, 0o600)
    a_plain_file = tmp_path / "file.wake"
    a_plain_file.write_text("kept")
    for path in (nothing_there, nobody_listening, a_plain_file):
        for _ in range(200):
            notify(path)
    assert a_plain_file.read_text() == "kept"
    assert not nothing_there.exists()


def test_a_full_fifo_does_not_block_the_notifier(fifo):
    for _ in range(100_000):  # more than a pipe holds
        notify(fifo.path)
    assert fifo.wait(0)


def test_the_waiting_loop_wakes_at_once_on_a_notify(running_loop, fifo):
    poller, _, _ = running_loop
    delays = []
    for _ in range(5):
        before = len(poller.cycles)
        sent = time.monotonic()
        notify(fifo.path)
        wait_until(lambda: len(poller.cycles) > before, timeout=1.0)
        delays.append(poller.cycles[-1] - sent)
    assert max(delays) < 1.0, delays  # woken, not at the end of the 30 s interval


def test_a_thousand_notifies_make_few_cycles(running_loop, fifo):
    poller, _, _ = running_loop
    poller.cycle_s = 0.05  # as a real cycle takes a while: the wake-ups sent meanwhile make one more
    before = len(poller.cycles)
    for _ in range(1000):
        notify(fifo.path)
    wait_until(lambda: len(poller.cycles) > before)
    time.sleep(0.3)
    assert 1 <= len(poller.cycles) - before <= 3


def test_the_stop_event_ends_the_wait_at_once(running_loop):
    _, stop, thread = running_loop
    time.sleep(0.05)  # well into the 30 s wait
    started = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 1.0  # not after the 30 s wait


def test_a_loop_without_a_fifo_waits_on_the_stop_event(sqlite_db, settings, tmp_path):
    backend = LocalBackend(tmp_path, cpu_slots=1, ram_gb=1, containers=ContainerSettings())
    poller = CountingPoller(sqlite_db, backend, poller_config(settings, interval_s=30.0))
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,))
    thread.start()
    wait_until(lambda: poller.cycles)
    stop.set()
    thread.join(1)
    assert not thread.is_alive() and len(poller.cycles) == 1


def test_the_fifo_is_made_0600_and_replaces_anything_else_at_its_path(tmp_path):
    path = tmp_path / "work" / WAKE_FILE
    path.parent.mkdir()
    path.write_text("a file left here")
    replaced = WakeupFifo(path)
    try:
        mode = os.lstat(path).st_mode
        assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o600
    finally:
        replaced.close()

    os.chmod(path, 0o666)
    reused = WakeupFifo(path)  # an earlier poller's FIFO is kept, its mode made 0600 again
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        notify(path)
        assert reused.wait(1) and not reused.wait(0)
    finally:
        reused.close()


def test_a_link_at_the_path_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    path = tmp_path / WAKE_FILE
    path.symlink_to(target)
    fifo = WakeupFifo(path)
    try:
        assert stat.S_ISFIFO(os.lstat(path).st_mode) and target.read_text() == "untouched"
    finally:
        fifo.close()


def test_the_api_wakes_the_poller_of_its_work_dir_on_create_and_on_cancel(client, settings, sqlite_db):
    poller = build_poller(settings, sqlite_db)
    fifo = poller.wakeups
    try:
        assert fifo.path == wake_path(settings) and fifo.path.startswith(settings.work_dir)
        assert not fifo.wait(0)
        task_id = client.post("/ga4gh/tes/v1/tasks", json=echo_task()).json()["id"]
        assert fifo.wait(0)
        assert client.post(f"/ga4gh/tes/v1/tasks/{task_id}:cancel").status_code == 200
        assert fifo.wait(0)
        assert not fifo.wait(0)
    finally:
        fifo.close()


def test_a_job_file_from_before_wake_paths_still_loads(tmp_path):
    job = Job(task_id="t1", attempt=1, task={"executors": []}, run_dir=str(tmp_path), wake_path="/w/poller.wake")
    older = asdict(job)
    del older["wake_path"]
    (tmp_path / "job.json").write_text(json.dumps(older))
    assert Job.read(tmp_path / "job.json") == replace(job, wake_path=None)
    assert Job.read(job.write()) == job
