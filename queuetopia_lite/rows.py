"""Turning stored rows into Job values, the same for every backend."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Sequence

from .job import Job, JobState, QueueState, QueueStatus, to_datetime

# The order in which every backend selects a job's columns.
JOB_COLUMNS = (
    "id, scope, queue, action, params, scheduled_at, timeout, max_backoff, max_attempts, "
    "attempts, attempted_at, attempted_by, next_attempt_at, done_at, error, status, created_at"
)

STORED_STATUSES = ("pending", "running", "done", "failed", "cancelled")


def _epoch(value: Any) -> float | None:
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def job_state(status: str, scheduled_at: float, next_attempt_at: float | None,
              now: float) -> JobState:
    """The state of a job with this stored status, as seen at ``now``."""
    if status != "pending":
        return JobState(status)
    if next_attempt_at is not None and next_attempt_at > now:
        return JobState.RETRYING
    if scheduled_at > now:
        return JobState.SCHEDULED
    return JobState.AVAILABLE


def job_from_row(row: Sequence[Any], now: float) -> Job:
    """A row selected as JOB_COLUMNS, as a Job seen at ``now``."""
    (job_id, scope, queue, action, params, scheduled_at, timeout, max_backoff, max_attempts,
     attempts, attempted_at, attempted_by, next_attempt_at, done_at, error, status,
     created_at) = row
    scheduled = _epoch(scheduled_at)
    next_attempt = _epoch(next_attempt_at)
    assert scheduled is not None
    return Job(
        id=int(job_id),
        scope=scope,
        queue=queue,
        action=action,
        params=json.loads(params) if isinstance(params, str) else params,
        scheduled_at=to_datetime(scheduled),  # type: ignore[arg-type]
        timeout=timeout,
        max_backoff=float(max_backoff),
        max_attempts=int(max_attempts),
        attempts=int(attempts),
        attempted_at=to_datetime(_epoch(attempted_at)),
        attempted_by=attempted_by,
        next_attempt_at=to_datetime(next_attempt),
        done_at=to_datetime(_epoch(done_at)),
        error=error,
        state=job_state(status, scheduled, next_attempt, now),
        created_at=to_datetime(_epoch(created_at)),  # type: ignore[arg-type]
    )


def state_filter_sql(now_param: str) -> dict[JobState, str]:
    """SQL conditions selecting each state, with ``now_param`` as the clock."""
    due = f"(next_attempt_at IS NULL OR next_attempt_at <= {now_param})"
    return {
        JobState.RUNNING: "status = 'running'",
        JobState.DONE: "status = 'done'",
        JobState.FAILED: "status = 'failed'",
        JobState.CANCELLED: "status = 'cancelled'",
        JobState.RETRYING: f"status = 'pending' AND next_attempt_at > {now_param}",
        JobState.SCHEDULED: f"status = 'pending' AND {due} AND scheduled_at > {now_param}",
        JobState.AVAILABLE: f"status = 'pending' AND {due} AND scheduled_at <= {now_param}",
    }


def queue_status(name: str, head: Job | None, now: float, *, ready_at: float | None,
                 pending: int, blocked_since: float | None, hold_until: float | None,
                 token: str | None, locked_by: str | None,
                 locked_until: float | None) -> QueueStatus:
    """A queue's row as a QueueStatus seen at ``now``."""
    if token is not None:
        state = QueueState.RUNNING
    elif head is None:
        state = QueueState.IDLE
    elif ready_at is not None and ready_at > now:
        retrying = head.state == JobState.RETRYING or (hold_until or 0.0) > now
        state = QueueState.BLOCKED if retrying else QueueState.SCHEDULED
    else:
        state = QueueState.AVAILABLE
    running = head is not None and head.state == JobState.RUNNING
    return QueueStatus(
        queue=name, state=state, pending=pending + (1 if running else 0), head=head,
        locked_by=locked_by if token else None, locked_until=to_datetime(locked_until),
        blocked_since=to_datetime(blocked_since) if state == QueueState.BLOCKED else None,
        next_run_at=to_datetime(ready_at),
    )
