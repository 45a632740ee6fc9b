"""`tes-cts storage cp|stat|add-checksum`: S3 objects with CRC64NVME."""

from __future__ import annotations


def register(commands) -> None:
    """Add this module's verbs to the `tes-cts` subparsers `commands`."""
