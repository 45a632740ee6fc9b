"""Webhooks against a real HTTP receiver on loopback: every event at least once, in order, as
CloudEvents 1.0 JSON with a valid signature, also after the receiver was down for a while; an
event given up on is a dead letter; a new webhook starts from now; the settings' checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tes_cts.model.states import Phase
from tes_cts.settings import load_settings
from tes_cts.settings_error import InvalidSettings
from tes_cts.tasks.lifecycle import move_through
from tes_cts.webhook_settings import Webhook, webhooks_of
from tes_cts.webhooks import CONTENT_TYPE, EVENT_TYPE, SIGNATURE_HEADER, WebhookSender

from .builders import task_record

SECRET = "s3cret"


class Receiver:
    """An HTTP server that records what it is sent, answering `status` (503: down)."""

    def __init__(self):
        self.status = 204
        self.received: list[tuple[dict, bytes, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.status < 300:
                    receiver.received.append((json.loads(body), body, dict(self.headers)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [event for event, _, _ in self.received]


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.server.shutdown()


@pytest.fixture
def sending(sqlite_db):
    """Starts a sender thread; stops every one started when the test ends."""
    stop, threads = threading.Event(), []

    def start(webhook: Webhook) -> WebhookSender:
        sender = WebhookSender(sqlite_db, webhook, source="test.tes-cts")
        sender.deliver_some(stop)  # a new webhook: its cursor starts from now
        thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
        return sender

    yield start
    stop.set()
    for thread in threads:
        thread.join(15)


def wait_until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_tasks(db, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        record = task_record()
        db.insert(record)
        move_through(db, db.get(record.id), [(Phase.PREFLIGHT, "claimed", None), (Phase.SYSTEM_ERROR, "failed", None)])
        ids.append(record.id)
    return ids


def test_every_event_arrives_in_order_signed_also_after_the_receiver_was_down(sqlite_db, receiver, sending):
    sending(Webhook(name="hook", url=receiver.url, secret=SECRET))
    first = run_tasks(sqlite_db, 2)
    wait_until(lambda: len(receiver.received) == 6)
    receiver.status = 503  # down for a while: nothing is taken
    later = run_tasks(sqlite_db, 2)
    time.sleep(2.5)
    assert len(receiver.received) == 6
    receiver.status = 200
    wait_until(lambda: len(receiver.received) == 12, timeout=30)

    events = receiver.events()
    assert [(e["subject"], e["data"]["phase"]) for e in events] == [
        (task_id, phase) for task_id in first + later for phase in ("created", "preflight", "system_error")]
    numbers = [int(e["id"].rsplit("/", 1)[1]) for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == 12
    for event, body, headers in receiver.received:
        assert headers["Content-Type"] == CONTENT_TYPE
        assert headers[SIGNATURE_HEADER] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert {key: event[key] for key in ("specversion", "type", "source", "datacontenttype")} == {
            "specversion": "1.0", "type": EVENT_TYPE, "source": "test.tes-cts", "datacontenttype": "application/json"}
        assert event["time"] == event["data"]["time"] and event["data"]["id"] == event["subject"]
    assert sqlite_db.delivery("hook") == (numbers[-1], 0)


def test_an_event_given_up_on_is_a_dead_letter_and_the_next_one_goes(sqlite_db, receiver, sending):
    receiver.status = 500
    sender = sending(Webhook(name="hook", url=receiver.url, give_up_after_s=0.5))
    [task_id] = run_tasks(sqlite_db, 1)
    wait_until(lambda: sqlite_db.delivery("hook")[1] >= 1)
    receiver.status = 200
    wait_until(lambda: len(receiver.received) >= 1)
    assert receiver.events()[0]["subject"] == task_id and receiver.events()[0]["data"]["phase"] != "created"
    assert sender.counts.dead_letters >= 1 and sender.counts.failed >= 2
    assert receiver.received[0][2].get(SIGNATURE_HEADER) is None  # no secret, no signature


def test_a_new_webhook_starts_from_now(sqlite_db, receiver, sending):
    run_tasks(sqlite_db, 1)
    sending(Webhook(name="late", url=receiver.url))
    [task_id] = run_tasks(sqlite_db, 1)
    wait_until(lambda: len(receiver.received) == 3)
    assert {e["subject"] for e in receiver.events()} == {task_id}


def test_webhook_settings_are_checked_and_named(tmp_path, monkeypatch):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    [plain, signed] = webhooks_of([{"url": "https://hooks.example.org/tes"},
                                   {"name": "b", "url": "http://127.0.0.1:9/x", "secret_file": str(secret_file),
                                    "give_up_after": "PT10M"}])
    assert plain == Webhook(name="https://hooks.example.org/tes", url="https://hooks.example.org/tes")
    assert (signed.secret, signed.give_up_after_s) == ("from-file", 600.0)
    for entries, message in (
        ([{"url": "ftp://x/y"}], "events.webhooks[0].url must be an http or https URL"),
        ([{"name": "a", "url": "http://x/"}, {"name": "a", "url": "http://y/"}], "a second webhook named 'a'"),
        ([{"url": "http://x/", "secrets": "typo"}], "events.webhooks[0] has unknown keys ['secrets']"),
        (["http://x/"], "events.webhooks[0] must be a table with a url"),
    ):
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            webhooks_of(entries)
    monkeypatch.setenv("TES_CTS_EVENTS__WEBHOOKS", '[{url = "gopher://x"}]')  # TOML, as every variable
    with pytest.raises(InvalidSettings, match="events.webhooks"):
        load_settings()


@pytest.mark.engine
def test_through_the_service_a_receiver_down_for_a_while_still_gets_every_event_signed(
        live_servers, receiver, docker_image, tmp_path):
    from .docker_env import docker_env

    receiver.status = 503
    server = live_servers.start({
        "DOCKER_HOST": docker_env()["DOCKER_HOST"],
        "TES_CTS_EVENTS__WEBHOOKS": "@json " + json.dumps([{"name": "ops", "url": receiver.url, "secret": SECRET}]),
    }, poller=True, cwd=tmp_path)
    time.sleep(1.5)  # the sender has started (its cursor: from now on)
    ids = [requests.post(server.tasks, json={"executors": [{"image": docker_image, "command": command}]},
                         timeout=10).json()["id"] for command in (["true"], ["sh", "-c", "exit 3"])]
    deadline = time.monotonic() + 60
    while any(requests.get(f"{server.tasks}/{task_id}", timeout=10).json()["state"] not in ("COMPLETE", "EXECUTOR_ERROR")
              for task_id in ids):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert receiver.received == []  # down all along
    receiver.status = 200
    wait_until(lambda: {e["subject"] for e in receiver.events() if e["data"]["state"] in ("COMPLETE", "EXECUTOR_ERROR")}
               == set(ids), timeout=90)
    for task_id, last in zip(ids, ("COMPLETE", "EXECUTOR_ERROR")):
        history = [e["data"]["state"] for e in receiver.events() if e["subject"] == task_id]
        assert history[0] == "QUEUED" and history[-1] == last and "RUNNING" in history
    for _, body, headers in receiver.received:
        assert headers[SIGNATURE_HEADER] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
