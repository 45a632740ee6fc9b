"""Task stores: the `TaskDatabase` contract and the store the settings choose."""

from __future__ import annotations

from ..model.query import Cursor, TaskQuery
from ..settings import sqlite_path
from .base import DatabaseUnavailable, DuplicateTaskId, TaskDatabase
from .mongo import MongoTaskDatabase
from .sqlite import SqliteTaskDatabase

__all__ = [
    "Cursor",
    "DuplicateTaskId",
    "DatabaseUnavailable",
    "TaskQuery",
    "TaskDatabase",
    "open_database",
]


def open_database(settings) -> TaskDatabase:
    """Open (creating if needed) the store the `database.*` settings name.

    Raises DatabaseUnavailable, naming the store, when it cannot be opened or reached.
    """
    database = settings.database
    if database.kind == "sqlite":
        return SqliteTaskDatabase(sqlite_path(settings))
    if database.kind == "mongodb":
        return MongoTaskDatabase(database.mongodb_uri, database.mongodb_database)
    raise DatabaseUnavailable(f"unknown store kind {database.kind!r} (expected sqlite or mongodb)")
