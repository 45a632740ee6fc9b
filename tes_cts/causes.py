"""Every exception under one: what libraries wrap (requests wraps urllib3's errors two or three
deep, in `args` and `reason`) and what Python chains (`__cause__`, `__context__`)."""

from __future__ import annotations

from typing import Iterator


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then the exceptions under it, nearest first, each once."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (*current.args, getattr(current, "reason", None), current.__cause__, current.__context__)
        pending += [cause for cause in linked if isinstance(cause, BaseException)]
