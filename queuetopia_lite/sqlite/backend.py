"""SQLiteBackend: the Backend protocol on one SQLite file."""

from __future__ import annotations

import os
import secrets
from typing import Any, NamedTuple, Sequence

import apsw

from .. import sql
from ..backend import (
    BackoffFunction,
    Claim,
    Failure,
    NewJob,
    Outcome,
    Release,
    StepResult,
    Success,
    default_backoff,
)
from ..errors import DatabaseError, JobNotFoundError, JobStateError
from ..job import Job, JobState, QueueStatus
from ..rows import JOB_COLUMNS, job_from_row, queue_status, state_filter_sql
from .connection import APPLICATION_ID, Connections

SCHEMA_VERSION = 1
_MIGRATIONS = sql.load(__package__, "migrations.sql")
_Q = {
    name: text.format(job_columns=JOB_COLUMNS)
    for name, text in sql.load(__package__, "queries.sql").items()
}
_STATE_SQL = state_filter_sql(":now")
_FOREIGN = "a database of another application, not queuetopia_lite"


class _QueueRow(NamedTuple):
    lock_token: str | None
    head_id: int | None
    blocked_since: float | None
    hold_until: float | None


class SQLiteBackend:
    """Jobs in one SQLite file (WAL), one connection per thread.

    Args:
        path: the database file; created with its schema if missing.
        durability: "full" (a returned write survives power loss: synchronous=FULL)
            or "normal" (faster; the last commits may roll back on power loss,
            never on a process crash).
        migrate: create or upgrade the schema on open; if False, an outdated
            schema is an error.
    """

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "full",
                 migrate: bool = True) -> None:
        self.path = os.fspath(path)
        self._conns = Connections(self.path, durability)
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
        conn = self._conns.get()
        try:
            if conn.execute("PRAGMA journal_mode").fetchall()[0][0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
        except apsw.Error as exc:
            raise self._conns.error(exc) from exc

        def body(conn: apsw.Connection) -> int:
            version = self._version(conn)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                conn.execute(_MIGRATIONS[f"step_{step}"])
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
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                self.path, f"schema version {version} is newer than this queuetopia_lite "
                f"knows ({SCHEMA_VERSION}): upgrade queuetopia_lite")
        return version

    def _check_version(self) -> None:
        version = self._conns.read(self._version)
        if version != SCHEMA_VERSION:
            raise DatabaseError(self.path, f"schema version {version}, expected "
                                f"{SCHEMA_VERSION}: run `queuetopia-lite migrate`")

    # -- jobs -----------------------------------------------------------------

    def insert_jobs(self, scope: str, jobs: Sequence[NewJob], now: float) -> list[Job]:
        """Store all jobs in one transaction and return them in order."""
        return self._conns.write(lambda conn: insert_jobs(conn, scope, jobs, now))

    def get_job(self, scope: str, job_id: int, now: float) -> Job | None:
        """The job with this id in this scope, or None."""
        def body(conn: apsw.Connection) -> Job | None:
            row = _run(conn, "get_job", {"scope": scope, "id": job_id}, one=True)
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
             backoff: BackoffFunction | None = None) -> StepResult:
        """Save outcomes, recover expired leases and claim heads, in one transaction."""
        def body(conn: apsw.Connection) -> StepResult:
            result = StepResult()
            for outcome in outcomes:
                save_outcome(conn, scope, outcome, now, result)
            recover_expired(conn, scope, now, backoff or default_backoff, result)
            if claim > 0:
                claim_heads(conn, scope, now, claim, owner, now + lease, result)
            return result
        return self._conns.write(body)

    def renew(self, scope: str, claims: Sequence[Claim], until: float) -> list[Claim]:
        """Extend these claims' leases to ``until``; return the claims whose lock was lost."""
        def body(conn: apsw.Connection) -> list[Claim]:
            lost = []
            for c in claims:
                _run(conn, "renew_lease", {"scope": scope, "queue": c.job.queue,
                                                 "token": c.token, "until": until})
                if conn.changes() == 0:
                    lost.append(c)
            return lost
        return self._conns.write(body) if claims else []

    def next_due(self, scope: str) -> float | None:
        """The earliest instant a queue becomes runnable or a lease ends."""
        def body(conn: apsw.Connection) -> float | None:
            args = {"scope": scope}
            times = [_run(conn, "next_ready", args, one=True)[0],
                     _run(conn, "next_lease_end", args, one=True)[0]]
            present = [t for t in times if t is not None]
            return min(present) if present else None
        return self._conns.read(body)

    def has_runnable(self, scope: str, now: float) -> bool:
        """Whether a step now would claim or recover something."""
        args = {"scope": scope, "now": now}
        return bool(self._conns.read(lambda conn: _run(conn, "has_runnable", args, one=True)[0]))

    def change_counter(self) -> int:
        """PRAGMA data_version of this thread's connection: moves on others' commits."""
        return int(self._conns.read(lambda conn: conn.data_version()))

    # -- operating ------------------------------------------------------------

    def count_jobs(self, scope: str, now: float) -> dict[JobState, int]:
        """How many jobs of this scope are in each state."""
        counts = dict.fromkeys(JobState, 0)
        rows = self._conns.read(lambda conn: _run(conn, "count_jobs", {"scope": scope, "now": now}))
        for _status, state, n in rows:
            counts[JobState(state)] += n
        return counts

    def queue_statuses(self, scope: str, now: float, queue: str | None = None) -> list[QueueStatus]:
        """Every queue of this scope with its state, sorted by name."""
        def body(conn: apsw.Connection) -> list[QueueStatus]:
            rows = _run(conn, "queues", {"scope": scope, "queue": queue})
            out = []
            for (name, head_id, ready_at, blocked_since, hold_until, token, by, until,
                 pending) in rows:
                head = None
                if head_id is not None:
                    row = _run(conn, "get_job", {"scope": scope, "id": head_id}, one=True)
                    head = None if row is None else job_from_row(row, now)
                out.append(queue_status(name, head, now, ready_at=ready_at, pending=pending,
                                        blocked_since=blocked_since, hold_until=hold_until,
                                        token=token, locked_by=by, locked_until=until))
            return out
        return self._conns.read(body)

    def retry_job(self, scope: str, job_id: int, now: float) -> Job:
        """Make the job runnable now, attempts kept (one more if exhausted)."""
        def body(conn: apsw.Connection) -> Job:
            job = _require(conn, scope, job_id, now)
            if job.state in (JobState.RUNNING, JobState.DONE):
                raise JobStateError(f"job {job_id} is {job.state.value}: nothing to retry")
            args = {"scope": scope, "id": job_id, "queue": job.queue}
            _run(conn, "retry_job", args)
            _run(conn, "release_hold", args)
            refresh_head(conn, scope, job.queue, now)
            return _require(conn, scope, job_id, now)
        return self._conns.write(body)

    def cancel_job(self, scope: str, job_id: int, now: float) -> Job:
        """Mark an unfinished job cancelled; its queue moves on."""
        def body(conn: apsw.Connection) -> Job:
            job = _require(conn, scope, job_id, now)
            if job.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
                raise JobStateError(f"job {job_id} is already {job.state.value}")
            _run(conn, "cancel_job", {"scope": scope, "id": job_id})
            refresh_head(conn, scope, job.queue, now)
            return _require(conn, scope, job_id, now)
        return self._conns.write(body)

    def prune(self, scope: str, done_before: float) -> int:
        """Delete this scope's done jobs finished before ``done_before``."""
        def body(conn: apsw.Connection) -> int:
            _run(conn, "prune_jobs", {"scope": scope, "before": done_before})
            deleted = conn.changes()
            _run(conn, "prune_queues", {"scope": scope})
            return deleted
        return self._conns.write(body)

    def close(self) -> None:
        """Close every connection this backend opened in this process."""
        self._conns.close_all()


