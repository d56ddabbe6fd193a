"""The job record, the queue status record and their states."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Mapping


class JobState(str, Enum):
    """Where a job stands, as seen at the moment it was read."""

    SCHEDULED = "scheduled"  # waiting for its scheduled_at
    AVAILABLE = "available"  # due; runs when it is its queue's head
    RUNNING = "running"  # claimed by a worker
    RETRYING = "retrying"  # failed; waiting for next_attempt_at
    DONE = "done"
    FAILED = "failed"  # attempts exhausted (or max_attempts=0)
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class QueueState(str, Enum):
    """Where a queue stands, as seen at the moment it was read."""

    AVAILABLE = "available"  # its head is due and nobody runs it
    RUNNING = "running"  # locked by a worker
    BLOCKED = "blocked"  # its head failed and waits for its retry
    SCHEDULED = "scheduled"  # its head is scheduled in the future
    IDLE = "idle"  # no unfinished job

    def __str__(self) -> str:
        return self.value


FINISHED_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


def to_datetime(epoch: float | None) -> datetime | None:
    """Seconds since the epoch to an aware UTC datetime (None stays None)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def to_epoch(instant: datetime) -> float:
    """An aware datetime to seconds since the epoch."""
    return instant.timestamp()


@dataclasses.dataclass(frozen=True)
class Job:
    """One job, immutable: a snapshot of its row when it was read.

    Instants are timezone-aware UTC datetimes; durations are seconds.
    """

    id: int
    scope: str
    queue: str
    action: str
    params: Mapping[str, Any]
    scheduled_at: datetime
    timeout: float | None
    max_backoff: float
    max_attempts: int
    attempts: int
    attempted_at: datetime | None
    attempted_by: str | None
    next_attempt_at: datetime | None
    done_at: datetime | None
    error: str | None
    state: JobState
    created_at: datetime
    # Each failed attempt, oldest first (the last 20): {"attempt": int, "at": datetime,
    # "error": str (bounded), "by": "host:pid"}. A lost worker's attempt is one too.
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    unique_key: str | None = None  # while it waits, creating another with it returns this job

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: instants as ISO 8601 strings, state as its name."""
        return _json_ready(self)


@dataclasses.dataclass(frozen=True)
class QueueStatus:
    """One queue of a scope, as seen at the moment it was read."""

    queue: str
    state: QueueState
    pending: int  # unfinished jobs (running included)
    head: Job | None  # the job that runs next, or runs now
    locked_by: str | None  # host:pid of the worker holding the queue
    locked_until: datetime | None  # when that worker's lease ends unless renewed
    blocked_since: datetime | None  # first failure of the head that blocks it
    next_run_at: datetime | None  # when the head may start (None while locked or idle)
    # Whether the lock's holder process still exists, as far as the reader can tell:
    # False for a process of the reader's host that is gone (its lease is recovered at
    # once by any scheduler of that host); None when unlocked or not for this host to say.
    holder_alive: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, the head as a nested job object."""
        return _json_ready(self)


def _json_ready(record: Job | QueueStatus) -> dict[str, Any]:
    """A record's fields for JSON: instants in ISO 8601, enums by value, records nested."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, Job):
            value = value.to_dict()
        elif field.name == "params":
            value = dict(value)
        elif field.name == "errors":
            value = [{**entry, "at": entry["at"].isoformat()} for entry in value]
        out[field.name] = value
    return out
