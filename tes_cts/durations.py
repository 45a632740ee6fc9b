"""Durations as users write them: ISO 8601 (`PT10M`, `P1DT2H`) or plain seconds (`600`)."""

from __future__ import annotations

import re

_ISO8601 = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError with a message saying what is accepted."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        match = _ISO8601.match(value.upper())
        if not match or value.upper() in ("P", "PT") or value.upper().endswith("T"):
            raise ValueError(f"{text!r} is not a duration: use seconds (600) or ISO 8601 (PT10M, P1DT2H)") from None
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n)
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def describe_duration(seconds: float) -> str:
    """600 -> '10m', 5400 -> '1h30m', 45 -> '45s', 90061 -> '1d1h1m1s'."""
    remaining = int(round(seconds))
    if seconds < 60 and remaining != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
