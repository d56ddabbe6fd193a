"""Turning a queue's stored fields into a QueueStatus, the same for every backend."""

from __future__ import annotations

from typing import Any, Sequence

from .holders import holder_alive
from .job import Job, JobState, QueueState, QueueStatus, to_datetime
from .rows import job_from_row


def queue_status_from_row(row: Sequence[Any], now: float) -> QueueStatus:
    """A row of the backends' ``queues`` query (its eight queue fields, then the head's
    JOB_COLUMNS, all NULL without a head) as a QueueStatus seen at ``now``."""
    name, ready_at, blocked_since, hold_until, token, locked_by, locked_until, pending = row[:8]
    head = None if row[8] is None else job_from_row(row[8:], now)
    return queue_status(name, head, now, ready_at=ready_at, pending=pending,
                        blocked_since=blocked_since, hold_until=hold_until, token=token,
                        locked_by=locked_by, locked_until=locked_until)


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
        # A snoozed head waits for a time, not for an error: no blocked_since, so scheduled.
        retrying = ((head.state == JobState.RETRYING and blocked_since is not None)
                    or (hold_until or 0.0) > now)
        state = QueueState.BLOCKED if retrying else QueueState.SCHEDULED
    else:
        state = QueueState.AVAILABLE
    running = head is not None and head.state == JobState.RUNNING
    return QueueStatus(
        queue=name, state=state, pending=pending + (1 if running else 0), head=head,
        locked_by=locked_by if token else None, locked_until=to_datetime(locked_until),
        blocked_since=to_datetime(blocked_since) if state == QueueState.BLOCKED else None,
        next_run_at=to_datetime(ready_at),
        holder_alive=holder_alive(token) if token else None,
    )