# -- the transactions' parts (each runs inside an open write transaction) -------


def insert_jobs(conn: apsw.Connection, scope: str, jobs: Sequence[NewJob], now: float) -> list[Job]:
    """Insert jobs and offer each to its queue as head."""
    out = []
    for new in jobs:
        scheduled_at = now if new.scheduled_at is None else new.scheduled_at
        args: dict[str, Any] = {
            "scope": scope, "queue": new.queue, "action": new.action, "params": new.params,
            "scheduled_at": scheduled_at, "timeout": new.timeout,
            "max_backoff": new.max_backoff, "max_attempts": new.max_attempts,
            # max_attempts=0: never run, never block
            "status": "pending" if new.max_attempts > 0 else "failed", "now": now,
        }
        row = _run(conn, "insert_job", args, one=True)
        if new.max_attempts > 0:
            args["id"] = row[0]
            _run(conn, "offer_head", args)
        out.append(job_from_row(row, now))
    return out


def save_outcome(conn: apsw.Connection, scope: str, outcome: Outcome, now: float,
                 result: StepResult) -> None:
    """Record one outcome, fenced by its claim's token, and release its queue."""
    claim = outcome.claim
    job_args = {"id": claim.job.id, "token": claim.token, "now": now}
    failed = False
    if isinstance(outcome, Success):
        _run(conn, "job_succeeded", job_args)
        saved = conn.changes() == 1
    elif isinstance(outcome, Failure):
        job_args.update(error=outcome.error, next_attempt_at=outcome.next_attempt_at)
        row = _run(conn, "job_failed", job_args, one=True)
        saved = failed = row is not None
        if row is not None:
            result.failed.append(job_from_row(row, now))
        if outcome.keep_lock:
            if not saved:
                result.rejected.append(outcome)
            return
    else:
        assert isinstance(outcome, Release)
        saved = True
    queue = _queue_row(conn, scope, claim.job.queue)
    if queue is not None and queue.lock_token == claim.token:
        hold = result.failed[-1] if failed else None
        set_head(conn, scope, claim.job.queue, now, queue, failed=failed,
                 hold_until=_hold(hold))
    elif isinstance(outcome, Release):
        saved = False
    if not saved:
        result.rejected.append(outcome)


