"""PostgresBackend: the Backend protocol on one Postgres schema."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Callable, Collection, Iterator, Sequence

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from psycopg_pool import PoolTimeout

from .. import sql
from ..backend import (
    Activity,
    BackoffFunction,
    Claim,
    Failure,
    HostInstant,
    NewJob,
    Outcome,
    PeriodicTick,
    QueuePage,
    Release,
    StepResult,
    activity,
    default_backoff,
    queue_page_rank,
)
from ..errors import DatabaseError, JobNotFoundError, JobStateError, check_schema_version
from ..job import Job, JobState, QueueStatus
from ..rows import JOB_COLUMNS, job_from_row, state_filter_sql
from ..status import queue_status_from_row
from . import asyncconn, foreign, steps
from .clock import CLOCK_TOLERANCE, DatabaseClock
from .connection import Cursor, Database
from .listener import Listener
from .steps import run

SCHEMA_VERSION = 6
log = logging.getLogger("queuetopia_lite")
PRUNE_BATCH = 2000  # rows deleted per transaction
_MIGRATIONS = sql.load(__package__, "migrations.sql")
_QUERIES = sql.load(__package__, "queries.sql")
_STATE_SQL = state_filter_sql("%(now)s")
_FOREIGN = "a schema of another application, not queuetopia_lite"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresBackend:
    """Jobs in one Postgres schema, shared by workers on many hosts.

    Queue locks are rows of ``qt_queues`` claimed with ``FOR UPDATE SKIP
    LOCKED``, so two workers never take the same queue and never wait for each
    other; every lock carries a lease and an owner token that fences later
    writes, as on SQLite. Lease times are on the database's clock: see
    ``queuetopia_lite.postgres.clock`` for how a caller's ``now`` maps to it.
    New jobs are announced with NOTIFY in their own transaction; a listener
    thread turns notifications into ``change_counter()`` moves.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?schema=name]``.
        schema: the Postgres schema holding the tables (default ``queuetopia``,
            or the URL's ``schema`` parameter). Several schemas isolate fully.
        migrate: create or upgrade the schema on open; if False, an outdated
            schema is an error.
        pool_size: the most connections this process opens (plus one listener).
        clock_tolerance: seconds of host clock offset ignored (see clock.py).
    """

    def __init__(self, url: str, *, schema: str | None = None, migrate: bool = True,
                 pool_size: int = 10, clock_tolerance: float = CLOCK_TOLERANCE) -> None:
        self._db = Database(url, schema=schema, pool_size=pool_size)
        self.schema = self._db.schema
        names = {"schema": _quote(self.schema), "job_columns": JOB_COLUMNS,
                 "step_job_columns": ", ".join(f"(r_job).{column.strip()}"
                                               for column in JOB_COLUMNS.split(",")),
                 "head_job_columns": ", ".join(f"h.{column.strip()}"
                                               for column in JOB_COLUMNS.split(","))}
        self._q = {name: text.format(**names).encode() for name, text in _QUERIES.items()}
        self._m = {name: text.format(**names).encode() for name, text in _MIGRATIONS.items()}
        self.channel = self.schema  # NOTIFY channel; the payload is the scope
        self._clock = DatabaseClock(self._database_time, clock_tolerance)
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        self._listener_pid = os.getpid()
        self._identity: foreign.Identity | None = None
        if migrate:
            self.migrate()
        else:
            self._check_version()

    @property
    def location(self) -> str:
        """The database URL without its password."""
        return self._db.location

    # -- schema ---------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the schema; return its version (one migrator at a time)."""
        def body(cur: Cursor) -> int:
            run(cur, self._m["lock"], {"schema": self.schema})
            version = self._version(cur)
            if version is None:
                if run(cur, self._m["foreign_tables"], {"schema": self.schema})[0][0]:
                    raise DatabaseError(self.location, f"schema {self.schema!r}: {_FOREIGN}")
                cur.execute(self._m["version_table"])
                version = 0
            for step in range(version + 1, SCHEMA_VERSION + 1):
                cur.execute(self._m[f"step_{step}"])
            run(cur, self._m["set_version"], {"version": SCHEMA_VERSION})
            return SCHEMA_VERSION
        return self._db.write(body)

    def _version(self, cur: Cursor) -> int | None:
        """The schema's version, None if it has no version table, checked not too new."""
        exists = run(cur, b"SELECT to_regclass(%(t)s) IS NOT NULL",
                     {"t": f"{_quote(self.schema)}.qt_version"})[0][0]
        if not exists:
            return None
        rows = run(cur, self._m["version"], {})
        version = int(rows[0][0]) if rows else 0
        check_schema_version(self.location, version, SCHEMA_VERSION, exact=False)
        return version

    def _check_version(self) -> None:
        version = self._db.read(self._version)
        check_schema_version(self.location, version or 0, SCHEMA_VERSION, exact=True)

    # -- clock ------------------------------------------------------------------

    def _database_time(self) -> float:
        return float(self._db.read(lambda cur: run(cur, self._q["clock"], {})[0][0]))

    def _offset(self) -> float:
        return self._clock.offset()

    # -- jobs -----------------------------------------------------------------

    def insert_jobs(self, scope: str, jobs: Sequence[NewJob], now: float) -> list[Job]:
        """Store all jobs in one transaction, announced by NOTIFY at its commit."""
        if not jobs:
            return []
        offset = self._offset()

        query, args = steps.insert_args(self._q, scope, self.channel, jobs, now + offset, offset)
        if any(job.unique_key is not None for job in jobs):
            return self._db.write_first(query, args, lambda cur, rows: steps.insert_unique(
                cur, self._q, scope, self.channel, jobs, now + offset, offset, rows))
        return self._db.write_first(query, args, lambda _cur, rows: steps.created_jobs(
            rows, now + offset))

    def insert_jobs_in(self, connection: object, scope: str, jobs: Sequence[NewJob],
                       now: float) -> list[Job]:
        """Insert jobs inside the application's transaction on ``connection``.

        Stored if and only if that transaction commits (its NOTIFY too); we never
        commit or roll it back, and never retry it. Raises InvalidJobError
        ("connection") for a connection we cannot join (nothing is written then).
        """
        conn = foreign.adopt(connection, self.location, self._own_identity)
        offset = self._offset()
        query, args = steps.insert_args(self._q, scope, self.channel, jobs, now + offset, offset)
        try:
            with conn.cursor(row_factory=tuple_row) as cur:
                rows = run(cur, query, args)
                if any(job.unique_key is not None for job in jobs):
                    return steps.insert_unique(cur, self._q, scope, self.channel, jobs,
                                               now + offset, offset, rows)
        except psycopg.Error as exc:  # the application's transaction has failed: its to end
            raise self._db.error(exc) from exc
        return steps.created_jobs(rows, now + offset)

    async def insert_jobs_in_async(self, connection: object, scope: str,
                                   jobs: Sequence[NewJob], now: float) -> list[Job]:
        """insert_jobs_in on a psycopg AsyncConnection, awaited (AsyncQueuetopia)."""
        return await asyncconn.insert_jobs_in_async(self, connection, scope, jobs, now)

    def _own_identity(self, fresh: bool) -> foreign.Identity:
        if self._identity is None or fresh:
            self._identity = tuple(self._db.read(
                lambda cur: run(cur, foreign.IDENTITY_QUERY, {}))[0])
        return self._identity

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in one transaction: committed at the end, rolled back
        (and the exception re-raised) when the block raises."""
        try:
            pool = self._db.pool()
            conn = pool.getconn()
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._db.error(exc) from exc
        try:
            try:
                conn.execute(b"BEGIN")
            except psycopg.Error as exc:
                raise self._db.error(exc) from exc
            try:
                yield conn
            except BaseException:
                if not conn.broken and not conn.closed:
                    conn.execute(b"ROLLBACK")
                raise
            self._commit(conn)
        finally:
            pool.putconn(conn)

    def _commit(self, conn: psycopg.Connection[Any]) -> None:
        # A statement that failed inside the block (its error caught there) has
        # aborted the transaction: COMMIT would quietly roll back.
        if conn.info.transaction_status == TransactionStatus.INERROR:
            conn.execute(b"ROLLBACK")
            raise DatabaseError(self.location, "the transaction was rolled back: a statement "
                                "in it failed (its error was caught inside the block)",
                                retryable=False)
        try:
            conn.execute(b"COMMIT")
        except psycopg.Error as exc:
            raise self._db.error(exc) from exc
    def create_periodic_jobs(self, scope: str, ticks: Sequence[PeriodicTick],
                             now: float) -> list[Job]:
        """Store each tick's job if its tick is past its periodic's last one (compare-and-set)."""
        offset = self._offset()

        def body(cur: Cursor) -> list[Job]:
            created = []
            for name, tick, job in ticks:
                args = {"scope": scope, "name": name, "tick": tick}
                if run(cur, self._q["advance_periodic"], args):
                    created += steps.insert_unique(cur, self._q, scope, self.channel, [job],
                                                   now + offset, offset)
                else:  # first seen: the schedule starts now
                    run(cur, self._q["add_periodic"], args)
            return created
        result: list[Job] = self._db.write(body) if ticks else []
        return result

    def get_job(self, scope: str, job_id: int, now: float) -> Job | None:
        """The job with this id in this scope, or None."""
        now += self._offset()
        rows = self._db.read(lambda cur: run(cur, self._q["get_job"],
                                             {"scope": scope, "id": job_id}))
        return job_from_row(rows[0], now) if rows else None

    def list_jobs(self, scope: str, now: float, *, queue: str | None = None,
                  state: JobState | None = None, action: str | None = None,
                  limit: int = 100, offset: int = 0) -> list[Job]:
        """This scope's jobs, newest first, optionally filtered."""
        now += self._offset()
        where = ["scope = %(scope)s"]
        if queue is not None:
            where.append("queue = %(queue)s")
        if action is not None:
            where.append("action = %(action)s")
        if state is not None:
            where.append(_STATE_SQL[JobState(state)])
        query = (f"SELECT {JOB_COLUMNS} FROM {_quote(self.schema)}.qt_jobs "
                 f"WHERE {' AND '.join(where)} ORDER BY id DESC "
                 "LIMIT %(limit)s OFFSET %(offset)s").encode()
        args = {"scope": scope, "queue": queue, "action": action, "now": now,
                "limit": limit, "offset": offset}
        rows = self._db.read(lambda cur: run(cur, query, args))
        return [job_from_row(row, now) for row in rows]

    # -- scheduling -----------------------------------------------------------

    def step(self, scope: str, now: float, *, outcomes: Sequence[Outcome] = (),
             claim: int = 0, owner: str = "", lease: float = 30.0,
             backoff: BackoffFunction | None = None, alive: Collection[str] = (),
             host: HostInstant | None = None) -> StepResult:
        """Save outcomes, recover expired leases and claim heads, in one transaction.

        Claims whose token is in ``alive`` (the caller's running jobs) are never recovered.
        ``host`` is not used: leases here follow the database server's clock (clock.py).
        """
        self._watch_scope(scope)
        offset = self._offset()
        now += offset
        q = self._q
        early = self._early_releases(outcomes)
        if early:
            outcomes = [o for o in outcomes if all(o is not e for e in early)]

        args = steps.step_args(scope, now, offset, self.channel, outcomes, claim, owner,
                               now + lease, alive)

        result = StepResult(rejected=list(early))

        def body(cur: Cursor, rows: list[Any]) -> tuple[list[steps.Expired], int]:
            del result.claimed[:], result.failed[:]  # a retried transaction starts afresh
            result.rejected[len(early):] = []
            return steps.read_step(rows, outcomes, now, result)
        expired, released = self._db.write_first(q["step"], args, body)
        if expired:
            # Rare. The application's backoff (user code) runs here, between two
            # transactions, never while row locks are held; the second transaction
            # recovers only leases still expired under the same token, then claims.
            again = steps.recovery_args(args, expired, released, now,
                                        backoff or default_backoff)
            more = StepResult()

            def recover(cur: Cursor, rows: list[Any]) -> None:
                del more.claimed[:], more.failed[:], more.rejected[:]
                steps.read_step(rows, (), now, more)
            try:
                self._db.write_first(q["step"], again, recover)
            except DatabaseError as exc:
                if not exc.retryable:
                    raise
                # The outcomes are saved: a later step finds these leases again.
                log.warning("queuetopia_lite: recovering expired leases failed: %s", exc)
                return result
            result.claimed += more.claimed
            result.failed += more.failed
        return result

    def _early_releases(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Releases sent while their job still runs under their claim: refused."""
        # A timeout failure earlier in the same step settles its claim first.
        settled = {o.claim.token for o in outcomes if isinstance(o, Failure) and o.keep_lock}
        tokens = [o.claim.token for o in outcomes
                  if isinstance(o, Release) and o.claim.token not in settled]
        if not tokens:
            return []
        running = {row[0] for row in self._db.read(
            lambda cur: run(cur, self._q["running_tokens"], {"tokens": tokens}))}
        return [o for o in outcomes if isinstance(o, Release) and o.claim.token in running]

    def renew(self, scope: str, claims: Sequence[Claim], until: float,
              host_until: HostInstant | None = None) -> list[Claim]:
        """Extend these claims' leases to ``until``; return the claims whose lock was lost.

        ``host_until`` is not used: leases follow the database server's clock.
        """
        if not claims:
            return []
        args = {"scope": scope, "until": until + self._offset(),
                "queues": [c.job.queue for c in claims], "tokens": [c.token for c in claims]}
        kept = {row[0] for row in self._db.write(
            lambda cur: run(cur, self._q["renew_leases"], args))}
        return [c for c in claims if c.token not in kept]

    def lock_tokens(self, scope: str, prefix: str) -> list[str]:
        """The tokens of this scope's locked queues that start with ``prefix``."""
        args = {"scope": scope, "prefix": prefix}
        return [str(row[0]) for row in self._db.read(
            lambda cur: run(cur, self._q["lock_tokens"], args))]

    def expire_claims(self, scope: str, tokens: Sequence[str], now: float) -> int:
        """End these claims' leases at ``now`` (fenced by token); return how many ended."""
        if not tokens:
            return 0
        args = {"scope": scope, "tokens": list(tokens), "now": now + self._offset()}

        def body(cur: Cursor) -> int:
            ended = len(run(cur, self._q["expire_claims"], args))
            if ended:
                self._notify(cur, scope)  # the other schedulers may recover them now
            return ended
        ended: int = self._db.write(body)
        return ended

    def next_due(self, scope: str, now: float | None = None,
                 host: HostInstant | None = None) -> float | None:
        """The earliest instant (host clock) a queue becomes runnable or a lease ends."""
        due = self._db.read(lambda cur: run(cur, self._q["next_due"], {"scope": scope}))[0][0]
        return None if due is None else float(due) - self._offset()

    def has_runnable(self, scope: str, now: float, host: HostInstant | None = None) -> bool:
        """Whether a step now would claim or recover something."""
        self._watch_scope(scope)
        args = {"scope": scope, "now": now + self._offset()}
        return bool(self._db.read(lambda cur: run(cur, self._q["has_runnable"], args)[0][0]))

    def change_counter(self) -> int:
        """Moves when a NOTIFY for a scope this process runs arrives, or on our own commits.

        Like SQLite's data_version seen from the watcher thread's connection, it
        also moves when another thread of this process commits a write (the
        scheduler relies on that to look again after its own steps). The first
        call starts the listener thread, so processes that only enqueue hold no
        listening connection.
        """
        return self._get_listener().counter + self._db.commits

    def _get_listener(self) -> Listener:
        if self._listener_pid != os.getpid():  # a fork()ed child: its parent's thread is gone
            self._listener_lock = threading.Lock()
            self._listener, self._listener_pid = None, os.getpid()
        with self._listener_lock:
            if self._listener is None:
                self._listener = Listener(lambda: self._db.connect("-listener"), self.channel)
            return self._listener

    def _watch_scope(self, scope: str) -> None:
        listener = self._listener
        if listener is not None and scope not in listener.scopes:
            listener.scopes = listener.scopes | {scope}

    def _notify(self, cur: Cursor, scope: str) -> None:
        run(cur, self._q["notify"], {"channel": self.channel, "scope": scope})

    # -- operating ------------------------------------------------------------

    def count_jobs(self, scope: str, now: float) -> dict[JobState, int]:
        """How many jobs of this scope are in each state."""
        args = {"scope": scope, "now": now + self._offset()}
        counts = dict.fromkeys(JobState, 0)
        for _status, state, n in self._db.read(lambda cur: run(cur, self._q["count_jobs"], args)):
            counts[JobState(state)] += n
        return counts

    def queue_statuses(self, scope: str, now: float, queue: str | None = None) -> list[QueueStatus]:
        """Every queue of this scope with its state, sorted by name."""
        now += self._offset()

        def body(cur: Cursor) -> list[QueueStatus]:
            rows = run(cur, self._q["queues"], {"scope": scope, "queue": queue})
            return [queue_status_from_row(row, now) for row in rows]
        return self._db.read(body)

    def retry_job(self, scope: str, job_id: int, now: float) -> Job:
        """Make the job runnable now, attempts kept (one more if exhausted)."""
        def change(cur: Cursor, job: Job, now: float) -> None:
            if job.state in (JobState.RUNNING, JobState.DONE):
                raise JobStateError(f"job {job_id} is {job.state.value}: nothing to retry")
            args = {"scope": scope, "id": job_id, "queue": job.queue}
            run(cur, self._q["retry_job"], args)
            run(cur, self._q["release_hold"], args)
        return self._operate(scope, job_id, now, change)

    def cancel_job(self, scope: str, job_id: int, now: float) -> Job:
        """Mark an unfinished job cancelled; its queue moves on."""
        def change(cur: Cursor, job: Job, now: float) -> None:
            if job.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
                raise JobStateError(f"job {job_id} is already {job.state.value}")
            run(cur, self._q["cancel_job"], {"scope": scope, "id": job_id})
        return self._operate(scope, job_id, now, change)

    def _operate(self, scope: str, job_id: int, now: float,
                 change: Callable[[Cursor, Job, float], None]) -> Job:
        """Lock the job's queue row, then the job; apply ``change``; repair the head."""
        now += self._offset()

        def body(cur: Cursor) -> Job:
            queue = self._require(cur, scope, job_id, now, "get_job").queue
            steps.lock_queues(cur, self._q, scope, [queue])
            change(cur, self._require(cur, scope, job_id, now, "lock_job"), now)
            steps.refresh_head(cur, self._q, scope, queue, now)
            self._notify(cur, scope)
            return self._require(cur, scope, job_id, now, "get_job")
        job: Job = self._db.write(body)
        return job

    def _require(self, cur: Cursor, scope: str, job_id: int, now: float, query: str) -> Job:
        rows = run(cur, self._q[query], {"scope": scope, "id": job_id})
        if not rows:
            raise JobNotFoundError(job_id)
        return job_from_row(rows[0], now)

    def prune(self, scope: str, done_before: float) -> int:
        """Delete this scope's done jobs finished before ``done_before``; return how many.

        In batches of PRUNE_BATCH rows, one short transaction each (as on SQLite):
        no long transaction holding row locks and old snapshots. Idle queues of the
        scope are forgotten the same way.
        """
        args = {"scope": scope, "before": done_before + self._offset(), "batch": PRUNE_BATCH}

        def batch(query: bytes) -> Callable[[Cursor], int]:
            def body(cur: Cursor) -> int:
                cur.execute(query, args)
                return int(cur.rowcount)
            return body

        deleted = 0
        for name in ("prune_jobs", "prune_queues"):
            while True:
                n: int = self._db.write(batch(self._q[name]))
                if name == "prune_jobs":
                    deleted += n
                if n < PRUNE_BATCH:
                    break
        return deleted

    # -- dashboard reads ------------------------------------------------------

    def queue_page(self, scope: str, now: float, *, search: str | None = None,
                   only: str | None = None, limit: int = 50, offset: int = 0) -> QueuePage:
        """A page of queues whose name contains ``search``, failing first."""
        now += self._offset()
        args = {"scope": scope, "search": search or None, "rank": queue_page_rank(only),
                "limit": limit, "offset": offset}

        def body(cur: Cursor) -> QueuePage:
            # Two reads in autocommit: the counts may be a moment apart from the page.
            total, failing, running = run(cur, self._q["queue_page_counts"], args)[0]
            rows = run(cur, self._q["queue_page"], args)
            return QueuePage(total=total, failing=failing, running=running,
                             queues=[queue_status_from_row(row, now) for row in rows])
        return self._db.read(body)

    def pending_jobs(self, scope: str, queue: str, now: float, *, limit: int = 100,
                     offset: int = 0) -> list[Job]:
        """A queue's pending jobs in the order they will run."""
        now += self._offset()
        args = {"scope": scope, "queue": queue, "limit": limit, "offset": offset}
        rows = self._db.read(lambda cur: run(cur, self._q["pending_jobs"], args))
        return [job_from_row(row, now) for row in rows]

    def job_activity(self, scope: str, now: float, *, since: float,
                     bucket: float) -> Activity:
        """Jobs done and failed per ``bucket`` seconds from ``since`` up to ``now``."""
        offset = self._offset()
        args = {"scope": scope, "since": since + offset, "bucket": bucket}

        def body(cur: Cursor) -> Activity:
            done = run(cur, self._q["done_per_bucket"], args)
            failed = run(cur, self._q["failed_per_bucket"], args)
            return activity(since, now, bucket, done, failed)
        return self._db.read(body)

    def close(self) -> None:
        """Stop the listener and close every connection of this process."""
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._db.close()
