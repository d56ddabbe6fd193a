"""The parts of the Postgres backend's transactions, each run inside an open one.

A scheduling step is the server-side function ``qt_step`` (migrations.sql,
step_5): one round trip with BEGIN, one for COMMIT, whatever its size; a second
transaction only when expired leases need the application's backoff (computed
between the two, never while row locks are held). The functions
here build its arguments and read its rows; the others serve the operator's
writes (retry, cancel), set-based where SQLite loops. Row locks are taken
queue rows first (in name order when several), job rows second: two
transactions never wait for each other in a cycle.
"""

from __future__ import annotations

from typing import Any, Collection, Generator, NamedTuple, Sequence

from ..backend import (
    BackoffFunction,
    Claim,
    Failure,
    NewJob,
    Outcome,
    Release,
    Snoozed,
    StepResult,
    Success,
    default_backoff,
)
from ..errors import DatabaseError
from ..holders import new_token
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


def insert_args(q: Queries, scope: str, channel: str, jobs: Sequence[NewJob], now: float,
                offset: float) -> tuple[bytes, dict[str, Any]]:
    """The statement (and its arguments) that inserts jobs, offers heads and notifies."""
    return q["insert_and_offer"], {
        "scope": scope, "now": now, "channel": channel,
        "queues": [j.queue for j in jobs], "actions": [j.action for j in jobs],
        "params": [j.params for j in jobs],
        "scheduled": [now if j.scheduled_at is None else j.scheduled_at + offset for j in jobs],
        "timeouts": [j.timeout for j in jobs], "backoffs": [j.max_backoff for j in jobs],
        "attempts": [j.max_attempts for j in jobs], "keys": [j.unique_key for j in jobs]}


def created_jobs(rows: Sequence[Any], now: float) -> list[Job]:
    """The inserted rows as jobs, in id order."""
    return sorted((job_from_row(row, now) for row in rows), key=lambda job: job.id)


UNIQUE_TRIES = 10  # inserts of a keyed batch whose holders keep starting meanwhile


def insert_unique(cur: Cursor, q: Queries, scope: str, channel: str, jobs: Sequence[NewJob],
                  now: float, offset: float, first_rows: Sequence[Any] | None = None) -> list[Job]:
    """insert_jobs for a batch with unique keys (unique_inserts), on a cursor."""
    plan = unique_inserts(q, scope, channel, jobs, now, offset, first_rows)
    try:
        statement = next(plan)
        while True:
            statement = plan.send(run(cur, *statement))
    except StopIteration as done:
        result: list[Job] = done.value
        return result


Statement = tuple[bytes, dict[str, Any]]


def unique_inserts(q: Queries, scope: str, channel: str, jobs: Sequence[NewJob], now: float,
                   offset: float, first_rows: Sequence[Any] | None = None,
                   ) -> Generator[Statement, list[Any], list[Job]]:
    """insert_jobs for a batch with unique keys: a job whose key a waiting job holds
    is not stored, and that job is returned in its place (the first of the batch wins).

    Yields each statement to run and is sent its rows (so that a sync cursor and
    an async one drive the same steps). The unique index decides (ON CONFLICT DO
    NOTHING waits for a concurrent creator); the holder is read after it, and a
    holder that has started meanwhile lets the job be inserted on the next try.
    ``first_rows``: the rows of the first insert of every job, already run (sent
    with BEGIN).
    """
    found: list[Job | None] = [None] * len(jobs)
    todo = list(range(len(jobs)))
    for _ in range(UNIQUE_TRIES):
        if first_rows is None:
            first_rows = yield insert_args(q, scope, channel, [jobs[i] for i in todo], now,
                                           offset)
        inserted, first_rows = created_jobs(first_rows, now), None
        by_key = {job.unique_key: job for job in inserted if job.unique_key is not None}
        plain = iter(job for job in inserted if job.unique_key is None)
        missing = []
        for i in todo:
            key = jobs[i].unique_key
            found[i] = next(plain) if key is None else by_key.get(key)
            if found[i] is None:
                missing.append(i)
        if missing:
            rows = yield (q["waiting_with_keys"], {
                "scope": scope, "keys": sorted({jobs[i].unique_key for i in missing})})
            held = {job.unique_key: job for job in (job_from_row(row, now) for row in rows)}
            for i in missing:
                found[i] = held.get(jobs[i].unique_key)
        todo = [i for i in missing if found[i] is None]
        if not todo:
            return [job for job in found if job is not None]
    raise DatabaseError("postgres", f"unique keys: their waiting jobs started {UNIQUE_TRIES} "
                        "times while this insert ran; try again")


