"""Failed Basic sign-ins are throttled per client address and per user name at that address:
the rules on a clock of the test's own, then over a live `tes-cts serve` from two loopback
addresses."""

from __future__ import annotations

import base64
import http.client
import json
import time

import pytest

from tes_cts.auth.hashing import hash_password
from tes_cts.auth.throttle import FIRST_DELAY_S, FORGET_AFTER_S, FREE_FAILURES, MAX_DELAY_S, FailureThrottle, TooManyFailures

from .auth_servers import toml_table


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def wait_of(throttle: FailureThrottle, user: str, address: str) -> float:
    try:
        throttle.check(user, address)
    except TooManyFailures as exc:
        return exc.retry_after_s
    return 0.0


def test_free_failures_then_a_wait_that_doubles_up_to_its_cap(clock):
    throttle = FailureThrottle(clock)
    for _ in range(FREE_FAILURES):
        throttle.failed("alice", "10.0.0.1")
        assert wait_of(throttle, "alice", "10.0.0.1") == 0
    waits = []
    for _ in range(8):
        throttle.failed("alice", "10.0.0.1")
        waits.append(wait_of(throttle, "alice", "10.0.0.1"))
    assert waits[:3] == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S]
    assert max(waits) == MAX_DELAY_S
    clock.now += MAX_DELAY_S
    assert wait_of(throttle, "alice", "10.0.0.1") == 0  # heard again once the wait is over


def test_a_user_name_is_never_locked_out_from_another_address(clock):
    throttle = FailureThrottle(clock)
    for _ in range(FREE_FAILURES + 3):
        throttle.failed("alice", "10.0.0.1")
    assert wait_of(throttle, "alice", "10.0.0.1") > 0
    assert wait_of(throttle, "bob", "10.0.0.1") > 0  # the address guessed too often, whatever the name
    assert wait_of(throttle, "alice", "10.0.0.2") == 0


def test_a_success_forgets_the_pair_and_quiet_forgets_everything(clock):
    throttle = FailureThrottle(clock)
    for _ in range(FREE_FAILURES):
        throttle.failed("alice", "10.0.0.1")
    throttle.succeeded("alice", "10.0.0.1")
    throttle.failed("alice", "10.0.0.1")
    # The pair starts again; the address keeps its count (it failed FREE_FAILURES + 1 times).
    assert wait_of(throttle, "alice", "10.0.0.1") == FIRST_DELAY_S
    clock.now += FORGET_AFTER_S + 1
    throttle.failed("alice", "10.0.0.1")
    assert wait_of(throttle, "alice", "10.0.0.1") == 0


def get_tasks(server, user: str, password: str, source: str) -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(source, 0))
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    connection.request("GET", "/ga4gh/tes/v1/tasks", headers={"Authorization": f"Basic {credentials}"})
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    return response.status, {name.lower(): value for name, value in response.getheaders()}, body


def test_guessing_gets_429_with_retry_after_while_the_user_elsewhere_signs_in(live_servers, tmp_path):
    password = "the right one"
    env = {"TES_CTS_AUTH__PROVIDERS": '["basic"]', "TES_CTS_AUTH__BASIC__USERS": toml_table({"alice": hash_password(password)})}
    with live_servers.start(env, cwd=tmp_path, workers=1) as server:  # each API process counts for itself
        statuses = [get_tasks(server, "alice", f"guess {i}", "127.0.0.1")[0] for i in range(FREE_FAILURES + 1)]
        assert statuses == [401] * (FREE_FAILURES + 1)

        status, headers, body = get_tasks(server, "alice", password, "127.0.0.1")  # the right one, too soon
        assert status == 429 and headers["retry-after"] == "1"
        assert body == {"title": "Too Many Requests", "status": 429,
                        "detail": "basic: too many failed sign-ins from this address; retry in 1 s"}

        assert get_tasks(server, "alice", password, "127.0.0.2")[0] == 200  # not locked out elsewhere
        time.sleep(float(headers["retry-after"]))
        assert get_tasks(server, "alice", password, "127.0.0.1")[0] == 200
