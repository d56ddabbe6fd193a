"""The parts of the SQLite backend's transactions; each runs inside an open write transaction.

They keep qt_queues in step with qt_jobs: every change to a queue's jobs updates its row
(head, when it becomes runnable, its lock) in the same transaction.
"""

from __future__ import annotations

import json
from typing import Any, Collection, NamedTuple, Sequence

from .. import sql
from ..backend import (
    Claim,
    Failure,
    HostInstant,
    NewJob,
    Outcome,
    Release,
    Snoozed,
    StepResult,
    Success,
    default_backoff,
)
from ..errors import JobNotFoundError
from ..holders import new_token
from ..job import Job, JobState, to_datetime
from ..rows import JOB_COLUMNS, job_from_row, job_state
from .drivers import Conn, changes, last_insert_rowid

Q = {
    name: text.format(job_columns=JOB_COLUMNS, head_job_columns=", ".join(
        f"h.{column.strip()}" for column in JOB_COLUMNS.split(",")))
    for name, text in sql.load(__package__, "queries.sql").items()
}


class QueueRow(NamedTuple):
    """The parts of a qt_queues row that a release needs."""

    lock_token: str | None
    head_id: int | None
    blocked_since: float | None
    hold_until: float | None



def insert_jobs(conn: Conn, scope: str, jobs: Sequence[NewJob],
                now: float) -> list[Job]:
    """Insert jobs, then offer each queue its first new pending job as head.

    A job whose unique key a waiting job holds is not inserted: that job is
    returned in its place (the unique index decides, never a read before the write).
    """
    rows = [(scope, new.queue, new.action, new.params,
             now if new.scheduled_at is None else new.scheduled_at, new.timeout,
             new.max_backoff, new.max_attempts,
             # max_attempts=0: never run, never block
             "pending" if new.max_attempts > 0 else "failed", now, new.unique_key)
            for new in jobs]
    if any(new.unique_key is not None for new in jobs):
        return _insert_unique(conn, scope, rows, now)
    conn.executemany(Q["insert_job_row"], rows)
    # One writer, one transaction: the ids are consecutive and end at the last one.
    first_id = last_insert_rowid(conn) - len(rows) + 1
    inserted = [(first_id + offset, row) for offset, row in enumerate(rows)]
    _offer_heads(conn, scope, inserted, now)
    return [new_job_value(job_id, row, now) for job_id, row in inserted]


def _insert_unique(conn: Conn, scope: str, rows: list[tuple[Any, ...]],
                   now: float) -> list[Job]:
    """insert_jobs one row at a time, each keyed one stored unless its key is held."""
    created: list[Job] = []
    inserted = []
    insert = Q["insert_unique_job_row"]
    for row in rows:
        conn.execute(insert, row)
        if changes(conn) == 0:  # a waiting job holds this key (maybe one of this batch)
            held = run(conn, "waiting_with_key", {"scope": scope, "key": row[10]}, one=True)
            created.append(job_from_row(held, now))
            continue
        job_id = last_insert_rowid(conn)
        inserted.append((job_id, row))
        created.append(new_job_value(job_id, row, now))
    _offer_heads(conn, scope, inserted, now)
    return created


def _offer_heads(conn: Conn, scope: str, inserted: list[tuple[int, tuple[Any, ...]]],
                 now: float) -> None:
    """Offer each queue the first of its newly inserted pending jobs as head."""
    firsts: dict[str, tuple[float, int]] = {}
    for job_id, row in inserted:
        if row[8] == "pending":
            key = (row[4], job_id)
            best = firsts.get(row[1])
            if best is None or key < best:
                firsts[row[1]] = key
    for queue, (scheduled_at, job_id) in firsts.items():
        run(conn, "offer_head", {"scope": scope, "queue": queue, "id": job_id,
                                 "scheduled_at": scheduled_at, "now": now})


def new_job_value(job_id: int, row: tuple[Any, ...], now: float) -> Job:
    """The Job just inserted from ``row`` (the insert_job_row values), seen at ``now``."""
    (scope, queue, action, params, scheduled_at, timeout, max_backoff, max_attempts, status, _,
     unique_key) = row
    return Job(id=job_id, scope=scope, queue=queue, action=action, params=json.loads(params),
               scheduled_at=to_datetime(scheduled_at),  # type: ignore[arg-type]
               timeout=timeout, max_backoff=max_backoff, max_attempts=max_attempts,
               attempts=0, attempted_at=None, attempted_by=None, next_attempt_at=None,
               done_at=None, error=None, state=job_state(status, scheduled_at, None, now),
               created_at=to_datetime(now), unique_key=unique_key)  # type: ignore[arg-type]


