"""`tes-cts run`: one command from a script and local files to results on this machine."""

from __future__ import annotations


def register(commands) -> None:
    """Add this module's verbs to the `tes-cts` subparsers `commands`."""