def lock_queues(cur: Cursor, q: Queries, scope: str, queues: Sequence[str]) -> dict[str, QueueRow]:
    """Lock these queues' rows (in name order) and return them by name."""
    if not queues:
        return {}
    rows = run(cur, q["lock_queue_rows"], {"scope": scope, "queues": sorted(set(queues))})
    return {name: QueueRow(*rest) for name, *rest in rows}


_KINDS = {Success: "s", Failure: "f", Release: "r", Snoozed: "z"}


def _kind(outcome: Outcome) -> str:
    """qt_step's letter for an outcome: 'g' is a Failure that gave up."""
    if isinstance(outcome, Failure) and outcome.give_up:
        return "g"
    return _KINDS[type(outcome)]


def _when(outcome: Outcome, offset: float) -> float | None:
    """A failure's retry time or a snooze's end, on the database's clock."""
    if isinstance(outcome, Failure):
        return outcome.next_attempt_at + offset
    if isinstance(outcome, Snoozed):
        return outcome.until + offset
    return None


def step_args(scope: str, now: float, offset: float, channel: str, outcomes: Sequence[Outcome],
              claim: int, owner: str, until: float, alive: Collection[str]) -> dict[str, Any]:
    """The arguments of ``qt_step`` (queries.sql ``step``) for a step's first call."""
    return {
        "scope": scope, "now": now, "channel": channel,
        "o_kind": [_kind(o) for o in outcomes],
        "o_queue": [o.claim.job.queue for o in outcomes],
        "o_id": [o.claim.job.id for o in outcomes],
        "o_token": [o.claim.token for o in outcomes],
        "o_error": [o.error if isinstance(o, Failure) else None for o in outcomes],
        "o_next": [_when(o, offset) for o in outcomes],
        "o_keep": [isinstance(o, Failure) and o.keep_lock for o in outcomes],
        "v_queue": None, "v_token": None, "v_id": None, "v_next": None, "v_error": None,
        "released": 0, "alive": list(alive), "claim": claim, "owner": owner, "until": until,
        "tokens": [new_token() for _ in range(claim)]}  # naming their holder


class Expired(NamedTuple):
    """A queue whose lease expired (an ``expired`` row of ``qt_step``)."""

    queue: str
    token: str | None
    head_id: int | None
    locked_by: str | None
    job: Job | None  # its head, as stored


def read_step(rows: Sequence[Any], outcomes: Sequence[Outcome], now: float,
              result: StepResult) -> tuple[list[Expired], int]:
    """Add a ``qt_step`` call's rows to ``result``; return expired leases and released count."""
    expired: list[Expired] = []
    released = 0
    for kind, n, queue, token, locked_by, *job in rows:
        if kind == "claimed":
            result.claimed.append(Claim(job_from_row(job, now), token))
        elif kind == "failed":
            result.failed.append(job_from_row(job, now))
        elif kind == "rejected":
            result.rejected.append(outcomes[n - 1])
        elif kind == "expired":
            expired.append(Expired(queue, token, n, locked_by,
                                   None if job[0] is None else job_from_row(job, now)))
        else:
            assert kind == "released", kind
            released = n
    return expired, released


def recovery_args(args: dict[str, Any], expired: Sequence[Expired], released: int, now: float,
                  backoff: BackoffFunction) -> dict[str, Any]:
    """The arguments of a step's second ``qt_step`` call: record expired leases, then claim.

    Called between the step's two transactions: the application's backoff is user
    code. A running head's attempt is counted as failed with it; other heads are
    only released. ``qt_step`` recovers a lease only if it is still expired under
    the same token.
    """
    nexts: list[float | None] = []
    for lease in expired:
        job = lease.job
        if job is None or job.state != JobState.RUNNING:
            nexts.append(None)
            continue
        try:
            delay = backoff(job)
        except Exception:  # a broken backoff must not stop recovery
            delay = default_backoff(job)
        nexts.append(now + delay)
    return {
        **args, "o_kind": [], "o_queue": [], "o_id": [], "o_token": [], "o_error": [],
        "o_next": [], "o_keep": [],
        "v_queue": [e.queue for e in expired], "v_token": [e.token for e in expired],
        "v_id": [e.head_id for e in expired], "v_next": nexts,
        "v_error": [f"worker lost: the lease of {e.locked_by} expired before the job ended "
                    "(the process died or stalled)" for e in expired],
        "released": released}


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
