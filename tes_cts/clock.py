"""Time as the service stores and shows it: microseconds since the epoch, RFC 3339 UTC."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_us() -> int:
    return time.time_ns() // 1000


def rfc3339(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 UTC, e.g. 2026-11-21T10:52:03.123456Z."""
    moment = datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
