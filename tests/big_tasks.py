"""The biggest task bodies a server takes, as the bytes a client sends, and a thread that posts
one in a loop: `tests/test_request_stall.py` and `benchmarks/request_stall.py` see what they cost
the other requests."""

from __future__ import annotations

import http.client
import json
import threading
import time

# One command argument: a realistic long option, 64 bytes as JSON. Many short strings are what
# costs most per byte to decode, check and encode.
ARGUMENT = "--input-{:06d}=s3://lab-raw/cohort-7/sample-0001/reads_R1.fq.gz"
MARGIN_BYTES = 1024  # a body stays this far under the limit


def big_body(max_body_bytes: int, executors: int, *, wrong: bool) -> bytes:
    """A task of `executors` executors whose commands make it as big as `max_body_bytes` allows.
    A `wrong` one is the same size, with three problems in every executor: no image, every other
    argument a number, a relative workdir."""
    room = max_body_bytes - MARGIN_BYTES
    one = len(_encoded(executors, 1, wrong))
    per_argument = (len(_encoded(executors, 101, wrong)) - one) / 100
    arguments = max(1, int((room - one) / per_argument))
    body = _encoded(executors, arguments, wrong)
    while len(body) > room and arguments > 1:
        arguments -= 1
        body = _encoded(executors, arguments, wrong)
    return body


def _encoded(executors: int, arguments: int, wrong: bool) -> bytes:
    if wrong:
        command = [n if n % 2 else ARGUMENT.format(n) for n in range(arguments)]
        executor = {"image": "", "command": command, "workdir": "relative/dir"}
    else:
        command = ["tool", *(ARGUMENT.format(n) for n in range(arguments))]
        executor = {"image": "ubuntu:24.04", "command": command, "workdir": "/data/work"}
    task = {"name": "big", "executors": [executor] * executors}
    return json.dumps(task, separators=(",", ":")).encode()


class Poster:
    """A thread that POSTs `body` to the tasks of the server on `port` in a loop until `stop()`,
    on a connection of its own, and checks every answer: `expected` 200 with an id, or 400
    naming the fields."""

    def __init__(self, port: int, body: bytes, expected: int):
        self.port, self.body, self.expected = port, body, expected
        self.latencies: list[float] = []  # seconds of each POST, sent to answered
        self.problem = ""  # the first answer (or failure) that was not as expected
        self.answered = threading.Event()  # set by the first answer or failure
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Once the POST on its way is answered."""
        self._stopping.set()
        self._thread.join(timeout=300)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            while not self._stopping.is_set():
                started = time.perf_counter()
                conn.request("POST", "/ga4gh/tes/v1/tasks", body=self.body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                text = response.read()
                self.latencies.append(time.perf_counter() - started)
                self.problem = self.problem or _unexpected(response.status, text, self.expected)
                self.answered.set()
        except Exception as exc:  # noqa: BLE001 - the caller reads `problem`
            self.problem = self.problem or f"{type(exc).__name__}: {exc}"
        finally:
            self.answered.set()
            conn.close()


def _unexpected(status: int, text: bytes, expected: int) -> str:
    if status != expected:
        return f"POST answered {status}, not {expected}: {text[:300]!r}"
    answer = json.loads(text)
    # A long list ends with "and N more problems", about the whole task (field "").
    if expected == 400 and not all(error["field"] for error in answer.get("errors", [{"field": ""}])[:-1]):
        return f"the 400 does not name every field: {text[:300]!r}"
    if expected == 200 and "id" not in answer:
        return f"the 200 has no id: {text[:300]!r}"
    return ""
