"""queuetopia_lite: a persistent blocking job queue, SQLite-first.

Jobs run one at a time and in order per named queue; a failing job blocks its
queue until it succeeds or runs out of attempts; nothing is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backend import Backend
from .control import GiveUp, Snooze
from .errors import (
    DatabaseError,
    InvalidJobError,
    JobNotFoundError,
    JobStateError,
    QueuetopiaError,
    UnknownActionError,
)
from .events import Event
from .job import Job, JobState, QueueState, QueueStatus
from .performer import Performer
from .queuetopia import Queuetopia

if TYPE_CHECKING:
    from .aio import AsyncQueuetopia

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # AsyncQueuetopia on first use: importing asyncio costs tens of milliseconds that
    # the CLI and applications without asyncio need not pay.
    if name == "AsyncQueuetopia":
        from .aio import AsyncQueuetopia

        return AsyncQueuetopia
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AsyncQueuetopia",
    "Backend",
    "DatabaseError",
    "Event",
    "GiveUp",
    "InvalidJobError",
    "Job",
    "JobNotFoundError",
    "JobState",
    "JobStateError",
    "Performer",
    "QueueState",
    "QueueStatus",
    "Queuetopia",
    "QueuetopiaError",
    "Snooze",
    "UnknownActionError",
    "__version__",
]
