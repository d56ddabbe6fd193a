"""SQLiteBackend: the Backend protocol on one SQLite file."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Collection, Iterator, Sequence

from .. import sql
from ..backend import (
    Activity,
    BackoffFunction,
    Claim,
    HostInstant,
    NewJob,
    Outcome,
    PeriodicTick,
    QueuePage,
    StepResult,
    activity,
    queue_page_rank,
    safe_delay,
)
from ..errors import DatabaseError, JobStateError, check_schema_version
from ..job import Job, JobState, QueueStatus
from ..rows import JOB_COLUMNS, job_from_row, state_filter_sql
from ..status import queue_status_from_row
from . import drivers
from .connection import APPLICATION_ID, BUSY_TIMEOUT, Connections
from .drivers import Conn
from .foreign import adopt, insert_in
from .transactions import (
    claim_heads,
    expired_jobs,
    host_args,
    insert_jobs,
    recover_expired,
    refresh_head,
    require,
    run,
    save_outcome,
)

SCHEMA_VERSION = 6
PRUNE_BATCH = 2000  # rows deleted by prune's first write transaction; then it adapts:
PRUNE_HOLD = 0.02  # seconds of write lock a prune batch aims at
PRUNE_BATCH_MIN, PRUNE_BATCH_MAX = 100, 20_000  # rows per batch
_MIGRATIONS = sql.load(__package__, "migrations.sql")
_STATE_SQL = state_filter_sql(":now")
LIBRARY_LOOK_EVERY = 0.01  # seconds: enqueues within this of a clean look skip their own


class SQLiteBackend:
    """Jobs in one SQLite file (WAL), one connection per thread.

    The file may be the application's own database: our tables (``qt_*``) sit
    beside its tables, and our schema version lives in ``qt_schema``.

    Args:
        path: the database file; created with its schema if missing.
        durability: "full" (a returned write survives power loss: synchronous=FULL)
            or "normal" (faster; the last commits may roll back on power loss,
            never on a process crash).
        migrate: create or upgrade the schema on open; if False, an outdated
            schema is an error.
        busy_timeout: seconds SQLite waits for another writer before the whole
            transaction is retried (a few times, then DatabaseError).
        vfs: the name of a registered SQLite VFS to open the file with (apsw.VFS
            subclasses, e.g. a shim that injects I/O errors in tests); None: the default.
            apsw only.
        driver: "apsw" (the default: apsw's own SQLite) or "sqlite3" (Python's
            sqlite3 module, so an application on it shares one SQLite library
            with the queue: see drivers.py).
    """

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "full",
                 migrate: bool = True, busy_timeout: float = BUSY_TIMEOUT,
                 vfs: str | None = None, driver: str = "apsw") -> None:
        self.path = os.fspath(path)
        self._conns = Connections(self.path, durability, busy_timeout, vfs, driver)
        self.driver = self._conns.driver
        self._library_looked = -LIBRARY_LOOK_EVERY  # monotonic time of the last enqueue's look
        if migrate:
            self.migrate()
        else:
            self._check_version()

    @property
    def location(self) -> str:
        """The database file's path."""
        return self.path

    # -- schema ---------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the schema; return its version."""
        self._conns.read(self._version)  # refuse a foreign file before touching it
        conn = self._conns.get()
        try:
            if conn.execute("PRAGMA journal_mode").fetchall()[0][0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
        except drivers.errors() as exc:
            raise self._conns.error(exc) from exc
        drivers.check_one_library(self.driver, self.path)  # now that our first read mapped it

        # An up-to-date file needs no write: opening must not wait for (or fail on) another
        # process's write lock, nor rewrite the header of a file it cannot use.
        if self._conns.read(self._version) == SCHEMA_VERSION:
            return SCHEMA_VERSION

        def body(conn: Conn) -> int:
            version = self._version(conn)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                drivers.run_script(conn, _MIGRATIONS[f"step_{step}"])
            if version == 1:
                # Version 1 marked its files in the header; the header is the
                # application's, and an older queuetopia_lite reading user_version
                # would take a newer schema for its own: it now sees a foreign file.
                conn.execute("PRAGMA application_id = 0")
                conn.execute("PRAGMA user_version = 0")
            conn.execute(_MIGRATIONS["set_version"], {"version": SCHEMA_VERSION})
            return SCHEMA_VERSION

        return self._conns.write(body)

    def _version(self, conn: Conn) -> int:
        """Our schema's version in this file (0: none yet), checked not too new."""
        ours = [str(row[0]) for row in conn.execute(_MIGRATIONS["our_tables"]).fetchall()]
        if "qt_schema" in ours:
            rows: list[Any] = conn.execute(_MIGRATIONS["version"]).fetchall()
            version = int(rows[0][0]) if rows else 0
        elif ours:
            # Version 1 kept its version in the header, marked with our application id.
            app_id: Any = conn.execute("PRAGMA application_id").fetchall()[0][0]
            if app_id != APPLICATION_ID or "qt_jobs" not in ours:
                raise DatabaseError(self.path, f"holds tables named {', '.join(ours)} that are "
                                    "not queuetopia_lite's (no qt_schema table)", retryable=False)
            version = int(conn.execute("PRAGMA user_version").fetchall()[0][0])  # type: ignore[arg-type]
        else:
            version = 0  # a new file, or the application's database without our tables
        check_schema_version(self.path, version, SCHEMA_VERSION, exact=False)
        return version

    def _check_version(self) -> None:
        version = self._conns.read(self._version)
        if version == 0:
            raise DatabaseError(self.path, "no queuetopia_lite tables in this database "
                                "(`queuetopia-lite migrate` adds them)", retryable=False)
        check_schema_version(self.path, version, SCHEMA_VERSION, exact=True)

    # -- jobs -----------------------------------------------------------------

    def insert_jobs(self, scope: str, jobs: Sequence[NewJob], now: float) -> list[Job]:
        """Store all jobs in one transaction and return them in order."""
        # Where the application is, so is the risk of a second SQLite library. The look
        # costs ~0.3 ms of kernel time (/proc/self/maps): concurrent creators' batches
        # share one per LIBRARY_LOOK_EVERY, and an enqueue after a quiet spell looks itself.
        mono = time.monotonic()
        if mono - self._library_looked >= LIBRARY_LOOK_EVERY:
            drivers.check_one_library(self.driver, self.path)
            self._library_looked = mono
        return self._conns.write(lambda conn: insert_jobs(conn, scope, jobs, now))

    def create_periodic_jobs(self, scope: str, ticks: Sequence[PeriodicTick],
                             now: float) -> list[Job]:
        """Store each tick's job if its tick is past its periodic's last one (compare-and-set)."""
        def body(conn: Conn) -> list[Job]:
            created = []
            for name, tick, job in ticks:
                args = {"scope": scope, "name": name, "tick": tick}
                run(conn, "advance_periodic", args)
                if drivers.changes(conn) == 1:
                    created += insert_jobs(conn, scope, [job], now)
                else:  # first seen: the schedule starts now
                    run(conn, "add_periodic", args)
            return created
        return self._conns.write(body) if ticks else []

    def get_job(self, scope: str, job_id: int, now: float) -> Job | None:
        """The job with this id in this scope, or None."""
        def body(conn: Conn) -> Job | None:
            row = run(conn, "get_job", {"scope": scope, "id": job_id}, one=True)
            return None if row is None else job_from_row(row, now)
        return self._conns.read(body)

    def list_jobs(self, scope: str, now: float, *, queue: str | None = None,
                  state: JobState | None = None, action: str | None = None,
                  limit: int = 100, offset: int = 0) -> list[Job]:
        """This scope's jobs, newest first, optionally filtered."""
        where = ["scope = :scope"]
        if queue is not None:
            where.append("queue = :queue")
        if action is not None:
            where.append("action = :action")
        if state is not None:
            where.append(_STATE_SQL[JobState(state)])
        query = (f"SELECT {JOB_COLUMNS} FROM qt_jobs WHERE {' AND '.join(where)} "
                 "ORDER BY id DESC LIMIT :limit OFFSET :offset")
        args = {"scope": scope, "queue": queue, "action": action, "now": now,
                "limit": limit, "offset": offset}
        return self._conns.read(
            lambda conn: [job_from_row(row, now) for row in conn.execute(query, args)])

    # -- scheduling -----------------------------------------------------------

    def step(self, scope: str, now: float, *, outcomes: Sequence[Outcome] = (),
             claim: int = 0, owner: str = "", lease: float = 30.0,
             backoff: BackoffFunction | None = None, alive: Collection[str] = (),
             host: HostInstant | None = None) -> StepResult:
        """Save outcomes, recover expired leases and claim heads, in one transaction."""
        delays: dict[str, float] = {}
        if backoff is not None:  # the application's code runs before the write transaction
            for token, job in self._conns.read(
                    lambda conn: expired_jobs(conn, scope, now, host)):
                if token not in alive and job.state == JobState.RUNNING:
                    delays[token] = safe_delay(backoff, job)

        def body(conn: Conn) -> StepResult:
            result = StepResult()
            for outcome in outcomes:
                save_outcome(conn, scope, outcome, now, result)
            recover_expired(conn, scope, now, delays, result, alive, host)
            if claim > 0:
                claim_heads(conn, scope, now, claim, owner, lease, result, host)
            return result
        return self._conns.write(body)

    def renew(self, scope: str, claims: Sequence[Claim], until: float,
              host_until: HostInstant | None = None) -> list[Claim]:
        """Extend these claims' leases to ``until``; return the claims whose lock was lost."""
        ends = host_args(host_until, 0.0)  # host_until is the end itself: 0 s from it

        def body(conn: Conn) -> list[Claim]:
            lost = []
            for c in claims:
                run(conn, "renew_lease", {"scope": scope, "queue": c.job.queue,
                                          "token": c.token, "until": until, **ends})
                if drivers.changes(conn) == 0:
                    lost.append(c)
            return lost
        return self._conns.write(body) if claims else []

    def lock_tokens(self, scope: str, prefix: str) -> list[str]:
        """The tokens of this scope's locked queues that start with ``prefix``."""
        args = {"scope": scope, "prefix": prefix}
        return self._conns.read(
            lambda conn: [str(row[0]) for row in run(conn, "lock_tokens", args)])

    def expire_claims(self, scope: str, tokens: Sequence[str], now: float) -> int:
        """End these claims' leases at ``now`` (fenced by token); return how many ended."""
        def body(conn: Conn) -> int:
            ended = 0
            for token in tokens:
                run(conn, "expire_claim", {"scope": scope, "token": token, "now": now})
                ended += drivers.changes(conn)
            return ended
        return self._conns.write(body) if tokens else 0

    def next_due(self, scope: str, now: float | None = None,
                 host: HostInstant | None = None) -> float | None:
        """The earliest instant a queue becomes runnable or a lease ends."""
        def body(conn: Conn) -> float | None:
            args = {"scope": scope, "now": now, **host_args(None if now is None else host)}
            times = [run(conn, "next_ready", args, one=True)[0],
                     run(conn, "next_lease_end", args, one=True)[0]]
            present = [t for t in times if t is not None]
            return min(present) if present else None
        return self._conns.read(body)

    def has_runnable(self, scope: str, now: float, host: HostInstant | None = None) -> bool:
        """Whether a step now would claim or recover something."""
        args = {"scope": scope, "now": now, **host_args(host)}
        return bool(self._conns.read(lambda conn: run(conn, "has_runnable", args, one=True)[0]))

    def change_counter(self) -> int:
        """PRAGMA data_version of this thread's connection: moves on others' commits."""
        # The pragma (not the file control) starts a read, so it sees other commits.
        return int(self._conns.read(
            lambda conn: conn.execute("PRAGMA data_version").fetchall()[0][0]))  # type: ignore[arg-type]

    # -- operating ------------------------------------------------------------

    def count_jobs(self, scope: str, now: float) -> dict[JobState, int]:
        """How many jobs of this scope are in each state."""
        def body(conn: Conn) -> dict[str, int]:
            with drivers.snapshot(conn):  # one snapshot for the four counts
                rows = run(conn, "count_jobs", {"scope": scope, "now": now})
            return {part: n for _status, part, n in rows if n}
        parts = self._conns.read(body)
        counts = dict.fromkeys(JobState, 0)
        for state in (JobState.DONE, JobState.RUNNING, JobState.FAILED, JobState.CANCELLED):
            counts[state] = parts.get(state.value, 0)
        retrying_later = parts.get("retrying-later", 0)  # scheduled_at > now, yet retrying
        counts[JobState.RETRYING] = parts.get("retrying", 0) + retrying_later
        counts[JobState.SCHEDULED] = parts.get("later", 0) - retrying_later
        counts[JobState.AVAILABLE] = (parts.get("pending", 0) - counts[JobState.RETRYING]
                                      - counts[JobState.SCHEDULED])
        return counts

    def queue_statuses(self, scope: str, now: float, queue: str | None = None) -> list[QueueStatus]:
        """Every queue of this scope with its state, sorted by name."""
        def body(conn: Conn) -> list[QueueStatus]:
            rows = run(conn, "queues", {"scope": scope, "queue": queue})
            return [queue_status_from_row(row, now) for row in rows]
        return self._conns.read(body)

    def retry_job(self, scope: str, job_id: int, now: float) -> Job:
        """Make the job runnable now, attempts kept (one more if exhausted)."""
        def body(conn: Conn) -> Job:
            job = require(conn, scope, job_id, now)
            if job.state in (JobState.RUNNING, JobState.DONE):
                raise JobStateError(f"job {job_id} is {job.state.value}: nothing to retry")
            args = {"scope": scope, "id": job_id, "queue": job.queue}
            run(conn, "retry_job", args)
            run(conn, "release_hold", args)
            refresh_head(conn, scope, job.queue, now)
            return require(conn, scope, job_id, now)
        return self._conns.write(body)

    def cancel_job(self, scope: str, job_id: int, now: float) -> Job:
        """Mark an unfinished job cancelled; its queue moves on."""
        def body(conn: Conn) -> Job:
            job = require(conn, scope, job_id, now)
            if job.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
                raise JobStateError(f"job {job_id} is already {job.state.value}")
            run(conn, "cancel_job", {"scope": scope, "id": job_id})
            refresh_head(conn, scope, job.queue, now)
            return require(conn, scope, job_id, now)
        return self._conns.write(body)

    def prune(self, scope: str, done_before: float) -> int:
        """Delete this scope's done jobs finished before ``done_before``; return how many.

        In batches, one short write transaction each, so that pruning a million
        jobs never keeps other writers (enqueues, workers) waiting long: a batch
        aims at PRUNE_HOLD of write lock (its size adapts to how long the last
        one took), and the lock is then left free about as long. Idle queues of
        the scope are forgotten the same way.
        """
        deleted = self._prune_batches("prune_jobs", scope, done_before)
        self._prune_batches("prune_queues", scope, done_before)
        return deleted

    def _prune_batches(self, name: str, scope: str, done_before: float) -> int:
        """Run the named batch delete until a batch comes back short; rows deleted."""
        size, total = PRUNE_BATCH, 0
        while True:
            n, held = self._prune_batch(name, {"scope": scope, "before": done_before,
                                               "batch": size})
            total += n
            if n < size:
                return total
            # Leave the lock free as long as the batch held it: a writer asleep in
            # SQLite's busy handler wakes to a free lock instead of finding the next
            # batch there every time (it could otherwise wait for the whole prune).
            time.sleep(min(held, PRUNE_HOLD))
            if held > PRUNE_HOLD:  # rows scattered over many pages: smaller batches
                size = max(size // 2, PRUNE_BATCH_MIN)
            elif held < PRUNE_HOLD / 4:
                size = min(size * 2, PRUNE_BATCH_MAX)

    def _prune_batch(self, name: str, args: dict[str, Any]) -> tuple[int, float]:
        """One batch in its own write transaction: rows deleted, seconds of write lock."""
        begun: list[float] = []

        def body(conn: Conn) -> int:
            begun.append(time.monotonic())  # the write lock is ours from here
            run(conn, name, args)
            return drivers.changes(conn)

        n = self._conns.write(body)
        return n, time.monotonic() - begun[-1]

    # -- dashboard reads ------------------------------------------------------

    def queue_page(self, scope: str, now: float, *, search: str | None = None,
                   only: str | None = None, limit: int = 50, offset: int = 0) -> QueuePage:
        """A page of queues whose name contains ``search``, failing first."""
        args = {"scope": scope, "search": search or None, "rank": queue_page_rank(only),
                "limit": limit, "offset": offset}

        def body(conn: Conn) -> QueuePage:
            with drivers.snapshot(conn):  # one read transaction: the counts and the page agree
                total, failing, running = run(conn, "queue_page_counts", args, one=True)
                rows = run(conn, "queue_page", args)
            return QueuePage(total=total, failing=failing, running=running,
                             queues=[queue_status_from_row(row, now) for row in rows])
        return self._conns.read(body)

    def pending_jobs(self, scope: str, queue: str, now: float, *, limit: int = 100,
                     offset: int = 0) -> list[Job]:
        """A queue's pending jobs in the order they will run."""
        args = {"scope": scope, "queue": queue, "limit": limit, "offset": offset}
        return self._conns.read(
            lambda conn: [job_from_row(row, now) for row in run(conn, "pending_jobs", args)])

    def job_activity(self, scope: str, now: float, *, since: float,
                     bucket: float) -> Activity:
        """Jobs done and failed per ``bucket`` seconds from ``since`` up to ``now``."""
        args = {"scope": scope, "since": since, "bucket": bucket}

        def body(conn: Conn) -> Activity:
            with drivers.snapshot(conn):
                done = run(conn, "done_per_bucket", args)
                failed = run(conn, "failed_per_bucket", args)
            return activity(since, now, bucket, done, failed)
        return self._conns.read(body)

    def backup(self, destination: str | os.PathLike[str]) -> None:
        """Copy the database to ``destination`` as one consistent snapshot (online backup)."""
        target = os.fspath(destination)
        try:
            drivers.backup(self._conns.get(), target)
        except drivers.errors() as exc:
            raise DatabaseError(target, f"backup failed: {exc}") from exc

    # -- the application's transactions ---------------------------------------

    def insert_jobs_in(self, connection: object, scope: str, jobs: Sequence[NewJob],
                       now: float) -> list[Job]:
        """Insert jobs inside the application's open transaction on ``connection``.

        They are stored if and only if that transaction commits; we never commit
        or roll it back. Raises InvalidJobError("connection") for a connection we
        cannot join (nothing is written then).
        """
        conn = adopt(connection, self.path, self.driver)
        drivers.check_one_library(self.driver, self.path)
        return insert_in(conn, scope, jobs, now, self._conns.error)

    def check_writer(self) -> None:
        """Refuse a write from a thread inside ``transaction()``, in that thread and at once.

        Its write may be run by another thread (creators share transactions), which
        would wait for the write lock this thread's transaction holds.
        """
        self._conns.check_idle()  # opens no connection: a thread with none has no transaction

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Conn]:
        """This thread's connection in one write transaction: commit at the end,
        rollback (and re-raise) on an exception."""
        drivers.check_one_library(self.driver, self.path)
        conn = self._conns.begin()
        try:
            yield conn
        except BaseException:
            if drivers.in_transaction(conn):
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except drivers.errors() as exc:
            if drivers.in_transaction(conn):
                conn.execute("ROLLBACK")
            raise self._conns.error(exc) from exc

    def close(self) -> None:
        """Close every connection this backend opened in this process."""
        self._conns.close_all()


