"""Opaque page tokens for newest-first keyset paging, and the page size rules of ListTasks."""

from __future__ import annotations

import base64
import binascii
import json

from ..model.query import Cursor

DEFAULT_PAGE_SIZE = 256
MAX_PAGE_SIZE = 2047
_TOKEN_VERSION = 1


class BadListRequest(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def page_size_or_default(page_size: int | None) -> int:
    if page_size is None:
        return DEFAULT_PAGE_SIZE
    if page_size < 1 or page_size > MAX_PAGE_SIZE:
        raise BadListRequest("page_size", f"must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def encode_token(cursor: Cursor) -> str:
    payload = json.dumps([_TOKEN_VERSION, cursor.created_us, cursor.task_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str) -> Cursor:
    try:
        padded = token + "=" * (-len(token) % 4)
        version, created_us, task_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if version != _TOKEN_VERSION or type(created_us) is not int or not isinstance(task_id, str):
            raise ValueError("unexpected token contents")
        if not 0 <= created_us < 2**63:  # what a store's 64-bit integer holds
            raise ValueError("creation time out of range")
        task_id.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise BadListRequest(
            "page_token",
            "is not a token this server issued; pass next_page_token from the previous page unchanged",
        ) from None
    return Cursor(created_us=created_us, task_id=task_id)
