"""How big one task may be: what validation enforces and settings configure (tasks.max_<name>)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SizeLimits:
    """How big one task may be (settings tasks.max_*): far above what workflow engines send, far
    below what would stall the service or break a host."""

    executors: int = 1_000
    inputs: int = 10_000
    outputs: int = 10_000
    volumes: int = 1_000
    tags: int = 1_000
    env: int = 1_000                   # entries of one executor's env
    command_bytes: int = 1024 * 1024   # one executor's command, all its arguments (UTF-8)


SIZE_LIMITS = tuple(field.name for field in fields(SizeLimits))  # the settings tasks.max_<name>
