"""`tes-cts task create|get|list|cancel|wait|logs`: tasks on any TES server."""

from __future__ import annotations


def register(commands) -> None:
    """Add this module's verbs to the `tes-cts` subparsers `commands`."""
