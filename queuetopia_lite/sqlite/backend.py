"""SQLiteBackend: the Backend protocol on one SQLite file."""

from __future__ import annotations

import os
import time
from typing import Any, Collection, Sequence

import apsw

from .. import sql
from ..backend import BackoffFunction, Claim, NewJob, Outcome, StepResult, default_backoff
from ..errors import DatabaseError, JobStateError, check_schema_version
from ..job import Job, JobState, QueueStatus
from ..rows import JOB_COLUMNS, job_from_row, state_filter_sql
from ..status import queue_status_from_row
from .connection import APPLICATION_ID, BUSY_TIMEOUT, Connections
from .transactions import (
    claim_heads,
    insert_jobs,
    recover_expired,
    refresh_head,
    require,
    run,
    save_outcome,
)

SCHEMA_VERSION = 4
PRUNE_BATCH = 2000  # rows deleted by prune's first write transaction; then it adapts:
PRUNE_HOLD = 0.02  # seconds of write lock a prune batch aims at
PRUNE_BATCH_MIN, PRUNE_BATCH_MAX = 100, 20_000  # rows per batch
_MIGRATIONS = sql.load(__package__, "migrations.sql")
_STATE_SQL = state_filter_sql(":now")
_FOREIGN = "a database of another application, not queuetopia_lite"


class SQLiteBackend:
    """Jobs in one SQLite file (WAL), one connection per thread.

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
    """

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "full",
                 migrate: bool = True, busy_timeout: float = BUSY_TIMEOUT,
                 vfs: str | None = None) -> None:
        self.path = os.fspath(path)
        self._conns = Connections(self.path, durability, busy_timeout, vfs)
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
        except apsw.Error as exc:
            raise self._conns.error(exc) from exc

        # An up-to-date file needs no write: opening must not wait for (or fail on) another
        # process's write lock, nor rewrite the header of a file it cannot use.
        if self._conns.read(self._version) == SCHEMA_VERSION:
            return SCHEMA_VERSION

        def body(conn: apsw.Connection) -> int:
            version = self._version(conn)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                conn.execute(_MIGRATIONS[f"step_{step}"]).fetchall()  # every statement runs
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return SCHEMA_VERSION

        return self._conns.write(body)

    def _version(self, conn: apsw.Connection) -> int:
        app_id: Any = conn.execute("PRAGMA application_id").fetchall()[0][0]
        version: int = conn.execute("PRAGMA user_version").fetchall()[0][0]  # type: ignore[assignment]
        if app_id == 0 and version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()[0][0]
            if tables:
                raise DatabaseError(self.path, _FOREIGN)
        elif app_id != APPLICATION_ID:
            raise DatabaseError(self.path, _FOREIGN)
        check_schema_version(self.path, version, SCHEMA_VERSION, exact=False)
        return version

    def _check_version(self) -> None:
        version = self._conns.read(self._version)
        check_schema_version(self.path, version, SCHEMA_VERSION, exact=True)

    # -- jobs -----------------------------------------------------------------

    def insert_jobs(self, scope: str, jobs: Sequence[NewJob], now: float) -> list[Job]:
        """Store all jobs in one transaction and return them in order."""
        return self._conns.write(lambda conn: insert_jobs(conn, scope, jobs, now))

    def get_job(self, scope: str, job_id: int, now: float) -> Job | None:
        """The job with this id in this scope, or None."""
        def body(conn: apsw.Connection) -> Job | None:
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
             backoff: BackoffFunction | None = None, alive: Collection[str] = ()) -> StepResult:
        """Save outcomes, recover expired leases and claim heads, in one transaction."""
        def body(conn: apsw.Connection) -> StepResult:
            result = StepResult()
            for outcome in outcomes:
                save_outcome(conn, scope, outcome, now, result)
            recover_expired(conn, scope, now, backoff or default_backoff, result, alive)
            if claim > 0:
                claim_heads(conn, scope, now, claim, owner, now + lease, result)
            return result
        return self._conns.write(body)

    def renew(self, scope: str, claims: Sequence[Claim], until: float) -> list[Claim]:
        """Extend these claims' leases to ``until``; return the claims whose lock was lost."""
        def body(conn: apsw.Connection) -> list[Claim]:
            lost = []
            for c in claims:
                run(conn, "renew_lease", {"scope": scope, "queue": c.job.queue,
                                                 "token": c.token, "until": until})
                if conn.changes() == 0:
                    lost.append(c)
            return lost
        return self._conns.write(body) if claims else []

    def next_due(self, scope: str) -> float | None:
        """The earliest instant a queue becomes runnable or a lease ends."""
        def body(conn: apsw.Connection) -> float | None:
            args = {"scope": scope}
            times = [run(conn, "next_ready", args, one=True)[0],
                     run(conn, "next_lease_end", args, one=True)[0]]
            present = [t for t in times if t is not None]
            return min(present) if present else None
        return self._conns.read(body)

    def has_runnable(self, scope: str, now: float) -> bool:
        """Whether a step now would claim or recover something."""
        args = {"scope": scope, "now": now}
        return bool(self._conns.read(lambda conn: run(conn, "has_runnable", args, one=True)[0]))

    def change_counter(self) -> int:
        """PRAGMA data_version of this thread's connection: moves on others' commits."""
        # The pragma (not the file control) starts a read, so it sees other commits.
        return int(self._conns.read(
            lambda conn: conn.execute("PRAGMA data_version").fetchall()[0][0]))  # type: ignore[arg-type]

    # -- operating ------------------------------------------------------------

    def count_jobs(self, scope: str, now: float) -> dict[JobState, int]:
        """How many jobs of this scope are in each state."""
        counts = dict.fromkeys(JobState, 0)
        rows = self._conns.read(lambda conn: run(conn, "count_jobs", {"scope": scope, "now": now}))
        for _status, state, n in rows:
            counts[JobState(state)] += n
        return counts

    def queue_statuses(self, scope: str, now: float, queue: str | None = None) -> list[QueueStatus]:
        """Every queue of this scope with its state, sorted by name."""
        def body(conn: apsw.Connection) -> list[QueueStatus]:
            rows = run(conn, "queues", {"scope": scope, "queue": queue})
            return [queue_status_from_row(row, now) for row in rows]
        return self._conns.read(body)

    def retry_job(self, scope: str, job_id: int, now: float) -> Job:
        """Make the job runnable now, attempts kept (one more if exhausted)."""
        def body(conn: apsw.Connection) -> Job:
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
        def body(conn: apsw.Connection) -> Job:
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

        def body(conn: apsw.Connection) -> int:
            begun.append(time.monotonic())  # the write lock is ours from here
            run(conn, name, args)
            return conn.changes()

        n = self._conns.write(body)
        return n, time.monotonic() - begun[-1]

    def backup(self, destination: str | os.PathLike[str]) -> None:
        """Copy the database to ``destination`` as one consistent snapshot (online backup)."""
        target = os.fspath(destination)
        try:
            dest = apsw.Connection(target)
            try:
                # One step copies every page under one read snapshot; in WAL mode writers
                # go on meanwhile (stepping in pieces would restart at each of their commits).
                with dest.backup("main", self._conns.get(), "main") as copy:
                    copy.step(-1)
            finally:
                dest.close()
        except apsw.Error as exc:
            raise DatabaseError(target, f"backup failed: {exc}") from exc

    def close(self) -> None:
        """Close every connection this backend opened in this process."""
        self._conns.close_all()


