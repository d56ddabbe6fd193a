"""Turning a queue's stored fields into a QueueStatus, the same for every backend."""

from __future__ import annotations

from .job import Job, JobState, QueueState, QueueStatus, to_datetime


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
