"""ASGI middleware that bounds request bodies: 413 above the limit, before anything parses them.

A body sent without Content-Length (chunked) is read here up to the limit and replayed with its
length, because Connexion treats a body without Content-Length as missing.
"""

from __future__ import annotations

from .errors import send_error


class BodyLimitMiddleware:
    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_body_bytes:
                return await self._refuse(send, declared)
            return await self.app(scope, receive, send)
        if _header(scope, b"transfer-encoding") is None:
            return await self.app(scope, receive, send)

        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                return await self._refuse(send, None)
        await self.app(_with_length(scope, len(body)), _replay(bytes(body), receive), send)

    async def _refuse(self, send, declared: str | None):
        if declared is not None and not declared.isdigit():
            status, title, detail = 400, "Bad Request", f"Content-Length {declared!r} is not a number"
        else:
            status, title = 413, "Payload Too Large"
            detail = f"request body exceeds the limit of {self.max_body_bytes} bytes (setting server.max_body_bytes)"
        await send_error(send, status, title, detail)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _with_length(scope, length: int) -> dict:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"transfer-encoding"]
    return {**scope, "headers": headers + [(b"content-length", str(length).encode())]}


def _replay(body: bytes, receive):
    sent = False

    async def replay_receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay_receive
