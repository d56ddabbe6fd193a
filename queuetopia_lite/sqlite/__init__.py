"""The SQLite backend (the default): one database file, WAL mode, through apsw or sqlite3."""

from .backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
