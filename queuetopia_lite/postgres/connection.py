"""Postgres connections: a pool, transactions that survive a dropped connection.

Every write runs in one transaction that starts by reading its transaction id.
When the connection drops before COMMIT, the server rolled the transaction back
and the whole transaction is run again on a fresh connection. When it drops
during COMMIT, the outcome is unknown to the client: it asks the server
(``pg_xact_status``) on a fresh connection and either returns the result
(committed) or runs the transaction again (aborted). So a dropped connection
neither loses nor duplicates a write. Errors no retry can fix are raised at
once as DatabaseError naming the URL (without its password).
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import DatabaseError, InvalidJobError

T = TypeVar("T")
Cursor = psycopg.Cursor[Any]

RETRIES = 8  # whole-transaction retries after a lost connection or a deadlock
RETRY_PAUSE = 0.05  # seconds, doubled per retry (capped), with jitter
RETRY_PAUSE_MAX = 1.0  # seconds
POOL_TIMEOUT = 10.0  # seconds to wait for a pooled connection
CONNECT_TIMEOUT = 10  # seconds (libpq's connect_timeout)
APPLICATION_NAME = "queuetopia_lite"  # shown in pg_stat_activity
COMMIT_CHECK_TIME = 30.0  # seconds to keep asking whether an interrupted COMMIT happened
DEFAULT_SCHEMA = "queuetopia"
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})

# The transaction was rolled back by the server: running it again is safe.
_RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected,
              psycopg.errors.LockNotAvailable)


def split_url(url: str, schema: str | None) -> tuple[str, str, str]:
    """(libpq URL, URL without password, schema) from a URL with an optional ``?schema=``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a bad port raises only when read)
    except ValueError as exc:
        raise InvalidJobError("database", f"not a valid postgresql:// URL: {exc}") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    from_url = [value for key, value in query if key == "schema"]
    query = [(key, value) for key, value in query if key != "schema"]
    chosen = schema or (from_url[-1] if from_url else DEFAULT_SCHEMA)
    if not chosen or len(chosen.encode()) > 63 or "%" in chosen or "\x00" in chosen:
        raise InvalidJobError("schema", f"expected a name of 1 to 63 bytes without % or NUL, "
                              f"got {chosen!r}")
    conninfo = urlunsplit(parts._replace(query=urlencode(query)))
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        netloc[0] = netloc[0].split(":", 1)[0]
    # Secrets may also come as query parameters: never show them.
    visible = [(key, value) for key, value in query if key not in _SECRET_PARAMETERS]
    shown = urlunsplit(parts._replace(netloc="@".join(netloc), query=urlencode(visible)))
    return conninfo, shown, chosen


def is_connection_error(exc: BaseException, conn: psycopg.Connection[Any] | None) -> bool:
    """Whether ``exc`` means the connection is gone (the server rolled back)."""
    if isinstance(exc, (psycopg.errors.AdminShutdown, psycopg.errors.CrashShutdown,
                        psycopg.errors.CannotConnectNow)):
        return True
    return isinstance(exc, psycopg.OperationalError) and (conn is None or conn.broken
                                                          or conn.closed)


