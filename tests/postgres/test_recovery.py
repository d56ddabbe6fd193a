"""Postgres recovery of expired leases: the application's backoff runs outside the
step's transactions, and a lease renewed meanwhile is not recovered (fencing)."""

from __future__ import annotations

import time
from typing import Any, Callable

import psycopg
import psycopg.errors

from queuetopia_lite.backend import Success
from queuetopia_lite.job import Job, JobState

from ..conformance.helpers import OWNER, SCOPE, claim, new


def _row_is_free(raw: Any, schema: str, queue: str) -> bool:
    """Whether another connection can lock the queue's row at once."""
    try:
        with raw.transaction():
            raw.execute(f'SELECT 1 FROM "{schema}".qt_queues WHERE queue = %s '
                        "FOR UPDATE NOWAIT", (queue,))
        return True
    except psycopg.errors.LockNotAvailable:
        return False


def test_the_backoff_of_a_recovered_job_runs_while_no_row_is_locked(
        backends: Callable[..., Any], raw: Any, schema: str) -> None:
    backend = backends()
    now = time.time()
    (job,) = backend.insert_jobs(SCOPE, [new("a")], now)
    claim(backend, now, lease=1.0)
    seen: list[bool] = []

    def backoff(running: Job) -> float:
        seen.append(_row_is_free(raw, schema, "a"))
        return 60.0

    result = backend.step(SCOPE, now + 5, claim=1, owner=OWNER, backoff=backoff)
    assert seen == [True]
    assert [j.id for j in result.failed] == [job.id] and result.claimed == []
    stored = backend.get_job(SCOPE, job.id, now + 5)
    assert stored is not None and stored.state == JobState.RETRYING
    assert stored.next_attempt_at is not None
    assert abs(stored.next_attempt_at.timestamp() - (now + 65)) < 1.0


def test_a_lease_renewed_while_the_backoff_runs_is_not_recovered(
        backends: Callable[..., Any], raw: Any, schema: str) -> None:
    backend = backends()
    now = time.time()
    (job,) = backend.insert_jobs(SCOPE, [new("a")], now)
    (held,) = claim(backend, now, lease=1.0)
    renewed: list[bool] = []

    def backoff(running: Job) -> float:
        # The owner was only slow: its lease keeper renews before the recovery lands.
        # (Only if the row is free: a renew waiting for this step's lock would hang.)
        if _row_is_free(raw, schema, "a"):
            renewed.append(backend.renew(SCOPE, [held], now + 100) == [])
        return 60.0

    result = backend.step(SCOPE, now + 5, claim=1, owner="other:2", backoff=backoff)
    assert renewed == [True]
    assert result.failed == [] and result.claimed == []
    stored = backend.get_job(SCOPE, job.id, now + 5)
    assert stored is not None and stored.state == JobState.RUNNING and stored.attempts == 1
    # The owner's claim still holds: its outcome is saved.
    assert backend.step(SCOPE, now + 6, outcomes=[Success(held)]).rejected == []
    done = backend.get_job(SCOPE, job.id, now + 6)
    assert done is not None and done.state == JobState.DONE
