"""A user's value as a message shows it: quoted, escaped (never an unencodable string), cut short."""

from __future__ import annotations


def quoted(value: object, quote: str = "single", limit: int = 80) -> str:
    """`value` (a string; anything else is shown by its type's name) in single quotes, or in
    double quotes with `quote="double"` (for a key inside a JSON path)."""
    text = value if isinstance(value, str) else type(value).__name__
    cut = text[:limit] + ("..." if len(text) > limit else "")
    shown = repr(cut)
    return '"' + shown[1:-1].replace('"', '\\"') + '"' if quote == "double" else shown
