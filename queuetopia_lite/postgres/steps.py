"""The parts of the Postgres backend's transactions, each run inside an open one.

They mirror the SQLite backend's parts, set-based where SQLite loops, so a
step costs a fixed number of round trips whatever its size. Row locks are taken
queue rows first (in name order when several), job rows second: two
transactions never wait for each other in a cycle.
"""

from __future__ import annotations

import secrets
from typing import Any, Collection, NamedTuple, Sequence

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
from ..job import Job, JobState
from ..rows import job_from_row
from .connection import Cursor

Queries = dict[str, bytes]


class QueueRow(NamedTuple):
    """The parts of a locked queue row that a release needs."""

    lock_token: str | None
    head_id: int | None
    blocked_since: float | None
    hold_until: float | None


class Releasing(NamedTuple):
    """A queue to unlock and point at its next head."""

    queue: str
    row: QueueRow
    failed: bool
    hold_until: float | None = None


def run(cur: Cursor, query: bytes, args: dict[str, Any]) -> list[Any]:
    """Run one statement; its rows (none for a statement that returns none)."""
    cur.execute(query, args)
    return cur.fetchall() if cur.description is not None else []


def insert_jobs(cur: Cursor, q: Queries, scope: str, jobs: Sequence[NewJob], now: float,
                offset: float) -> list[Job]:
    """Insert jobs and offer each pending one to its queue as head."""
    rows = run(cur, q["insert_jobs"], {
        "scope": scope, "now": now,
        "queues": [j.queue for j in jobs], "actions": [j.action for j in jobs],
        "params": [j.params for j in jobs],
        "scheduled": [now if j.scheduled_at is None else j.scheduled_at + offset for j in jobs],
        "timeouts": [j.timeout for j in jobs], "backoffs": [j.max_backoff for j in jobs],
        "attempts": [j.max_attempts for j in jobs]})
    created = sorted((job_from_row(row, now) for row in rows), key=lambda job: job.id)
    pending = [row for row in rows if row[15] == "pending"]
    if pending:
        run(cur, q["offer_heads"], {"scope": scope, "now": now,
                                    "queues": [r[2] for r in pending],
                                    "ids": [r[0] for r in pending],
                                    "scheduled": [r[5] for r in pending]})
    return created


def lock_queues(cur: Cursor, q: Queries, scope: str, queues: Sequence[str]) -> dict[str, QueueRow]:
    """Lock these queues' rows (in name order) and return them by name."""
    if not queues:
        return {}
    rows = run(cur, q["lock_queue_rows"], {"scope": scope, "queues": sorted(set(queues))})
    return {name: QueueRow(*rest) for name, *rest in rows}


def save_outcomes(cur: Cursor, q: Queries, scope: str, outcomes: Sequence[Outcome], now: float,
                  offset: float, result: StepResult) -> list[Releasing]:
    """Record outcomes, each fenced by its claim's token; return the queues to release."""
    releasing_queues = [o.claim.job.queue for o in outcomes
                        if not (isinstance(o, Failure) and o.keep_lock)]
    rows = lock_queues(cur, q, scope, releasing_queues)
    successes = [o.claim for o in outcomes if isinstance(o, Success)]
    done: set[int] = set()
    if successes:
        done = {r[0] for r in run(cur, q["jobs_succeeded"], {
            "now": now, "ids": [c.job.id for c in successes],
            "tokens": [c.token for c in successes]})}
    releases: list[Releasing] = []
    for outcome in outcomes:
        claim = outcome.claim
        failed_job = None
        if isinstance(outcome, Success):
            saved = claim.job.id in done
        elif isinstance(outcome, Failure):
            found = run(cur, q["job_failed"], {
                "id": claim.job.id, "token": claim.token, "error": outcome.error,
                "next_attempt_at": outcome.next_attempt_at + offset})
            saved = bool(found)
            if found:
                failed_job = job_from_row(found[0], now)
                result.failed.append(failed_job)
            if outcome.keep_lock:
                if saved:
                    run(cur, q["hold_locked_queue"], {
                        "scope": scope, "queue": claim.job.queue, "token": claim.token,
                        "now": now, "hold_until": hold_until(failed_job)})
                else:
                    result.rejected.append(outcome)
                continue
        else:
            assert isinstance(outcome, Release)
            saved = True
        row = rows.get(claim.job.queue)
        if row is not None and row.lock_token == claim.token:
            releases.append(Releasing(claim.job.queue, row, failed_job is not None,
                                      hold_until(failed_job)))
            rows[claim.job.queue] = row._replace(lock_token=None)  # released once only
        elif isinstance(outcome, Release):
            saved = False
        if not saved:
            result.rejected.append(outcome)
    return releases


def hold_until(job: Job | None) -> float | None:
    """A job that has just exhausted its attempts holds its queue until its last backoff."""
    if job is None or job.state != JobState.FAILED or job.next_attempt_at is None:
        return None
    return job.next_attempt_at.timestamp()