def save_outcome(conn: Conn, scope: str, outcome: Outcome, now: float,
                 result: StepResult) -> None:
    """Record one outcome, fenced by its claim's token, and release its queue."""
    claim = outcome.claim
    job_args: dict[str, Any] = {"id": claim.job.id, "token": claim.token, "now": now}
    failed = snoozed = False
    if isinstance(outcome, Success):
        run(conn, "job_succeeded", job_args)
        saved = changes(conn) == 1
    elif isinstance(outcome, Snoozed):
        run(conn, "job_snoozed", {**job_args, "until": outcome.until})
        saved = snoozed = changes(conn) == 1
    elif isinstance(outcome, Failure):
        job_args.update(error=outcome.error, next_attempt_at=outcome.next_attempt_at,
                        give_up=outcome.give_up)
        row = run(conn, "job_failed", job_args, one=True)
        saved = row is not None
        failed = saved and not outcome.give_up  # a job that gave up blocks nothing
        if row is not None:
            result.failed.append(job_from_row(row, now))
        if outcome.keep_lock:
            if saved:
                run(conn, "hold_locked_queue", {
                    "scope": scope, "queue": claim.job.queue, "token": claim.token, "now": now,
                    "hold_until": _hold(result.failed[-1])})
            else:
                result.rejected.append(outcome)
            return
    else:
        assert isinstance(outcome, Release)
        # Valid only once the timeout's failure is saved: a release while the job still
        # runs under this claim would let the next job overtake it.
        saved = run(conn, "job_running", job_args, one=True) is None
        if not saved:
            result.rejected.append(outcome)
            return
    queue = queue_row(conn, scope, claim.job.queue)
    if queue is not None and queue.lock_token == claim.token:
        hold = result.failed[-1] if failed else None
        set_head(conn, scope, claim.job.queue, now, queue, failed=failed,
                 hold_until=_hold(hold), snoozed=snoozed)
    elif isinstance(outcome, Release):
        saved = False
    if not saved:
        result.rejected.append(outcome)


def _hold(job: Job | None) -> float | None:
    """A job that has just exhausted its attempts holds its queue until its last backoff."""
    if job is None or job.state != JobState.FAILED or job.next_attempt_at is None:
        return None
    return job.next_attempt_at.timestamp()


def host_args(host: HostInstant | None, lease: float | None = None) -> dict[str, Any]:
    """The host clock's query arguments: its key and reading, or the end of a lease."""
    if host is None:
        return {"host_key": None, "host_at": None, "host_until": None}
    return {"host_key": host.key, "host_at": host.at,
            "host_until": None if lease is None else host.at + lease}


def expired_jobs(conn: Conn, scope: str, now: float,
                 host: HostInstant | None = None) -> list[tuple[str, Job]]:
    """The running jobs whose lease expired, with their tokens (a read)."""
    found = []
    args = {"scope": scope, "now": now, **host_args(host)}
    for _queue, token, head_id, _by in run(conn, "expired_leases", args):
        row = run(conn, "get_job", {"scope": scope, "id": head_id}, one=True)
        if row is not None and token is not None:
            found.append((token, job_from_row(row, now)))
    return found


def recover_expired(conn: Conn, scope: str, now: float, delays: dict[str, float],
                    result: StepResult, alive: Collection[str] = (),
                    host: HostInstant | None = None) -> None:
    """Count the attempt of every job whose lease expired as failed, and free its queue.

    ``delays``: the backoff of each expired claim's job by token, computed before the
    transaction (user code never runs inside it); the default formula otherwise.
    """
    expired = run(conn, "expired_leases", {"scope": scope, "now": now, **host_args(host)})
    for queue, token, head_id, locked_by in expired:
        if token in alive:
            continue
        failed_job = None
        row = run(conn, "get_job", {"scope": scope, "id": head_id}, one=True)
        if row is not None:
            job = job_from_row(row, now)
            if job.state == JobState.RUNNING:
                delay = delays.get(token)
                if delay is None:
                    delay = default_backoff(job)
                row = run(conn, "job_failed", {
                    "id": head_id, "token": token, "now": now, "next_attempt_at": now + delay,
                    "give_up": False,
                    "error": f"worker lost: the lease of {locked_by} expired before the job "
                             "ended (the process died or stalled)"}, one=True)
                if row is not None:
                    failed_job = job_from_row(row, now)
                    result.failed.append(failed_job)
        row = queue_row(conn, scope, queue)
        assert row is not None
        set_head(conn, scope, queue, now, row, failed=failed_job is not None,
                 hold_until=_hold(failed_job))


