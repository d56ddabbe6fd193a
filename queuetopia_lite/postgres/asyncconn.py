"""Creating jobs inside a transaction the application opened on a psycopg AsyncConnection.

The same checks and statements as foreign.py and insert_jobs_in, awaited on the
application's connection: our insert runs with ``await`` on its event loop, and
its ``pg_notify`` is delivered when the application's transaction commits.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any, Sequence

import psycopg
from psycopg.rows import tuple_row

from ..backend import NewJob
from ..errors import InvalidJobError
from ..job import Job
from . import steps
from .foreign import IDENTITY_QUERY, Identity, check_usable

if TYPE_CHECKING:
    from .backend import PostgresBackend

_identities: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], Identity] = (
    weakref.WeakKeyDictionary())


async def insert_jobs_in_async(backend: PostgresBackend, connection: object, scope: str,
                               jobs: Sequence[NewJob], now: float) -> list[Job]:
    """Insert jobs in the application's transaction on an AsyncConnection (awaited).

    Stored if and only if that transaction commits; we never commit, roll back or
    retry it. Raises InvalidJobError("connection") for a connection we cannot join.
    """
    # The backend's internals are this package's own: the same statements as its
    # insert_jobs_in, with the server's clock offset (which may ask the server).
    conn = await adopt(connection, backend)
    offset = await asyncio.to_thread(backend._offset)
    q, channel = backend._q, backend.channel
    try:
        async with conn.cursor(row_factory=tuple_row) as cur:
            if not any(job.unique_key is not None for job in jobs):
                query, args = steps.insert_args(q, scope, channel, jobs, now + offset, offset)
                await cur.execute(query, args)
                return steps.created_jobs(await cur.fetchall(), now + offset)
            plan = steps.unique_inserts(q, scope, channel, jobs, now + offset, offset)
            try:
                statement = next(plan)
                while True:
                    await cur.execute(*statement)
                    rows = await cur.fetchall() if cur.description is not None else []
                    statement = plan.send(rows)
            except StopIteration as done:
                created: list[Job] = done.value
                return created
    except psycopg.Error as exc:  # the application's transaction has failed: its to end
        raise backend._db.error(exc) from exc


async def adopt(connection: object, backend: PostgresBackend) -> psycopg.AsyncConnection[Any]:
    """``connection`` checked usable for our jobs; InvalidJobError("connection") if not."""
    location = backend.location
    if not isinstance(connection, psycopg.AsyncConnection):
        raise InvalidJobError("connection", f"expected a psycopg AsyncConnection on {location}, "
                              f"got {type(connection).__module__}."
                              f"{type(connection).__qualname__}")
    conn: psycopg.AsyncConnection[Any] = connection
    check_usable(conn, "async with conn.transaction(): ...")
    theirs = _identities.get(conn)
    if theirs is None:
        try:
            async with conn.cursor(row_factory=tuple_row) as cur:
                await cur.execute(IDENTITY_QUERY)
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise InvalidJobError("connection", f"cannot be used: {exc}") from None
        assert row is not None
        theirs = _identities[conn] = tuple(row)
    if theirs != await asyncio.to_thread(backend._own_identity, False) and \
            theirs != await asyncio.to_thread(backend._own_identity, True):
        raise InvalidJobError("connection", f"on database {theirs[0]!r} of another server or "
                              f"another database, not on {location}")
    return conn
