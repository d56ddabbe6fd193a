"""Events (SPEC 13.1): callbacks told what the scheduler of this process saved.

``q.on(kind, callback)`` registers ``callback(event)``. Events are delivered after
the outcome they tell of is saved, in the process that saved it, on one dispatcher
thread (in the caller's thread for ``drain()`` and ``cancel_job``), never on the
committer's path; a callback that raises is logged and changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import datetime
from typing import Callable

from .errors import InvalidJobError
from .job import Job

log = logging.getLogger("queuetopia_lite")

KINDS = {
    "job_started": "claimed by this process and handed to a worker (its attempt is counted)",
    "job_succeeded": "its action returned; saved as done",
    "job_failed": "a failed attempt was saved (an exception, a timeout); retried or failed",
    "job_gave_up": "the action raised GiveUp: saved as failed, no retry",
    "job_snoozed": "the action raised Snooze: waiting again, its attempt uncounted",
    "job_lost": "an attempt whose worker was lost (lease ran out, or a gone process of this "
                "host) was saved as failed",
    "queue_blocked": "a head's first failed attempt in a row: its queue waits for the retry",
    "queue_unblocked": "the job that blocked its queue succeeded, gave up, failed for good "
                       "(the queue moves on after its last backoff) or was cancelled",
}


@dataclasses.dataclass(frozen=True)
class Event:
    """What happened, to which job, when.

    Attributes:
        kind: one of KINDS.
        job: the job as saved by this event (for a queue event: the job that blocks
            or blocked the queue).
        at: when it was saved (UTC).
        duration: seconds the attempt ran, for job_succeeded, job_failed,
            job_gave_up and job_snoozed from a worker of this process; else None.
    """

    kind: str
    job: Job
    at: datetime
    duration: float | None = None

    @property
    def queue(self) -> str:
        """The job's queue."""
        return self.job.queue


Callback = Callable[[Event], object]


class Events:
    """The callbacks of one Queuetopia, by kind. Cheap to ask when none is registered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[str, tuple[Callback, ...]] = {}  # replaced, never changed
        self.active = False  # some callback is registered: the scheduler builds events

    def on(self, kind: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` for each event of ``kind``; returns its unsubscriber."""
        if kind not in KINDS:
            raise InvalidJobError("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        if not callable(callback):
            raise InvalidJobError("callback", f"expected a callable, got {callback!r}")
        with self._lock:
            self._callbacks = {**self._callbacks,
                               kind: (*self._callbacks.get(kind, ()), callback)}
            self.active = True
        return lambda: self.off(kind, callback)

    def off(self, kind: str, callback: Callback) -> None:
        """Stop calling ``callback`` for ``kind`` (nothing if it was not registered)."""
        with self._lock:
            left = list(self._callbacks.get(kind, ()))
            if callback in left:
                left.remove(callback)
            callbacks = {**self._callbacks, kind: tuple(left)}
            self._callbacks = {k: v for k, v in callbacks.items() if v}
            self.active = bool(self._callbacks)

    def wants(self, kind: str) -> bool:
        """Whether a callback waits for ``kind``."""
        return kind in self._callbacks

    def deliver(self, event: Event) -> None:
        """Call the callbacks of the event's kind; their errors are logged, never raised."""
        for callback in self._callbacks.get(event.kind, ()):
            try:
                callback(event)
            except KeyboardInterrupt:
                raise  # Ctrl-C during drain() stops it, as during a job
            except BaseException:  # SystemExit too: one callback must not end the others
                log.exception("queuetopia_lite: a callback for %s raised (job %s)",
                              event.kind, event.job.id)
