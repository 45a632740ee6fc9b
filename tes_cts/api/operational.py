"""ASGI middleware answering the service's operational endpoints, outside the TES API and its
spec (no credentials of the API's providers):

- `GET /healthz`: 200 while the process serves requests (liveness).
- `GET /readyz`: 200 when the task store answers and the backend could take work, else 503;
  either way a JSON object with each check and, for one that failed, why (readiness).
- `GET /metrics`: the Prometheus text exposition (`metrics/exposition.py`), when metrics are on;
  with `metrics.token_digest` set, only for `Authorization: Bearer <the token>`.

The checks and the scrape read the store (and the engine), so they run off the event loop; each
check is bounded by CHECK_TIMEOUT_S, so that a store or an engine that hangs makes /readyz
answer 503 instead of hanging too.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Callable

import anyio

from ..auth.hashing import token_digest
from ..database.base import TaskDatabase
from ..metrics.exposition import Scrape
from .errors import error_body

CHECK_TIMEOUT_S = 5.0
JSON = b"application/json"


@dataclass(frozen=True)
class BackendCheck:
    kind: str
    problem: Callable[[], str | None]  # what stops every submission now (Backend.engine_problem), or None


class OperationalEndpoints:
    def __init__(self, app, database: TaskDatabase, backend: BackendCheck, scrape: Scrape | None, token_digest: str):
        self.app = app
        self.database = database
        self.backend = backend
        self.scrape = scrape
        self.token_digest = token_digest
        self.answers = {"/healthz": self._healthz, "/readyz": self._readyz}
        if scrape is not None:
            self.answers["/metrics"] = self._metrics

    async def __call__(self, scope, receive, send):
        answer = self.answers.get(scope.get("path", "")) if scope["type"] == "http" else None
        if answer is None or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        status, body, content_type, headers = await answer(scope)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"), *headers]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _healthz(self, _scope):
        return 200, b'{"status":"ok"}', JSON, []

    async def _readyz(self, _scope):
        checks = {"store": await _checked(self._store_answers),
                  "backend": {"kind": self.backend.kind, **await _checked(self.backend.problem)}}
        ready = all(check["ok"] for check in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return (200 if ready else 503), json.dumps(body).encode(), JSON, []

    def _store_answers(self) -> None:
        self.database.last_event_seq()  # one indexed read; raises when the store does not answer

    async def _metrics(self, scope):
        if self.token_digest and not self._token_matches(scope):
            body = error_body(401, "Unauthorized", "/metrics needs the bearer token whose digest is metrics.token_digest")
            return 401, json.dumps(body).encode(), JSON, [(b"www-authenticate", b'Bearer realm="metrics"')]
        text, content_type = await anyio.to_thread.run_sync(self.scrape.render)
        return 200, text, content_type.encode(), []

    def _token_matches(self, scope) -> bool:
        header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token_digest(token.strip()), self.token_digest)


async def _checked(check: Callable[[], object]) -> dict:
    """{"ok": true}, or {"ok": false, "problem": why}: the check returned a problem, raised, or
    did not answer in time."""
    try:
        with anyio.fail_after(CHECK_TIMEOUT_S):
            problem = await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
    except TimeoutError:
        problem = f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # a readiness check says what failed; it does not fail itself
        problem = f"{type(exc).__name__}: {exc}"
    return {"ok": True} if problem is None else {"ok": False, "problem": str(problem)}
