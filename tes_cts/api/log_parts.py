"""Which part of a full executor log a request of the logs extension asks for, and the answer that
carries it.

Two ways to ask, never both: `offset` and `length` (bytes; an offset at or past the end is an
empty 200, so that a client following a growing log polls with offset = bytes seen), or an HTTP
`Range: bytes=...` header (one range: 206 with Content-Range, 416 when it cannot be served). A
Range of another unit is ignored, as RFC 9110 says. Every answer carries the log's size when it
was read (X-Log-Size) and at most executor_logs.MAX_READ_BYTES; the bytes go out as the executor
wrote them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import flask

from ..tasks.executor_logs import ExecutorLog
from .parameters import InvalidParameters

LOG_MEDIA_TYPE = "text/plain; charset=utf-8"
SIZE_HEADER = "X-Log-Size"
_BYTE_RANGE = re.compile(r"(\d*)-(\d*)")


class RangeNotSatisfiable(Exception):
    """416: the Range cannot be served from a log of `size` bytes; the message says why."""

    def __init__(self, reason: str, size: int):
        super().__init__(reason)
        self.size = size


@dataclass(frozen=True)
class Slice:
    """Asked with offset and length: always served, perhaps empty."""

    offset: int = 0
    length: int | None = None  # None: to the end

    def within(self, _size: int) -> tuple[int, int | None]:
        return self.offset, self.length


@dataclass(frozen=True)
class ByteRange:
    """Asked with a Range header: `first`-`last` (inclusive, `last` None: to the end), or the
    last `suffix` bytes; `problem`, when set, is why the header cannot be served at all."""

    first: int | None = None
    last: int | None = None
    suffix: int | None = None
    problem: str | None = None

    def within(self, size: int) -> tuple[int, int | None]:
        if self.problem:
            raise RangeNotSatisfiable(self.problem, size)
        if self.suffix is not None:
            if size == 0:
                raise RangeNotSatisfiable("the log is empty: no range of it can be served", size)
            if self.suffix == 0:
                raise RangeNotSatisfiable("the range of the last 0 bytes holds no byte", size)
            return max(size - self.suffix, 0), None
        if self.first >= size:
            raise RangeNotSatisfiable(f"the range starts at byte {self.first} of a log of {size} bytes", size)
        return self.first, None if self.last is None else self.last - self.first + 1


def requested(range_header: str | None, offset: int | None, length: int | None) -> Slice | ByteRange:
    """The part a request asks for. Raises InvalidParameters when it asks both ways."""
    unit, _, ranges = (range_header or "").partition("=")
    if unit.strip().lower() != "bytes":
        return Slice(offset or 0, length)
    if offset is not None or length is not None:
        raise InvalidParameters([("Range", "give either the Range header or offset and length, not both")])
    specs = [spec.strip() for spec in ranges.split(",")]
    if len(specs) > 1:
        return ByteRange(problem=f"one range at a time, not {len(specs)}")
    match = _BYTE_RANGE.fullmatch(specs[0])
    if not match or match.groups() == ("", ""):
        return ByteRange(problem=f"{specs[0]!r} is not a byte range (FIRST-LAST, FIRST- or -SUFFIX)")
    first, last = match.groups()
    if not first:
        return ByteRange(suffix=int(last))
    if last and int(last) < int(first):
        return ByteRange(problem=f"the range {specs[0]} ends before it starts")
    return ByteRange(first=int(first), last=int(last) if last else None)


def log_response(log: ExecutorLog, wanted: Slice | ByteRange) -> flask.Response:
    """The part of `log` that `wanted` names: 200 for a Slice, 206 for a ByteRange."""
    offset, length = wanted.within(log.size)
    data = log.read(offset, length)
    headers = {SIZE_HEADER: str(log.size), "Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    if isinstance(wanted, Slice):
        return flask.Response(data, status=200, headers=headers, content_type=LOG_MEDIA_TYPE)
    headers["Content-Range"] = f"bytes {offset}-{offset + len(data) - 1}/{log.size}"
    return flask.Response(data, status=206, headers=headers, content_type=LOG_MEDIA_TYPE)


def unsatisfiable_headers(size: int) -> dict[str, str]:
    """What a 416 tells the client of the log: its size, as RFC 9110 asks."""
    return {"Content-Range": f"bytes */{size}", SIZE_HEADER: str(size)}
