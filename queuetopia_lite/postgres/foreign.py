"""Creating jobs inside a transaction the application opened on its own psycopg connection.

The connection must be a (synchronous) psycopg 3 ``Connection`` on the same
database as the backend, inside a transaction: one already open, or, on a
connection that is not in autocommit mode, the one our statement opens (as the
application's own next statement would); the application commits or rolls
back. Our statement names the schema in full (the application's search_path
is not ours), and its ``pg_notify`` is delivered when that transaction commits.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from ..errors import InvalidJobError

Identity = tuple[Any, ...]

# The server and database: the same database has the same values whichever way
# (host name, address, socket) a connection reached it.
IDENTITY_QUERY = (b"SELECT current_database(), pg_postmaster_start_time()::text, "
                  b"current_setting('port')")

_identities: weakref.WeakKeyDictionary[psycopg.Connection[Any], Identity] = (
    weakref.WeakKeyDictionary())


def identity(conn: psycopg.Connection[Any]) -> Identity:
    """Which database a connection is on (read once per connection)."""
    known = _identities.get(conn)
    if known is None:
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute(IDENTITY_QUERY).fetchone()
        assert row is not None
        known = _identities[conn] = tuple(row)
    return known


def check_usable(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
                 how_to_open: str) -> None:
    """Refuse a closed connection, a failed transaction, or one that would commit our
    insert on its own (autocommit, or outside a transaction it would not open)."""
    if conn.closed or conn.broken:
        raise InvalidJobError("connection", "cannot be used: the connection is closed")
    status = conn.info.transaction_status
    if status == TransactionStatus.INERROR:
        raise InvalidJobError("connection", "its transaction has already failed: roll it back")
    if status != TransactionStatus.INTRANS and (status != TransactionStatus.IDLE
                                                or conn.autocommit):
        raise InvalidJobError("connection", f"not inside a transaction: open one "
                              f"({how_to_open}), or leave connection out to store the jobs "
                              "on their own")


def adopt(connection: object, location: str,
          ours: Callable[[bool], Identity]) -> psycopg.Connection[Any]:
    """``connection`` checked usable for our jobs; InvalidJobError("connection") if not.

    ``ours(fresh)`` is our own database's identity (``fresh``: read it again, the
    server may have restarted since it was read).
    """
    if isinstance(connection, psycopg.AsyncConnection):
        raise InvalidJobError("connection", "an async psycopg connection: this API is "
                              "synchronous, pass a psycopg.Connection")
    if not isinstance(connection, psycopg.Connection):
        raise InvalidJobError("connection", f"expected a psycopg.Connection on {location}, got "
                              f"{type(connection).__module__}.{type(connection).__qualname__}")
    conn: psycopg.Connection[Any] = connection
    check_usable(conn, "with conn.transaction(): ...")
    try:
        theirs = identity(conn)
    except psycopg.Error as exc:
        raise InvalidJobError("connection", f"cannot be used: {exc}") from None
    if theirs != ours(False) and theirs != ours(True):
        raise InvalidJobError("connection", f"on database {theirs[0]!r} of another server or "
                              f"another database, not on {location}")
    return conn
