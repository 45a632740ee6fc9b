"""ASGI middleware that answers 404 for a request path holding a control character (`%0A` and
the like), before routing: no task id or route has one, and Connexion's router and Flask's would
disagree about such a path."""

from __future__ import annotations

import json
import re

from .errors import ERROR_MEDIA_TYPE, error_body

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharacterPaths:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _CONTROL.search(scope.get("path", "")):
            return await self.app(scope, receive, send)
        body = json.dumps(error_body(404, "Not Found", "no resource has a name with a control character in it")).encode()
        headers = [(b"content-type", ERROR_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})
