"""SQLite connections: one per thread, never across fork(), every write IMMEDIATE.

The same on both drivers (apsw or Python's sqlite3, see drivers.py).

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
from typing import Callable, TypeVar, cast

from ..combine import Combiner, Request, settle_done, settle_interrupted
from ..errors import DatabaseError, InvalidJobError
from . import drivers, forkgate
from .drivers import Conn
from .forkgate import GATE

T = TypeVar("T")

BUSY_TIMEOUT = 5.0  # seconds SQLite itself waits for a lock
WRITE_RETRIES = 6  # whole-transaction retries after the busy timeout ran out
RETRY_PAUSE = 0.05  # seconds, doubled per retry, with jitter
APPLICATION_ID = 0x51544C31  # "QTL1": how version 1 marked its files (no longer written)
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of WAL kept after a checkpoint
SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}
_IN_MEMORY = ("", ":memory:")
LATE_ROUNDS = 2  # rounds of writes that arrive during a shared transaction and join it


# Connections inherited through fork(): kept referenced so that no deallocation
# closes them in the child (closing runs SQLite's last-connection checks there).
_INHERITED: list[object] = []


class _Held:
    """A connection in a weak set (sqlite3's connections cannot be weakly referenced)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: Conn) -> None:
        self.conn = conn


_WRITERS: dict[str, threading.Lock] = {}  # one per database file of this process
_WRITERS_GUARD = threading.Lock()
_WRITERS_PID = os.getpid()


def writer_lock(path: str) -> threading.Lock:
    """The lock this process's own writers of ``path`` take turns on.

    SQLite's busy handler sleeps (1, 2, 5, 10... ms) while another connection
    writes: between threads of one process that would add milliseconds to every
    contended write (the committer, creators, the lease keeper). Taking turns on a
    lock first hands the file over at once; other processes still meet SQLite's
    own lock. (An application's transaction through q.transaction() does not take
    it: it may hold the file while its own code runs.)
    """
    global _WRITERS, _WRITERS_GUARD, _WRITERS_PID
    if _WRITERS_PID != os.getpid():  # a fork()ed child: a parent's thread may hold them
        _WRITERS, _WRITERS_GUARD, _WRITERS_PID = {}, threading.Lock(), os.getpid()
    lock = _WRITERS.get(path)
    if lock is None:
        with _WRITERS_GUARD:
            lock = _WRITERS.setdefault(os.path.realpath(path), threading.Lock())
            _WRITERS[path] = lock
    return lock


class _Write(Request):
    """One caller's body waiting for a shared write transaction."""

    __slots__ = ("body", "result")

    def __init__(self, body: Callable[[Conn], object]) -> None:
        super().__init__()
        self.body = body
        self.result: object = None


class Connections:
    """Hands each thread its own connection to one database file."""

    def __init__(self, path: str, durability: str, busy_timeout: float = BUSY_TIMEOUT,
                 vfs: str | None = None, driver: str = "apsw") -> None:
        if durability not in SYNCHRONOUS:
            raise InvalidJobError("durability", f"expected 'full' or 'normal', got {durability!r}")
        self.driver = drivers.check_driver(driver)
        if vfs is not None and driver != "apsw":
            raise InvalidJobError("vfs", "a VFS is an apsw feature: use driver='apsw'")
        if path in _IN_MEMORY or path.startswith("file::memory:"):
            # SQLite gives each connection (so each of our threads) its own empty database.
            raise InvalidJobError("database", f"{path!r} is private to one connection and "
                                  "this library uses one per thread: use a file (a temporary "
                                  "one, e.g. in tempfile.mkdtemp(), for throwaway queues)")
        self.path = path
        self.durability = durability
        self.busy_timeout = busy_timeout
        self.vfs = vfs  # an apsw VFS name (e.g. a fault-injecting shim); None: SQLite's default
        self._local = threading.local()
        # Each thread's connection, held by its thread-local slot: a thread that ends
        # drops (and so closes) its connection.
        self._all: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._generation = 0  # bumped by close_all: older connections are closed
        self._writes: Combiner[_Write] = Combiner()  # writes sharing transactions (see write)
        self._writes_pid = os.getpid()
        forkgate.install()

    def _held_here(self) -> _Held | None:
        """This thread's connection if it has one of this process and generation."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and self._local.key == (os.getpid(), self._generation):
            return held
        return None

    def get(self) -> Conn:
        """This thread's connection, opened on first use (and anew after fork)."""
        held = self._held_here()
        if held is not None:
            return held.conn
        pid = os.getpid()
        # A connection inherited through fork() shares file locks with the parent:
        # never touch it, not even to close it. Nor the lock: a parent's thread may
        # have held it at the fork, and the child has only this thread.
        if pid != self._pid:
            self._lock = threading.Lock()
        with self._lock:
            if pid != self._pid:
                self._pid = pid
                _INHERITED.extend(self._all)
                self._all = weakref.WeakSet()
            held = _Held(self._open())
            self._all.add(held)
            self._local.held = held
            self._local.key = (pid, self._generation)
        return held.conn

    def _open(self) -> Conn:
        # The descriptor check only when we hold no connection yet: while our other
        # threads open and close theirs, their descriptors come and go unlisted.
        first = not self._all
        try:
            drivers.check_one_library(self.driver, self.path, opening=first)
        except InvalidJobError as exc:
            if first:
                raise
            # A worker thread meeting it: stop, as for any error that needs a person.
            raise DatabaseError(self.path, exc.problem, retryable=False) from exc
        try:
            conn = drivers.connect(self.driver, self.path, self.busy_timeout, self.vfs)
            conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self.durability]}")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        except drivers.errors() as exc:
            raise self.error(exc) from exc
        return conn

    def error(self, exc: BaseException) -> DatabaseError:
        """Wrap a driver's error as a DatabaseError naming the file."""
        return DatabaseError(self.path, drivers.describe(exc) or f"{type(exc).__name__}: {exc}",
                             retryable=not drivers.needs_a_person(exc))

    def write(self, body: Callable[[Conn], T]) -> T:
        """Run ``body`` in a BEGIN IMMEDIATE transaction, retrying it while busy.

        Writes of this process's threads that wait at the same moment share one
        transaction (one commit, one fsync): the first to get the turn runs every
        waiting body, each in a savepoint of its own, so one that raises leaves
        nothing and the others are kept; if the transaction itself fails (its
        COMMIT, an error that ends it), every body of it fails with that error and
        nothing of it is stored. Each caller gets its own result or error.
        """
        self.idle()  # this thread inside q.transaction(): refused here, not in another's
        def once() -> T:
            return cast(T, self._shared(body))
        return self._while_busy(once, self._locked)

    def _shared(self, body: Callable[[Conn], object]) -> object:
        if self._writes_pid != os.getpid():  # a fork()ed child: a parent's thread may hold it
            self._writes = Combiner()  # before the pid: another thread must not use the old
            self._writes_pid = os.getpid()
        request = _Write(body)
        self._writes.submit(request, self._write_batch)
        if request.error is not None:
            raise request.error
        return request.result

    def _write_batch(self, batch: list[_Write]) -> None:
        """Run the bodies in one transaction and settle each (see write)."""
        committing = False
        conn: Conn | None = None
        try:
            with GATE.passage(), writer_lock(self.path):
                conn = self.idle()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if len(batch) == 1:
                        batch[0].result = batch[0].body(conn)
                    else:
                        for request in batch:
                            self._in_savepoint(conn, request)
                    # Writes that arrived meanwhile join before the commit (a few rounds:
                    # a steady stream must not keep the transaction open).
                    for _ in range(LATE_ROUNDS):
                        late = self._writes.take_waiting()
                        if not late:
                            break
                        batch += late
                        for request in late:
                            self._in_savepoint(conn, request)
                    committing = True
                    conn.execute("COMMIT")
                except BaseException:
                    if drivers.in_transaction(conn):
                        conn.execute("ROLLBACK")
                    raise
        except BaseException as exc:
            if (committing and not isinstance(exc, Exception) and conn is not None
                    and not drivers.in_transaction(conn)):
                # A Ctrl-C raised as the COMMIT returned: the batch is stored.
                settle_done(batch)
                raise
            for request in batch:  # rolled back: nothing of the batch is stored
                request.result = None
            settle_interrupted(batch, exc, lambda: self.path)  # a Ctrl-C: raised again here
            return
        settle_done(batch)

    @staticmethod
    def _in_savepoint(conn: Conn, request: _Write) -> None:
        conn.execute("SAVEPOINT qt_write")
        try:
            request.result = request.body(conn)
        except Exception as exc:  # a Ctrl-C is not this body's failure: the batch ends
            if not drivers.in_transaction(conn):
                raise  # the error ended the transaction: the whole batch fails
            conn.execute("ROLLBACK TO qt_write")
            request.error = exc
        conn.execute("RELEASE qt_write")

    def begin(self) -> Conn:
        """This thread's connection inside a new BEGIN IMMEDIATE (retried while busy)."""
        def once() -> Conn:
            conn = self.idle()
            conn.execute("BEGIN IMMEDIATE")
            return conn
        return self._while_busy(once, self._locked)

    def _while_busy(self, once: Callable[[], T], locked: Callable[[], DatabaseError]) -> T:
        """``once()``, tried again (with a growing pause) while the database stays busy;
        ``locked()`` after the last try; any other SQLite error as a DatabaseError."""
        pause = RETRY_PAUSE
        for attempt in range(WRITE_RETRIES + 1):
            try:
                return once()
            except drivers.errors() as exc:
                if not drivers.is_busy(exc):
                    raise self.error(exc) from exc
                if attempt == WRITE_RETRIES:
                    raise locked() from exc
            time.sleep(pause * (0.5 + random.random()))
            pause *= 2
        raise AssertionError("unreachable")

    def idle(self) -> Conn:
        """This thread's connection, which must not be inside a transaction already."""
        conn = self.get()
        _refuse_in_transaction(conn)
        return conn

    def check_idle(self) -> None:
        """Refuse if this thread's connection (if it has one yet) is inside a transaction."""
        held = self._held_here()
        if held is not None:
            _refuse_in_transaction(held.conn)

    def _locked(self) -> DatabaseError:
        return DatabaseError(
            self.path, "database is locked: another process held its write lock for too long")

    def read(self, body: Callable[[Conn], T]) -> T:
        """Run ``body`` on this thread's connection (a read: no transaction needed)."""
        def once() -> T:
            with GATE.passage():
                return body(self.get())
        return self._while_busy(once, lambda: DatabaseError(self.path, "database is locked"))

    def close_current(self) -> None:
        """Close this thread's connection, if it has one."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and self._local.key[0] == os.getpid():
            held.conn.close()
        self._local.held = None

    def close_all(self) -> None:
        """Close every connection this process opened (call when no thread uses them)."""
        with self._lock:
            if os.getpid() != self._pid:
                return  # inherited through fork(): the parent's to close
            conns = [held.conn for held in self._all]
            self._all.clear()
            self._generation += 1
        with GATE.closed():  # none of them is inside a statement meanwhile
            for conn in conns:
                try:
                    conn.close()
                except drivers.errors():
                    pass
        self._local.held = None


def _refuse_in_transaction(conn: Conn) -> None:
    if drivers.in_transaction(conn):
        raise InvalidJobError("connection", "this thread is inside q.transaction(): "
                              "pass connection=conn so that the write joins it")
