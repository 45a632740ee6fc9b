"""ASGI middleware that counts every HTTP answer for the metrics: by method, route and status,
with the time it took.

The route is the operation's path template in the spec (`/tasks/{id}`, not the task's id), so
that the labels stay few; a request no operation answers (Swagger UI, an unknown path) is
`other`. Connexion's routing, further in, names the operation in the scope's extensions, which
this middleware hands down and reads once the answer has started. An event stream
(StreamEvents) is counted when it starts and left out of the latency histogram: it lasts as long
as its client stays.
"""

from __future__ import annotations

import time

from ..metrics import record as metrics
from .event_stream import OPERATION_ID as STREAM_OPERATION

OTHER_ROUTE = "other"
# Any other method a client sends is counted as "other": labels take values from small sets.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def operation_routes(spec: dict) -> dict[str, str]:
    """operationId -> its path template, from the served spec."""
    return {operation["operationId"]: path for path, item in spec["paths"].items()
            for operation in item.values() if isinstance(operation, dict) and "operationId" in operation}


class HttpMetrics:
    def __init__(self, app, routes: dict[str, str]):
        self.app = app
        self.routes = routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        extensions = scope.setdefault("extensions", {})  # routing, further in, adds to this very dict
        status = None

        def operation() -> str | None:
            return (extensions.get("connexion_routing") or {}).get("operation_id")

        async def send_counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if operation() == STREAM_OPERATION:  # counted now: it lasts as long as its client stays
                    self._count(scope, operation(), status, None)
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            if status is None or operation() != STREAM_OPERATION:
                # Nothing answered (an exception): the client meets a 500.
                self._count(scope, operation(), status or 500, time.perf_counter() - started)

    def _count(self, scope, operation: str | None, status: int, seconds: float | None) -> None:
        method = scope["method"] if scope["method"] in METHODS else "other"
        metrics.http_request(method, self.routes.get(operation, OTHER_ROUTE), status, seconds)
