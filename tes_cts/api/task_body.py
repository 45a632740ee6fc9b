"""The CreateTask body: gathered on the event loop, decoded once, in the handler's thread.

Connexion's JSON validator decodes a body on the event loop, where no other request moves
meanwhile, and then hands Flask the bytes, which Flask decodes a second time. Here the
validator only gathers the body into one message (so that the handler's thread fetches it in one
hop between threads, not one per network read, each of which waits its turn for the GIL), and
`decode` runs in the handler's thread, in slices that let other threads in (`_let_others_run`).
Big bodies take their turn (`create_from`).
"""

from __future__ import annotations

import gc
import json
import threading
from typing import Callable

from connexion.exceptions import BadRequestProblem
from connexion.validators import JSONRequestBodyValidator
from starlette.datastructures import Headers

from ..tasks.validation import TaskValidationError

# A body this big takes some 50 ms of CPU to decode, check and store (16 MiB: about a second).
BIG_BODY_BYTES = 1024 * 1024
_big_body_turn = threading.Lock()


class GatheredBody(JSONRequestBodyValidator):
    """For the JSON media types: the body read whole and passed on as one message, not decoded;
    checking it is `tasks.validation`'s, which reports every problem at once with its field."""

    async def wrap_receive(self, receive, *, scope):
        if not int(Headers(scope=scope).get("content-length") or 0):  # no body: as Connexion answers it
            if self._required:
                raise BadRequestProblem("RequestBody is required")
            return receive, scope
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: the app sees that as it came
                return self._insert_messages(receive, messages=[message]), scope
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return self._insert_messages(receive, messages=[whole]), scope


def decode(raw: bytes) -> object:
    """The JSON document in `raw`, or BadRequestProblem saying why there is none.

    JSON between systems is UTF-8 (RFC 8259, 8.1) and application/json has no charset
    parameter: a body is read as UTF-8 whatever its Content-Type says, as Connexion read it
    (it missed the parameter in the usual form, "application/json; charset=...")."""
    try:
        return json.loads(raw.decode("utf-8"), object_hook=_let_others_run)
    except UnicodeDecodeError as exc:
        raise BadRequestProblem(detail=f"request body is not valid utf-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise BadRequestProblem(detail=str(exc)) from None
    except RecursionError:
        raise BadRequestProblem(detail="request body is not JSON this server reads: nested too deeply") from None
    except ValueError as exc:  # parsed, but not representable: an integer of more than 4,300 digits
        raise BadRequestProblem(detail=f"request body is not JSON this server reads: {exc}") from None


def _let_others_run(decoded: dict) -> dict:
    """Called by json's C decoder for each object it has decoded, and changes nothing. Entering
    a Python function is where CPython hands the GIL to a thread that has waited for it, so a
    16 MiB body is decoded in slices of one object each (one executor, one input), not in one
    call that holds every other request for 100 ms."""
    return decoded


def create_from(raw: bytes, create: Callable[[object], str]) -> str:
    """`create(decode(raw))`; bodies of BIG_BODY_BYTES or more one after another, with the garbage
    collector paused.

    The GIL runs their Python one at a time anyway, so together they take about as long; but
    each one more at once is one more thread that small requests queue behind for the GIL. And
    the collector cannot free anything of a decoded body (JSON is a tree: counting references
    frees it), only walk it, holding the GIL: up to 25 ms a pass for a 16 MiB task, 60 ms for
    a bad one, which allocates one object per problem. The small requests' garbage waits
    for the end of the big body, after which the collector's next pass comes at once."""
    if len(raw) < BIG_BODY_BYTES:
        return create(decode(raw))
    with _big_body_turn:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return create(decode(raw))
        except TaskValidationError as exc:
            # Its traceback holds validation's frames and so every problem found (125,000 in a
            # bad 16 MiB task): dropped before the collector runs again, which would walk them.
            raise exc.with_traceback(None)
        finally:
            if collecting:
                gc.enable()
