"""ASGI middleware that answers 404 for a request path holding a control character (`%0A` and
the like), before routing: no task id or route has one, and Connexion's router and Flask's would
disagree about such a path."""

from __future__ import annotations

import re

from .errors import send_error

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharacterPaths:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _CONTROL.search(scope.get("path", "")):
            return await self.app(scope, receive, send)
        await send_error(send, 404, "Not Found", "no resource has a name with a control character in it")
