"""Task stores: the `TaskStore` contract and the store the settings choose."""

from __future__ import annotations

from ..settings import sqlite_path
from .base import Cursor, DuplicateTaskId, StoreUnavailable, TaskQuery, TaskStore
from .mongo import MongoTaskStore
from .sqlite import SqliteTaskStore

__all__ = [
    "Cursor",
    "DuplicateTaskId",
    "StoreUnavailable",
    "TaskQuery",
    "TaskStore",
    "open_store",
]


def open_store(settings) -> TaskStore:
    """Open (creating if needed) the store the `database.*` settings name.

    Raises StoreUnavailable, naming the store, when it cannot be opened or reached.
    """
    database = settings.database
    if database.kind == "sqlite":
        return SqliteTaskStore(sqlite_path(settings))
    if database.kind == "mongodb":
        return MongoTaskStore(database.mongodb_uri, database.mongodb_database)
    raise StoreUnavailable(f"unknown store kind {database.kind!r} (expected sqlite or mongodb)")
