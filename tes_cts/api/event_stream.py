"""`GET /events`: every state change of the caller's tasks (an admin's: everyone's) as a
Server-Sent Events stream, live, resumable with `Last-Event-ID`.

It runs as ASGI middleware after Connexion's routing, security and validation, so the operation
is in the spec, its credentials and parameters are checked like every other's, and a stream
holds no thread of the WSGI pool (ten per API process) while it waits: it asks the store for
new events every POLL_S, off the event loop, and ends when the client goes away.

Each event is `id: <seq>` (the number a client sends back as Last-Event-ID, or as the query
parameter `last_event_id`), `event: state` and `data:` the event's JSON (model/events.py). A
stream without either starts at the newest event: from now on. A comment line every
HEARTBEAT_S keeps proxies from closing a quiet stream. A server that stops waits for open
streams as long as its graceful timeout, then closes them: clients reconnect with Last-Event-ID.
"""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import parse_qs

import anyio

from ..auth.identity import Identity
from ..database.base import DatabaseUnavailable, TaskDatabase
from ..model.events import EventQuery, TaskEvent
from ..model.views import JSON_SEPARATORS
from . import errors
from .security import caller

OPERATION_ID = "StreamEvents"
POLL_S = 0.25
HEARTBEAT_S = 15.0
PAGE = 500
RETRY_MS = 2000  # what a browser waits before it reconnects by itself


class EventStream:
    def __init__(self, app, database: TaskDatabase, anonymous: Identity | None):
        self.app = app
        self.database = database
        self.anonymous = anonymous

    async def __call__(self, scope, receive, send):
        extensions = scope.get("extensions") or {}
        if scope["type"] != "http" or (extensions.get("connexion_routing") or {}).get("operation_id") != OPERATION_ID:
            await self.app(scope, receive, send)
            return
        who = caller((extensions.get("connexion_context") or {}).get("token_info"), self.anonymous)
        after, query = _query(scope, who)
        try:
            start = after if after is not None else await anyio.to_thread.run_sync(self.database.last_event_seq)
        except DatabaseUnavailable as exc:
            await errors.send_error(send, 503, "Service Unavailable", f"{exc}; retry later")
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no")]})
        await send({"type": "http.response.body", "body": f"retry: {RETRY_MS}\n\n".encode(), "more_body": True})
        async with anyio.create_task_group() as group:
            group.start_soon(self._stream, send, replace(query, after=start))
            await _until_disconnected(receive)
            group.cancel_scope.cancel()

    async def _stream(self, send, query: EventQuery) -> None:
        quiet_since = anyio.current_time()
        while True:
            try:
                newest, events = await anyio.to_thread.run_sync(self._next, query)
            except DatabaseUnavailable:
                newest, events = query.after, []  # the store comes back: the stream goes on from there
            if events:
                await send({"type": "http.response.body", "body": "".join(map(_frame, events)).encode(),
                            "more_body": True})
                quiet_since = anyio.current_time()
            elif anyio.current_time() - quiet_since >= HEARTBEAT_S:
                await send({"type": "http.response.body", "body": b": still here\n\n", "more_body": True})
                quiet_since = anyio.current_time()
            seen = events[-1].seq if events else query.after
            query = replace(query, after=seen if len(events) == PAGE else max(newest, seen))
            if len(events) < PAGE:
                await anyio.sleep(POLL_S)

    def _next(self, query: EventQuery) -> tuple[int, list[TaskEvent]]:
        """The newest event number, read first, and the events after the query's: every event up
        to that number is visible already, so a filtered stream may go on from there even when
        none matched (instead of reading the same non-matching events again)."""
        newest = self.database.last_event_seq()
        return newest, self.database.events(query)


def _query(scope, who: Identity) -> tuple[int | None, EventQuery]:
    """Where the stream starts (None: from now) and what it shows, as the validated request
    asks (Connexion checked the parameters' forms)."""
    parameters = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    last = headers.get("last-event-id") or (parameters.get("last_event_id") or [None])[-1]
    return _seq(last), EventQuery(limit=PAGE, owner=who.visible_owner, task_id=(parameters.get("task_id") or [None])[-1],
                                  states=frozenset(state for value in parameters.get("state", [])
                                                   for state in value.split(",") if state))


def _seq(text: str | None) -> int | None:
    """A Last-Event-ID as the stream wrote it; anything else starts from now."""
    return int(text) if text and text.isdigit() and len(text) <= 18 else None


def _frame(event: TaskEvent) -> str:
    return f"id: {event.seq}\nevent: state\ndata: {json.dumps(event.data(), separators=JSON_SEPARATORS)}\n\n"


async def _until_disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass

