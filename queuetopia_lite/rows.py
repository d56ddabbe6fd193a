"""Turning stored rows into Job values, the same for every backend."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Sequence

from .job import Job, JobState, to_datetime

# The order in which every backend selects a job's columns.
JOB_COLUMNS = (
    "id, scope, queue, action, params, scheduled_at, timeout, max_backoff, max_attempts, "
    "attempts, attempted_at, attempted_by, next_attempt_at, done_at, error, status, created_at, "
    "errors, unique_key"
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
     created_at, errors, unique_key) = row
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
        errors=attempt_errors(errors),
        unique_key=unique_key,
    )


def attempt_errors(stored: Any) -> list[dict[str, Any]]:
    """The stored errors column (JSON text, an already parsed list, or NULL) as entries."""
    if stored is None:
        return []
    entries = json.loads(stored) if isinstance(stored, str) else stored
    return [{"attempt": int(e["attempt"]), "at": to_datetime(float(e["at"])),
             "error": e["error"], "by": e["by"]} for e in entries]


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