def _hold(job: Job | None) -> float | None:
    """A job that has just exhausted its attempts holds its queue until its last backoff."""
    if job is None or job.state != JobState.FAILED or job.next_attempt_at is None:
        return None
    return job.next_attempt_at.timestamp()


def recover_expired(conn: apsw.Connection, scope: str, now: float, backoff: BackoffFunction,
                    result: StepResult) -> None:
    """Count the attempt of every job whose lease expired as failed, and free its queue."""
    expired = _run(conn, "expired_leases", {"scope": scope, "now": now})
    for queue, token, head_id, locked_by in expired:
        failed_job = None
        row = _run(conn, "get_job", {"scope": scope, "id": head_id}, one=True)
        if row is not None:
            job = job_from_row(row, now)
            if job.state == JobState.RUNNING:
                try:
                    delay = backoff(job)
                except Exception:  # a broken backoff must not stop recovery
                    delay = default_backoff(job)
                row = _run(conn, "job_failed", {
                    "id": head_id, "token": token, "now": now, "next_attempt_at": now + delay,
                    "error": f"worker lost: the lease of {locked_by} expired before the job "
                             "ended (the process died or stalled)"}, one=True)
                if row is not None:
                    failed_job = job_from_row(row, now)
                    result.failed.append(failed_job)
        queue_row = _queue_row(conn, scope, queue)
        assert queue_row is not None
        set_head(conn, scope, queue, now, queue_row, failed=failed_job is not None,
                 hold_until=_hold(failed_job))


def claim_heads(conn: apsw.Connection, scope: str, now: float, limit: int, owner: str,
                until: float, result: StepResult) -> None:
    """Lock up to ``limit`` runnable queues, oldest-waiting first, and claim their heads."""
    ready = _run(conn, "ready_queues", {"scope": scope, "now": now, "limit": limit})
    for queue, head_id in ready:
        token = secrets.token_hex(8)
        args = {"scope": scope, "queue": queue, "id": head_id, "token": token,
                "owner": owner, "now": now, "until": until}
        row = _run(conn, "claim_job", args, one=True)
        if row is None:  # the recorded head is stale: repair it, claim nothing
            refresh_head(conn, scope, queue, now)
            continue
        _run(conn, "lock_queue", args)
        result.claimed.append(Claim(job_from_row(row, now), token))


def refresh_head(conn: apsw.Connection, scope: str, queue: str, now: float) -> None:
    """Recompute an unlocked queue's head (a locked one is recomputed at release)."""
    row = _queue_row(conn, scope, queue)
    if row is not None and row.lock_token is None:
        set_head(conn, scope, queue, now, row, failed=False)


def set_head(conn: apsw.Connection, scope: str, queue: str, now: float, row: _QueueRow, *,
             failed: bool, hold_until: float | None = None) -> None:
    """Unlock the queue and point it at its first pending job."""
    head = _run(conn, "next_head", {"scope": scope, "queue": queue}, one=True)
    holds = [t for t in (row.hold_until, hold_until) if t is not None]
    hold = max(holds) if holds else None
    args: dict[str, Any] = {"scope": scope, "queue": queue, "hold_until": hold,
                            "head_id": None, "head_scheduled_at": None, "head_due_at": None,
                            "ready_at": None, "blocked_since": None}
    if failed:
        args["blocked_since"] = row.blocked_since or now
    if head is not None:
        head_id, scheduled_at, next_attempt_at = head
        due = max(scheduled_at, next_attempt_at or 0.0)
        # A released queue goes to the back of the line (now): fairness between queues.
        args.update(head_id=head_id, head_scheduled_at=scheduled_at, head_due_at=due,
                    ready_at=max(due, hold or 0.0, now))
        if not failed and head_id == row.head_id:
            args["blocked_since"] = row.blocked_since
    _run(conn, "set_head", args)


def _run(conn: apsw.Connection, name: str, args: dict[str, Any], one: bool = False) -> Any:
    """Run the named query; all rows, or the first (None if none) with ``one``."""
    # Always step to the end: a half-read RETURNING statement would stay in progress.
    rows = conn.execute(_Q[name], args).fetchall()
    if one:
        return rows[0] if rows else None
    return rows


def _queue_row(conn: apsw.Connection, scope: str, queue: str) -> _QueueRow | None:
    row = _run(conn, "queue_row", {"scope": scope, "queue": queue}, one=True)
    return None if row is None else _QueueRow(*row)


def _require(conn: apsw.Connection, scope: str, job_id: int, now: float) -> Job:
    row = _run(conn, "get_job", {"scope": scope, "id": job_id}, one=True)
    if row is None:
        raise JobNotFoundError(job_id)
    return job_from_row(row, now)
