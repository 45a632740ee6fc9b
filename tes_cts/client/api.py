"""A TES server as the command line sees it: where its API is, the caller's credentials, and
errors as one readable line."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import requests

DEFAULT_SERVER = "http://127.0.0.1:8000"
# Where a TES server serves the API: the GA4GH path first, then the one older clients use.
API_PATHS = ("/ga4gh/tes/v1", "/v1")
TIMEOUT_S = 30
TERMINAL_STATES = frozenset({"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"})
# With the event stream, `wait` still reads every task this often: an event it missed (a stream
# that broke) costs at most this long.
STREAM_SAFETY_POLL_S = 5.0
# The header of tes-cts's logs extension that gives a full executor log's size when it was read.
LOG_SIZE_HEADER = "X-Log-Size"


# Exit codes of `task wait` and `run --wait`: how the tasks ended (the worst of them, in this order
# from best), and why the command could not say.
EXIT_COMPLETE = 0
EXIT_ERROR = 1          # the server could not be reached, refused the request, or bad input
EXIT_USAGE = 2          # argparse's own
EXIT_CANCELED = 3       # CANCELED or PREEMPTED
EXIT_EXECUTOR_ERROR = 4
EXIT_SYSTEM_ERROR = 5
EXIT_TIMEOUT = 6        # --timeout passed with a task not yet terminal
EXIT_OF_STATE = {"COMPLETE": EXIT_COMPLETE, "CANCELED": EXIT_CANCELED, "PREEMPTED": EXIT_CANCELED,
                 "EXECUTOR_ERROR": EXIT_EXECUTOR_ERROR, "SYSTEM_ERROR": EXIT_SYSTEM_ERROR}


class WaitTimeout(Exception):
    """--timeout passed; `tasks` holds what was last seen of each task."""

    def __init__(self, tasks: dict[str, dict]):
        super().__init__("timed out")
        self.tasks = tasks


class ApiError(Exception):
    """What went wrong talking to the server, as one line (the server's `detail` and each
    `field: reason` of its error body, or why it could not be reached)."""


@dataclass(frozen=True)
class Credentials:
    user: str | None = None
    password: str | None = None
    token: str | None = None


class TesApi:
    """The TES API of `server` (a base URL; the API path is found on first use)."""

    def __init__(self, server: str = DEFAULT_SERVER, credentials: Credentials = Credentials()):
        import requests  # here, not above: every `tes-cts` command line loads this module

        self.server = server.rstrip("/")
        self._session = requests.Session()
        if credentials.token:
            self._session.headers["Authorization"] = f"Bearer {credentials.token}"
        elif credentials.user is not None:
            self._session.auth = (credentials.user, credentials.password or "")
        self._base: str | None = None

    @property
    def base(self) -> str:
        """The API's URL: the server itself if it already names an API path, else the first of
        API_PATHS whose service-info answers."""
        if self._base is None:
            if self.server.endswith(API_PATHS):
                self._base = self.server
            else:
                for path in API_PATHS:
                    response = self._send("GET", self.server + path + "/service-info")
                    if response.status_code == 200:
                        self._base = self.server + path
                        break
                else:
                    raise ApiError(f"{self.server} serves no TES API (no service-info under {' or '.join(API_PATHS)})")
        return self._base

    def call(self, method: str, path: str, **kwargs) -> dict:
        """`method` on the API's `path` (as "/tasks"); the decoded JSON answer, or ApiError."""
        response = self._send(method, self.base + path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(error_line(response))
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{method} {path}: the server answered {response.status_code} with no JSON") from None

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        import requests

        try:
            return self._session.request(method, url, timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(f"cannot reach {self.server}: {_reason(exc)}") from None

    # -- the TES operations ----------------------------------------------------------------

    def service_info(self) -> dict:
        return self.call("GET", "/service-info")

    def create(self, task: dict) -> str:
        return self.call("POST", "/tasks", json=task)["id"]

    def get(self, task_id: str, view: str = "FULL") -> dict:
        return self.call("GET", f"/tasks/{task_id}", params={"view": view})

    def cancel(self, task_id: str) -> None:
        self.call("POST", f"/tasks/{task_id}:cancel")

    def executor_log(self, task_id: str, attempt: int, executor: int, stream: str, offset: int = 0,
                     length: int | None = None) -> tuple[bytes, int] | None:
        """Part of an executor's full log from `offset`, through tes-cts's logs extension: its
        bytes and the log's size. None when the server does not serve that log: it has none (not
        written yet, or removed after its retention), or it is not tes-cts (TES has no such
        call); the FULL view's tail is then all there is."""
        params = {"offset": offset, **({"length": length} if length is not None else {})}
        response = self._send("GET", f"{self.base}/tasks/{task_id}/logs/{attempt}/{executor}/{stream}", params=params)
        if response.status_code != 200 or LOG_SIZE_HEADER not in response.headers:
            return None
        return response.content, int(response.headers[LOG_SIZE_HEADER])

    def wait(self, task_ids: list[str], timeout_s: float | None = None, view: str = "BASIC",
             on_change=None, poll_s: float = 0.2, max_poll_s: float = 2.0) -> dict[str, dict]:
        """Until every task is terminal; each task as last seen (`view`). `on_change(task,
        previous_state)` is called at the first sight of a task and at each state change (and,
        with view FULL, which has the system logs, when the reason of a wait changes). Raises
        WaitTimeout.

        With the server's event stream (tes-cts), a task is read again when an event says it
        changed, and all of them every STREAM_SAFETY_POLL_S; without, every task is polled,
        from every `poll_s` slowing to every `max_poll_s`."""
        from .events import EventFeed

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        feed = EventFeed(self._session, self.base + "/events")  # before the first look: no change is missed
        seen: dict[str, dict] = {}
        due = set(task_ids)
        try:
            while True:
                for task_id in task_ids:
                    if task_id not in due or seen.get(task_id, {}).get("state") in TERMINAL_STATES:
                        continue
                    task = self.get(task_id, view)
                    before = seen.get(task_id)
                    if on_change is not None and (before is None or _news(before) != _news(task)):
                        on_change(task, before.get("state") if before else None)
                    seen[task_id] = task
                if all(seen[task_id].get("state") in TERMINAL_STATES for task_id in task_ids):
                    return seen
                left = None if deadline is None else max(deadline - time.monotonic(), 0)
                if left == 0:
                    raise WaitTimeout(seen)
                if feed.live:
                    changed = feed.changed(STREAM_SAFETY_POLL_S if left is None else min(STREAM_SAFETY_POLL_S, left))
                    due = (changed & set(task_ids)) if changed else set(task_ids)
                else:
                    time.sleep(poll_s if left is None else min(poll_s, left))
                    poll_s = min(poll_s * 1.5, max_poll_s)
        finally:
            feed.close()

    def list(self, view: str = "MINIMAL", page_size: int | None = None, every_page: bool = True,
             **filters) -> Iterator[dict]:
        """Tasks newest first, following next_page_token while `every_page`. `filters`: state,
        name_prefix, and tags as a dict (a key with an empty value: any value)."""
        params: dict = {"view": view}
        if page_size:
            params["page_size"] = page_size
        for name in ("state", "name_prefix"):
            if filters.get(name):
                params[name] = filters[name]
        tags = filters.get("tags") or {}
        if tags:
            params["tag_key"] = list(tags)
            params["tag_value"] = list(tags.values())
        while True:
            page = self.call("GET", "/tasks", params=params)
            yield from page.get("tasks", [])
            token = page.get("next_page_token")
            if not token or not every_page:
                return
            params["page_token"] = token


def worst_exit(tasks) -> int:
    """The exit code of tasks that all ended: that of the worst state among them."""
    return max((EXIT_OF_STATE.get(task.get("state"), EXIT_SYSTEM_ERROR) for task in tasks), default=EXIT_COMPLETE)


# tes-cts reports each uploaded output's CRC64NVME in its attempt's metadata under this prefix and
# the output's URL: tesOutputFileLog has no field for it.
OUTPUT_CHECKSUM_KEY = "crc64nvme:"


def last_attempt(task: dict) -> dict:
    """The task's last log entry (its last attempt: the one whose outcome is the task's), or {}."""
    logs = task.get("logs") or []
    return logs[-1] if logs else {}


def output_checksum(attempt: dict, url: str) -> str | None:
    """The CRC64NVME (base64) the attempt reports for its output at `url`, if the server says."""
    return (attempt.get("metadata") or {}).get(OUTPUT_CHECKSUM_KEY + url)


def wait_reason(task: dict) -> str | None:
    """The last line of the task's last system log (tes-cts writes "waiting: ..." there while a
    task waits, and why it failed when it fails), if any."""
    lines = last_attempt(task).get("system_logs") or []
    return lines[-1] if lines else None


def _news(task: dict) -> tuple:
    return task.get("state"), wait_reason(task)


def error_line(response: requests.Response) -> str:
    """The server's error answer as one line: its detail (or title) and each field's reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = " ".join(response.text.split())[:200]
        return f"HTTP {response.status_code}: {text or response.reason}"
    parts = [str(body.get("detail") or body.get("title") or body.get("message") or response.reason)]
    for error in body.get("errors") or []:
        if isinstance(error, dict) and error.get("field") and error.get("reason"):
            part = f"{error['field']}: {error['reason']}"
            if part not in parts[0]:
                parts.append(part)
    return f"HTTP {response.status_code}: " + "; ".join(parts)


def _reason(exc: requests.RequestException) -> str:
    text = str(exc.__context__ or exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker.lower()
    return text.split(":")[-1].strip() or type(exc).__name__


def add_connection_arguments(parser) -> None:
    """--server, --user, --token (and their environment variables) on a verb's parser."""
    group = parser.add_argument_group("connection")
    group.add_argument("--server", default=os.environ.get("TES_SERVER", DEFAULT_SERVER),
                       help=f"the TES server's URL (TES_SERVER; default {DEFAULT_SERVER})")
    group.add_argument("--user", default=os.environ.get("TES_USER"),
                       help="user name for Basic authentication (TES_USER); the password from TES_PASSWORD or a prompt")
    group.add_argument("--token", default=os.environ.get("TES_TOKEN"), help="bearer token (TES_TOKEN)")


def api_from(args) -> TesApi:
    """The server and credentials a verb's arguments name."""
    password = None
    if args.user and not args.token:
        password = os.environ.get("TES_PASSWORD")
        if password is None:
            from getpass import getpass

            password = getpass(f"password for {args.user} at {args.server}: ")
    return TesApi(args.server, Credentials(user=args.user, password=password, token=args.token))
