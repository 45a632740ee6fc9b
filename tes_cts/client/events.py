"""The server's event stream (tes-cts's `GET /events`) as `task wait` uses it: which tasks changed,
so that it asks for those at once instead of polling every task on a timer.

A thread reads the stream and notes the task of each event. A server without the stream (plain
TES: 404), one that drops it, or a reader that fails leaves `changed` returning after its timeout
with nothing, and the caller's polling goes on as it would without a stream.
"""

from __future__ import annotations

import json
import socket
import threading


class EventFeed:
    def __init__(self, session, url: str, connect_timeout_s: float = 10.0):
        """Open the stream at `url` with `session` (its credentials); `live` says whether it is."""
        self._changed: set[str] = set()
        self._news = threading.Condition()
        self._response = None
        try:
            response = session.get(url, stream=True, timeout=(connect_timeout_s, None),
                                   headers={"Accept": "text/event-stream"})
        except OSError:  # requests' errors are OSErrors too
            return
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.close()
            return
        self._response = response
        threading.Thread(target=self._read, name="event-feed", daemon=True).start()

    @property
    def live(self) -> bool:
        return self._response is not None

    def changed(self, timeout_s: float) -> set[str]:
        """The tasks an event was about since the last call; waits up to `timeout_s` for one."""
        with self._news:
            if not self._changed:
                self._news.wait(timeout_s)
            changed, self._changed = self._changed, set()
        return changed

    def close(self) -> None:
        if self._response is None:
            return
        # The reader's read returns only at the next line: shutting the socket down ends it now.
        sock = getattr(getattr(self._response.raw, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._response.close()

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines(chunk_size=1, decode_unicode=True):  # each line as it comes
                if line and line.startswith("data: "):
                    self._note(json.loads(line[len("data: "):]).get("id"))
        except (OSError, ValueError, AttributeError):  # the stream ended or broke: polling goes on
            pass

    def _note(self, task_id: str | None) -> None:
        if task_id:
            with self._news:
                self._changed.add(task_id)
                self._news.notify_all()