def claim_heads(conn: Conn, scope: str, now: float, limit: int, owner: str,
                lease: float, result: StepResult, host: HostInstant | None = None) -> None:
    """Lock up to ``limit`` runnable queues, oldest-waiting first, and claim their heads.

    Their leases end ``lease`` seconds from ``now``, and from ``host`` if given.
    """
    ready = run(conn, "ready_queues", {"scope": scope, "now": now, "limit": limit})
    lease_args = host_args(host, lease)
    for queue, head_id in ready:
        token = new_token()  # names this process: a dead holder is told at once
        args = {"scope": scope, "queue": queue, "id": head_id, "token": token,
                "owner": owner, "now": now, "until": now + lease, **lease_args}
        row = run(conn, "claim_job", args, one=True)
        if row is None:  # the recorded head is stale: repair it, claim nothing
            refresh_head(conn, scope, queue, now)
            continue
        run(conn, "lock_queue", args)
        result.claimed.append(Claim(job_from_row(row, now), token))


def refresh_head(conn: Conn, scope: str, queue: str, now: float) -> None:
    """Recompute an unlocked queue's head (a locked one is recomputed at release)."""
    # A queue whose only jobs never ran (max_attempts=0) may have no row yet.
    run(conn, "ensure_queue", {"scope": scope, "queue": queue})
    row = queue_row(conn, scope, queue)
    if row is not None and row.lock_token is None:
        set_head(conn, scope, queue, now, row, failed=False)


def set_head(conn: Conn, scope: str, queue: str, now: float, row: QueueRow, *,
             failed: bool, hold_until: float | None = None, snoozed: bool = False) -> None:
    """Unlock the queue and point it at its first pending job.

    A snoozed head waits for a time, not for an error to pass: it is not blocked.
    """
    head = run(conn, "next_head", {"scope": scope, "queue": queue}, one=True)
    holds = [t for t in (row.hold_until, hold_until) if t is not None]
    hold = max(holds) if holds else None
    args: dict[str, Any] = {"scope": scope, "queue": queue, "hold_until": hold,
                            "head_id": None, "head_scheduled_at": None, "head_due_at": None,
                            "ready_at": None, "blocked_since": None}
    if failed:
        args["blocked_since"] = row.blocked_since or now
    if head is not None:
        head_id, scheduled_at, next_attempt_at, attempted_at = head
        due = max(scheduled_at, next_attempt_at or 0.0)
        # A released queue goes to the back of the line (now): fairness between queues.
        args.update(head_id=head_id, head_scheduled_at=scheduled_at, head_due_at=due,
                    ready_at=max(due, hold or 0.0, now))
        if snoozed:
            pass
        elif not failed and head_id == row.head_id:
            args["blocked_since"] = row.blocked_since
        elif not failed and next_attempt_at is not None:  # a failed job is head again
            args["blocked_since"] = attempted_at
    run(conn, "set_head", args)


def run(conn: Conn, name: str, args: dict[str, Any], one: bool = False) -> Any:
    """Run the named query; all rows, or the first (None if none) with ``one``."""
    # Always step to the end: a half-read RETURNING statement would stay in progress.
    rows = conn.execute(Q[name], args).fetchall()
    if one:
        return rows[0] if rows else None
    return rows


def queue_row(conn: Conn, scope: str, queue: str) -> QueueRow | None:
    row = run(conn, "queue_row", {"scope": scope, "queue": queue}, one=True)
    return None if row is None else QueueRow(*row)


def require(conn: Conn, scope: str, job_id: int, now: float) -> Job:
    row = run(conn, "get_job", {"scope": scope, "id": job_id}, one=True)
    if row is None:
        raise JobNotFoundError(job_id)
    return job_from_row(row, now)
