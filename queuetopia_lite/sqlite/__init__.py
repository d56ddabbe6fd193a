"""The SQLite backend (the default): one database file, WAL mode, through apsw."""

from .backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