class Database:
    """A connection pool to one Postgres database, with retried transactions.

    The pool is made anew in a process forked from the one that made it: a
    connection must never be shared across fork().
    """

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 10) -> None:
        self.conninfo, self.location, self.schema = split_url(url, schema)
        # The URL's own application_name wins (libpq reads it from the query).
        names = [v for k, v in parse_qsl(urlsplit(url).query) if k == "application_name"]
        self.application_name = names[-1] if names else APPLICATION_NAME
        self.pool_size = pool_size
        self._lock = threading.Lock()
        self._pid = -1
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self.commits = 0  # write transactions committed through this object

    # -- connections ------------------------------------------------------------

    def connect(self, role: str = "") -> psycopg.Connection[Any]:
        """A new autocommit connection outside the pool (``role`` names it)."""
        try:
            return psycopg.connect(self.conninfo, autocommit=True,
                                   connect_timeout=CONNECT_TIMEOUT,
                                   application_name=self.application_name + role)
        except psycopg.Error as exc:
            raise self.error(exc) from exc

    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """This process's pool, opened on first use."""
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self.connect().close()  # a clear error now beats a pool timeout later
                self._pool = ConnectionPool(
                    self.conninfo, min_size=1, max_size=self.pool_size, timeout=POOL_TIMEOUT,
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT,
                            "application_name": self.application_name},
                    name="queuetopia_lite", open=False)
                self._pool.open()
                self._pid = os.getpid()
            return self._pool

    def close(self) -> None:
        """Close the pool (only in the process that opened it)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()

    def error(self, exc: BaseException) -> DatabaseError:
        """Wrap a psycopg error as a DatabaseError naming the URL (no password)."""
        if isinstance(exc, PoolTimeout):
            return DatabaseError(self.location, "no database connection available in "
                                 f"{POOL_TIMEOUT:.0f} s (is the server up?)")
        text = str(exc).strip().replace(self.conninfo, self.location) or type(exc).__name__
        # A missing table or privilege needs a person; a lost server needs patience.
        return DatabaseError(self.location, text.splitlines()[0],
                             retryable=not isinstance(exc, psycopg.ProgrammingError))

    # -- transactions -----------------------------------------------------------

    def read(self, body: Callable[[Cursor], T]) -> T:
        """Run ``body`` in autocommit mode, again on a fresh connection if the first drops."""
        return self._retrying(lambda cur: body(cur))

    def write(self, body: Callable[[Cursor], T]) -> T:
        """Run ``body`` in one transaction: committed exactly once, or an error."""
        return self._retrying(lambda cur: self._transaction(cur, lambda cur, _rows: body(cur)))

    def write_first(self, query: bytes, args: dict[str, Any],
                    body: Callable[[Cursor, list[Any]], T]) -> T:
        """Like write(), with ``query`` as the transaction's first statement.

        ``query`` goes out with BEGIN in one round trip (pipeline mode); ``body``
        gets its rows and may run more statements before COMMIT. A statement
        transaction then costs two round trips, not three.
        """
        return self._retrying(lambda cur: self._transaction(cur, body, (query, args)))

    def _retrying(self, attempt: Callable[[Cursor], T]) -> T:
        pause = RETRY_PAUSE
        for tries in range(RETRIES + 1):
            conn = None
            pool = None
            try:
                pool = self.pool()
                conn = pool.getconn()
                with conn.cursor() as cur:
                    return attempt(cur)
            except _Retry as retry:
                if tries == RETRIES:
                    raise self.error(retry.cause) from retry.cause
            except (psycopg.Error, PoolTimeout) as exc:
                if not (is_connection_error(exc, conn) or isinstance(exc, _RETRYABLE)):
                    raise self.error(exc) from exc
                if tries == RETRIES:
                    raise self.error(exc) from exc
                if pool is not None and isinstance(exc, psycopg.OperationalError):
                    pool.check()  # drop the other dead connections of a restarted server
            finally:
                if conn is not None and pool is not None:
                    pool.putconn(conn)
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, RETRY_PAUSE_MAX)
        raise AssertionError("unreachable")

    def _transaction(self, cur: Cursor, body: Callable[[Cursor, list[Any]], T],
                     first: tuple[bytes, dict[str, Any]] | None = None) -> T:
        conn = cur.connection
        rows: list[Any] = []
        try:
            if first is None:
                cur.execute(b"BEGIN; SELECT pg_current_xact_id()::text")
                cur.nextset()
                row = cur.fetchone()
            else:
                # Nothing is committed before we hold the xid: a connection lost in
                # this round trip leaves a transaction the server rolls back.
                with conn.cursor() as xcur:
                    with conn.pipeline():
                        conn.execute(b"BEGIN")
                        xcur.execute(b"SELECT pg_current_xact_id()::text")
                        cur.execute(*first)
                    row = xcur.fetchone()
                rows = cur.fetchall() if cur.description is not None else []
            assert row is not None
            xid: str = row[0]
            result = body(cur, rows)
        except BaseException:
            if not conn.broken and not conn.closed:
                conn.execute(b"ROLLBACK")
            raise
        try:
            conn.execute(b"COMMIT")
        except psycopg.Error as exc:
            if not is_connection_error(exc, conn):
                raise
            if not self._committed(xid, exc):
                raise _Retry(exc) from exc
        with self._lock:
            self.commits += 1
        return result

    def _committed(self, xid: str, cause: psycopg.Error) -> bool:
        """Whether transaction ``xid``, whose COMMIT got no answer, committed."""
        deadline = time.monotonic() + COMMIT_CHECK_TIME
        pause = RETRY_PAUSE
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.conninfo, autocommit=True,
                                     connect_timeout=CONNECT_TIMEOUT) as conn:
                    row = conn.execute(b"SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
                status = None if row is None else row[0]
                if status != "in progress":
                    return status == "committed"
            except psycopg.Error:
                pass
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, RETRY_PAUSE_MAX)
        raise DatabaseError(self.location, "lost the connection during COMMIT and could not "
                            f"learn whether it happened: {cause}")


class _Retry(Exception):
    """The transaction did not commit: run it again."""

    def __init__(self, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause
