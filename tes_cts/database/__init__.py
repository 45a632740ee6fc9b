"""The task database: the `TaskDatabase` contract and the implementation the settings choose.

`mongo` (and with it pymongo) is imported only when the settings name MongoDB.
"""

from __future__ import annotations

from ..model.query import Cursor, TaskQuery
from ..settings import DATABASE_KINDS, sqlite_path
from .base import DatabaseUnavailable, DuplicateTaskId, TaskDatabase
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
    """Open (creating if needed) the database the `database.*` settings name.

    Raises DatabaseUnavailable, naming the database, when it cannot be opened or reached.
    """
    database = settings.database
    if database.kind == "sqlite":
        return SqliteTaskDatabase(sqlite_path(settings))
    if database.kind == "mongodb":
        from .mongo import MongoTaskDatabase

        return MongoTaskDatabase(database.mongodb_uri, database.mongodb_database)
    raise DatabaseUnavailable(f"unknown store kind {database.kind!r} (expected {' or '.join(DATABASE_KINDS)})")
