"""`GET /events` on a real `tes-cts serve`: every transition of every task once and in order
while they happen, a reconnect with Last-Event-ID that misses nothing and repeats nothing, the
filters, and under basic auth each user's own events (an admin's: everyone's)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from tes_cts.auth.hashing import hash_password
from tes_cts.client.api import TesApi
from tes_cts.client.events import EventFeed
from tes_cts.database.sqlite import SqliteTaskDatabase
from tes_cts.model.states import Phase
from tes_cts.tasks.lifecycle import move_through

from .auth_servers import basic_auth, toml_table
from .helpers import echo_task

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}


class Stream:
    """A client reading the stream in a thread: the events as (id, data), in arrival order."""

    def __init__(self, url: str, headers: dict | None = None, params: dict | None = None):
        self.events: list[tuple[int, dict]] = []
        self.response = requests.get(url, headers=headers, params=params, stream=True, timeout=(5, 60))
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            # chunk_size 1: each line as soon as it comes (by default iter_lines waits for 512 bytes)
            for line in self.response.iter_lines(chunk_size=1, decode_unicode=True):
                if line:
                    if not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        fields[name] = value
                    continue
                if fields.get("event") == "state":
                    self.events.append((int(fields["id"]), json.loads(fields["data"])))
                fields = {}
        except (requests.RequestException, AttributeError):  # closed by the test
            pass

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[int, dict]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert time.monotonic() < deadline, f"{len(self.events)} events of {count}: {self.events}"
            time.sleep(0.05)
        time.sleep(0.5)  # and no more than that
        return list(self.events)

    def close(self) -> None:
        """Hang up. Closing the response alone would wait for the reader's blocked read to
        return (at the next heartbeat): shutting the socket down ends that read now."""
        sock = getattr(getattr(self.response.raw, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.response.close()
        self._thread.join(5)


def store_of(server) -> SqliteTaskDatabase:
    return SqliteTaskDatabase(server.cwd / "work" / "tes-cts.sqlite3")


def walk(database, task_id: str, *phases: Phase) -> None:
    """The poller's moves, made on the server's store (its poller is off)."""
    move_through(database, database.get(task_id), [(phase, f"to {phase.value}", None) for phase in phases])


def create(server, headers: dict | None = None) -> str:
    response = requests.post(server.tasks, json=echo_task(), headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def server(live_servers):
    return live_servers.start()


def test_every_transition_of_every_task_once_in_order_then_a_reconnect_misses_nothing(server):
    events_url = f"{server.url}/ga4gh/tes/v1/events"
    stream = Stream(events_url)
    time.sleep(0.3)  # the stream starts from now: let it read where now is
    database = store_of(server)
    first, second = create(server), create(server)
    walk(database, first, Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN)  # one write, three changes
    assert requests.post(f"{server.tasks}/{second}:cancel", timeout=10).status_code == 200
    walk(database, first, Phase.RUNNING, Phase.STAGING_OUT, Phase.COMPLETE)
    seen = stream.wait_for(9)
    stream.close()
    by_task = {task: [data["phase"] for _, data in seen if data["id"] == task] for task in (first, second)}
    assert by_task == {first: ["created", "preflight", "submitted", "staging_in", "running", "staging_out", "complete"],
                       second: ["created", "canceled"]}
    assert [data["state"] for _, data in seen if data["id"] == second] == ["QUEUED", "CANCELED"]
    ids = [event_id for event_id, _ in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 9
    assert all(data["reason"] and data["time"].endswith("Z") for _, data in seen)

    # Away for a while: what happened meanwhile comes after the last event seen, once.
    third = create(server)
    walk(database, third, Phase.PREFLIGHT)
    again = Stream(events_url, headers={"Last-Event-ID": str(ids[-1])})
    missed = again.wait_for(2)
    assert [(data["id"], data["phase"]) for _, data in missed] == [(third, "created"), (third, "preflight")]
    walk(database, third, Phase.SYSTEM_ERROR)
    assert [data["phase"] for _, data in again.wait_for(3)][2:] == ["system_error"]
    again.close()
    by_query = Stream(events_url, params={"last_event_id": str(ids[-1])})
    assert [event for event, _ in by_query.wait_for(3)] == [event for event, _ in again.events]
    by_query.close()
    database.close()


def test_filters_by_task_and_by_state(server):
    database = store_of(server)
    start = database.last_event_seq()
    one, other = create(server), create(server)
    walk(database, one, Phase.PREFLIGHT, Phase.SUBMITTED)
    walk(database, other, Phase.PREFLIGHT, Phase.SUBMITTED)
    events_url = f"{server.url}/v1/events"
    by_task = Stream(events_url, headers={"Last-Event-ID": str(start)}, params={"task_id": one})
    assert [data["phase"] for _, data in by_task.wait_for(3)] == ["created", "preflight", "submitted"]
    by_state = Stream(events_url, headers={"Last-Event-ID": str(start)}, params={"state": "INITIALIZING"})
    assert [data["id"] for _, data in by_state.wait_for(2)] == [one, other]
    walk(database, other, Phase.CANCELING)
    by_states = Stream(events_url, headers={"Last-Event-ID": str(start)}, params={"state": "INITIALIZING,CANCELING"})
    assert [data["state"] for _, data in by_states.wait_for(3)] == ["INITIALIZING", "INITIALIZING", "CANCELING"]
    for stream in (by_task, by_state, by_states):
        stream.close()
    database.close()


@pytest.mark.parametrize("headers,params", [
    ({"Last-Event-ID": "not a number"}, {}), ({"Last-Event-ID": "9" * 40}, {}), ({}, {"last_event_id": "-3"}),
    ({}, {"state": "NO_SUCH_STATE"}), ({}, {"task_id": "\u00e9\u00e9 <x>"}), ({}, {"state": ",,"}),
])
def test_odd_parameters_start_a_stream_from_now_without_an_error(server, headers, params):
    stream = Stream(f"{server.url}/v1/events", headers=headers, params=params)
    stream.close()


def test_a_stream_holds_no_request_thread(server):
    """More open streams than the WSGI pool has threads (10), and the API still answers."""
    streams = [Stream(f"{server.url}/v1/events") for _ in range(12)]
    started = time.monotonic()
    assert requests.get(f"{server.url}/v1/service-info", timeout=10).status_code == 200
    assert time.monotonic() - started < 5
    task_id = create(server)
    assert all(any(data["id"] == task_id for _, data in stream.wait_for(1)) for stream in streams)
    for stream in streams:
        stream.close()


def test_under_basic_auth_each_user_sees_their_own_events_and_an_admin_everyone_s(live_servers):
    server = live_servers.start({
        "TES_CTS_AUTH__PROVIDERS": '["basic"]',
        "TES_CTS_AUTH__BASIC__USERS": toml_table({name: hash_password(pw) for name, pw in PASSWORDS.items()}),
        "TES_CTS_AUTH__ADMINS": '["basic:root"]',
    })
    events_url = f"{server.url}/ga4gh/tes/v1/events"
    assert requests.get(events_url, timeout=10).status_code == 401
    assert requests.get(events_url, headers=basic_auth("alice", "wrong"), timeout=10).status_code == 401
    streams = {name: Stream(events_url, headers=basic_auth(name, pw)) for name, pw in PASSWORDS.items()}
    time.sleep(0.3)
    alices = create(server, basic_auth("alice", PASSWORDS["alice"]))
    bobs = create(server, basic_auth("bob", PASSWORDS["bob"]))
    assert [data["id"] for _, data in streams["alice"].wait_for(1)] == [alices]
    assert [data["id"] for _, data in streams["bob"].wait_for(1)] == [bobs]
    assert [data["id"] for _, data in streams["root"].wait_for(2)] == [alices, bobs]
    for stream in streams.values():
        stream.close()


def test_the_clis_wait_hears_a_change_from_the_stream_instead_of_its_next_poll(server):
    api = TesApi(server.url)
    task_id = create(server)
    database = store_of(server)
    threading.Timer(1.0, walk, args=(database, task_id, Phase.CANCELED)).start()
    started = time.monotonic()
    [done] = api.wait([task_id], timeout_s=20, poll_s=30, max_poll_s=30).values()  # polling alone: 30 s
    assert done["state"] == "CANCELED" and time.monotonic() - started < 5
    database.close()


def test_without_a_stream_the_feed_is_not_live_and_wait_polls(server):
    api = TesApi(server.url)
    assert not EventFeed(api._session, f"{server.url}/v1/no-such-stream").live
    feed = EventFeed(api._session, f"{server.url}/v1/events")
    assert feed.live
    feed.close()
