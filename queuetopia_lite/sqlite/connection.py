"""SQLite connections: one per thread, never across fork(), every write IMMEDIATE.

Writes retry the whole transaction when SQLite stays busy beyond the busy
timeout, so "database is locked" reaches nobody who only enqueued; after the
last retry the error names the file. Errors a retry cannot fix (read-only,
full, corrupt, not a database) are raised at once as DatabaseError.
"""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from typing import Callable, TypeVar

import apsw

from ..errors import DatabaseError

T = TypeVar("T")

BUSY_TIMEOUT = 5.0  # seconds SQLite itself waits for a lock
WRITE_RETRIES = 6  # whole-transaction retries after the busy timeout ran out
RETRY_PAUSE = 0.05  # seconds, doubled per retry, with jitter
APPLICATION_ID = 0x51544C31  # "QTL1" in the file header marks our databases
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of WAL kept after a checkpoint
SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}


# Errors that waiting cannot cure: workers stop instead of retrying them forever.
_NEEDS_A_PERSON = (apsw.ReadOnlyError, apsw.NotADBError, apsw.CorruptError, apsw.CantOpenError,
                   apsw.PermissionsError)


def describe(error: apsw.Error) -> str | None:
    """A plain sentence for errors that no retry can fix, else None."""
    if isinstance(error, apsw.ReadOnlyError):
        return "the database is read-only (check the permissions of the file and its folder)"
    if isinstance(error, apsw.FullError):
        return "the disk is full: the database cannot grow"
    if isinstance(error, apsw.NotADBError):
        return "not a database file"
    if isinstance(error, apsw.CorruptError):
        return "the database file is corrupt (restore it from a backup)"
    if isinstance(error, apsw.CantOpenError):
        return "cannot open the database file (does its folder exist, is it writable?)"
    if isinstance(error, apsw.IOError):
        # apsw's message is often empty here; the extended code says which call failed.
        number: int = getattr(error, "extendedresult", 0)
        code = str(apsw.mapping_extended_result_codes.get(number)
                   or apsw.mapping_result_codes.get(number, "SQLITE_IOERR"))
        return f"disk I/O error ({code}{': ' + str(error) if str(error) else ''})"
    if isinstance(error, apsw.PermissionsError):
        return "permission denied"
    return None


class Connections:
    """Hands each thread its own connection to one database file."""

    def __init__(self, path: str, durability: str, busy_timeout: float = BUSY_TIMEOUT,
                 vfs: str | None = None) -> None:
        if durability not in SYNCHRONOUS:
            from ..errors import InvalidJobError

            raise InvalidJobError("durability", f"expected 'full' or 'normal', got {durability!r}")
        self.path = path
        self.durability = durability
        self.busy_timeout = busy_timeout
        self.vfs = vfs  # an apsw VFS name (e.g. a fault-injecting shim); None: SQLite's default
        self._local = threading.local()
        self._all: weakref.WeakSet[apsw.Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._generation = 0  # bumped by close_all: older connections are closed

    def get(self) -> apsw.Connection:
        """This thread's connection, opened on first use (and anew after fork)."""
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        pid = os.getpid()
        if conn is not None and self._local.key == (pid, self._generation):
            return conn
        # A connection inherited through fork() shares file locks with the parent:
        # never touch it, not even to close it. Nor the lock: a parent's thread may
        # have held it at the fork, and the child has only this thread.
        if pid != self._pid:
            self._lock = threading.Lock()
        with self._lock:
            if pid != self._pid:
                self._pid = pid
                self._all = weakref.WeakSet()
            conn = self._open()
            self._all.add(conn)
            self._local.conn = conn
            self._local.key = (pid, self._generation)
        return conn

    def _open(self) -> apsw.Connection:
        try:
            conn = apsw.Connection(self.path, vfs=self.vfs)
            conn.set_busy_timeout(int(self.busy_timeout * 1000))
            conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self.durability]}")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        except apsw.Error as exc:
            raise self.error(exc) from exc
        return conn

    def error(self, exc: apsw.Error) -> DatabaseError:
        """Wrap an apsw error as a DatabaseError naming the file."""
        return DatabaseError(self.path, describe(exc) or f"{type(exc).__name__}: {exc}",
                             retryable=not isinstance(exc, _NEEDS_A_PERSON))

    def write(self, body: Callable[[apsw.Connection], T]) -> T:
        """Run ``body`` in a BEGIN IMMEDIATE transaction, retrying it while busy."""
        pause = RETRY_PAUSE
        for attempt in range(WRITE_RETRIES + 1):
            conn = self.get()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if not conn.get_autocommit():
                        conn.execute("ROLLBACK")
                    raise
                return result
            except apsw.BusyError as exc:
                if attempt == WRITE_RETRIES:
                    raise DatabaseError(
                        self.path,
                        "database is locked: another process held its write lock for too long",
                    ) from exc
            except apsw.Error as exc:
                raise self.error(exc) from exc
            time.sleep(pause * (0.5 + random.random()))
            pause *= 2
        raise AssertionError("unreachable")

    def read(self, body: Callable[[apsw.Connection], T]) -> T:
        """Run ``body`` on this thread's connection (a read: no transaction needed)."""
        pause = RETRY_PAUSE
        for attempt in range(WRITE_RETRIES + 1):
            try:
                return body(self.get())
            except apsw.BusyError as exc:
                if attempt == WRITE_RETRIES:
                    raise DatabaseError(self.path, "database is locked") from exc
            except apsw.Error as exc:
                raise self.error(exc) from exc
            time.sleep(pause * (0.5 + random.random()))
            pause *= 2
        raise AssertionError("unreachable")

    def close_current(self) -> None:
        """Close this thread's connection, if it has one."""
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.key[0] == os.getpid():
            conn.close()
        self._local.conn = None

    def close_all(self) -> None:
        """Close every connection this process opened (call when no thread uses them)."""
        with self._lock:
            if os.getpid() != self._pid:
                return  # inherited through fork(): the parent's to close
            conns = list(self._all)
            self._all.clear()
            self._generation += 1
        for conn in conns:
            try:
                conn.close()
            except apsw.Error:
                pass
        self._local.conn = None