def recover_expired(cur: Cursor, q: Queries, scope: str, now: float, backoff: BackoffFunction,
                    result: StepResult, alive: Collection[str] = ()) -> list[Releasing]:
    """Count the attempt of every job whose lease expired as failed; return its queue.

    Claims in ``alive`` are the caller's own running jobs: never recovered.
    """
    releases = []
    for queue, token, head_id, blocked_since, hold, locked_by in run(
            cur, q["expired_leases"], {"scope": scope, "now": now}):
        if token in alive:
            continue
        failed_job = None
        found = run(cur, q["get_job"], {"scope": scope, "id": head_id})
        if found and (job := job_from_row(found[0], now)).state == JobState.RUNNING:
            try:
                delay = backoff(job)
            except Exception:  # a broken backoff must not stop recovery
                delay = default_backoff(job)
            failed = run(cur, q["job_failed"], {
                "id": head_id, "token": token, "next_attempt_at": now + delay,
                "error": f"worker lost: the lease of {locked_by} expired before the job "
                         "ended (the process died or stalled)"})
            if failed:
                failed_job = job_from_row(failed[0], now)
                result.failed.append(failed_job)
        row = QueueRow(token, head_id, blocked_since, hold)
        releases.append(Releasing(queue, row, failed_job is not None, hold_until(failed_job)))
    return releases


def claim_heads(cur: Cursor, q: Queries, scope: str, now: float, limit: int, owner: str,
                until: float, result: StepResult) -> list[Releasing]:
    """Lock up to ``limit`` runnable queues, oldest-waiting first, and claim their heads.

    Returns the queues whose recorded head was stale, to be repaired.
    """
    ready = run(cur, q["ready_queues"], {"scope": scope, "now": now, "limit": limit})
    if not ready:
        return []
    tokens = [secrets.token_hex(8) for _ in ready]
    claimed = {row[0]: row for row in run(cur, q["claim_jobs"], {
        "now": now, "owner": owner, "ids": [r[2] for r in ready], "tokens": tokens})}
    locked_queues, locked_tokens, stale = [], [], []
    for (queue, *rest), token in zip(ready, tokens, strict=True):
        row = QueueRow(*rest)
        job_row = claimed.get(row.head_id)
        if job_row is None:  # the recorded head is stale: repair it, claim nothing
            stale.append(Releasing(queue, row, failed=False))
            continue
        locked_queues.append(queue)
        locked_tokens.append(token)
        result.claimed.append(Claim(job_from_row(job_row, now), token))
    if locked_queues:
        run(cur, q["lock_queues"], {"scope": scope, "owner": owner, "now": now, "until": until,
                                    "queues": locked_queues, "tokens": locked_tokens})
    return stale


def release(cur: Cursor, q: Queries, scope: str, now: float,
            releases: Sequence[Releasing]) -> int:
    """Unlock these (locked) queue rows and point each at its first pending job.

    Returns how many now have a head (some other worker may want them).
    """
    if not releases:
        return 0
    names = [r.queue for r in releases]
    heads = {name: rest for name, *rest in run(cur, q["next_heads"],
                                               {"scope": scope, "queues": names})}
    cols: dict[str, list[Any]] = {k: [] for k in
                                  ("heads", "scheduled", "due", "ready", "blocked", "hold")}
    with_head = 0
    for r in releases:
        head_id, scheduled_at, next_attempt_at, attempted_at = heads[r.queue]
        holds = [t for t in (r.row.hold_until, r.hold_until) if t is not None]
        hold = max(holds) if holds else None
        blocked = (r.row.blocked_since or now) if r.failed else None
        due = ready = None
        if head_id is not None:
            with_head += 1
            due = max(scheduled_at, next_attempt_at or 0.0)
            # A released queue goes to the back of the line (now): fairness between queues.
            ready = max(due, hold or 0.0, now)
            if not r.failed and head_id == r.row.head_id:
                blocked = r.row.blocked_since
            elif not r.failed and next_attempt_at is not None:  # a failed job is head again
                blocked = attempted_at
        values = (head_id, scheduled_at, due, ready, blocked, hold)
        for key, value in zip(cols, values, strict=True):
            cols[key].append(value)
    run(cur, q["set_heads"], {"scope": scope, "queues": names, **cols})
    return with_head


def refresh_head(cur: Cursor, q: Queries, scope: str, queue: str, now: float) -> None:
    """Recompute an unlocked queue's head (a locked one is recomputed at release)."""
    # A queue whose only jobs never ran (max_attempts=0) may have no row yet.
    run(cur, q["ensure_queue"], {"scope": scope, "queue": queue})
    row = lock_queues(cur, q, scope, [queue]).get(queue)
    if row is not None and row.lock_token is None:
        release(cur, q, scope, now, [Releasing(queue, row, failed=False)])
