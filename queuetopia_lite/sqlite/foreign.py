"""Creating jobs inside a transaction the application opened on its own SQLite connection.

The connection must be of the backend's driver (one SQLite library per file),
on the backend's file, and inside a transaction: one already open or, on a
sqlite3 connection in its default mode (which opens a transaction before a
write), the one sqlite3 would open before the application's next write. The
jobs then commit or roll back with the application's own writes. We never commit or roll back a
connection we were handed; our inserts sit in a savepoint so that a failure
leaves the application's transaction as it was.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from ..backend import NewJob
from ..errors import DatabaseError, InvalidJobError
from ..job import Job
from . import drivers
from .drivers import Conn
from .transactions import insert_jobs

_KINDS = "an apsw.Connection or a sqlite3.Connection"


def adopt(connection: object, path: str, driver: str) -> Conn:
    """``connection`` checked usable for jobs on ``path``; InvalidJobError("connection") if not."""
    kind = drivers.driver_of(connection)
    if kind is None:
        raise InvalidJobError("connection", f"expected {_KINDS} on {path}, got "
                              f"{type(connection).__module__}.{type(connection).__qualname__}")
    conn: Conn = connection  # type: ignore[assignment]
    if kind != driver:
        raise InvalidJobError("connection", f"a {kind} connection, but this Queuetopia uses "
                              f"driver={driver!r}; {drivers.ADVICE}")
    try:
        name = drivers.filename(conn)
        open_transaction = drivers.in_transaction(conn)
        implicit = drivers.begins_implicitly(conn)
    except drivers.errors() as exc:  # closed, or sqlite3's "created in another thread"
        raise InvalidJobError("connection", f"cannot be used: {exc}") from None
    if not name or not _same_file(name, path):
        raise InvalidJobError("connection", f"on {name or 'a temporary database'}, not on "
                              f"{path}: the jobs must be in the same file as your writes")
    if not open_transaction and not implicit:
        # In autocommit mode our insert would commit at once, apart from the
        # application's writes: not what connection= promises.
        raise InvalidJobError("connection", "not inside a transaction: begin one first "
                              "(BEGIN IMMEDIATE), or leave connection out to store the jobs "
                              "on their own")
    return conn


def insert_in(conn: Conn, scope: str, jobs: Sequence[NewJob], now: float,
              error: Callable[[BaseException], DatabaseError]) -> list[Job]:
    """Insert the jobs in the open transaction, all or none (a savepoint)."""
    try:
        if not drivers.in_transaction(conn):
            # Outside a transaction a savepoint would open one and its release commit it.
            drivers.begin_implicitly(conn)
        conn.execute("SAVEPOINT qt_insert")
    except drivers.errors() as exc:
        raise error(exc) from exc
    try:
        created = insert_jobs(conn, scope, jobs, now)
        conn.execute("RELEASE qt_insert")
    except BaseException as exc:
        try:
            conn.execute("ROLLBACK TO qt_insert")
            conn.execute("RELEASE qt_insert")
        except drivers.errors():
            pass  # SQLite already rolled the whole transaction back (e.g. disk full)
        if isinstance(exc, drivers.errors()):
            raise error(exc) from exc
        raise
    return created


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
