"""Combining: concurrent callers' requests written together, one batch at a time.

A caller queues its request; if nobody is writing, it writes every waiting request
as one batch; otherwise it sleeps until its request is done, or until the writer
of the batch before hands it the turn (then it writes every request waiting by
then). Each caller sleeps on a lock of its own and is woken once: a finished batch
wakes its own callers and the next writer, not every waiting thread.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Generic, TypeVar


class Request:
    """One caller's part of a batch: ``done`` once the batch settled it, with
    ``error`` if it failed."""

    __slots__ = ("_wake", "done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None
        self._wake = threading.Lock()
        self._wake.acquire()  # released once: the request is done, or it has the turn


R = TypeVar("R", bound=Request)


class Combiner(Generic[R]):
    """Takes turns writing batches of requests (make a new one after fork())."""

    def __init__(self, gather: float = 0.0) -> None:
        self._lock = threading.Lock()  # guards _waiting, _busy, _last and _want
        self._waiting: list[R] = []
        self._busy = False  # a caller is writing a batch (or has been handed the turn)
        # A caller that finds nobody writing within ``gather`` seconds of the end of a
        # batch of several waits up to ``gather`` seconds for as many requests: that
        # batch's callers are coming back (otherwise the first back writes alone while
        # the others line up behind it, and batches alternate 1 and n-1).
        self._gather = gather
        self._last = 1  # requests in the last batch
        self._ended = -math.inf  # time.monotonic() at which the last batch was written
        self._want = 0  # requests the gathering caller waits for (0: nobody gathers)
        self._arrived = threading.Condition(self._lock)

    def submit(self, request: R, write: Callable[[list[R]], None]) -> None:
        """Queue ``request``; return once a batch holding it has been written.

        ``write(batch)`` settles every request of the batch (sets ``done``, and
        ``error`` for a failed one); should it raise, the requests it left
        unsettled fail with that exception.
        """
        with self._lock:
            self._waiting.append(request)
            lead = not self._busy
            self._busy = True
            if (lead and self._last > 1
                    and time.monotonic() - self._ended < self._gather):
                self._want = self._last
                self._arrived.wait_for(lambda: len(self._waiting) >= self._want,
                                       self._gather)
                self._want = 0
            elif self._want and len(self._waiting) >= self._want:
                self._arrived.notify()
        if not lead:
            request._wake.acquire()  # done, or our turn: the writer before handed it over
            if request.done:
                return
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._last = len(batch)
        try:
            write(batch)
        except BaseException as exc:
            for unsettled in batch:
                if not unsettled.done:
                    unsettled.error, unsettled.done = exc, True
        with self._lock:
            self._ended = time.monotonic()
            following = self._waiting[0] if self._waiting else None
            self._busy = following is not None
        if following is not None:
            following._wake.release()  # the next writer first: it starts at once
        for other in batch:
            if other is not request:
                other._wake.release()

    def take_waiting(self) -> list[R]:
        """The requests waiting now, for the writer to add to its batch (``write``
        appends them to the list it was given, and settles them)."""
        with self._lock:
            late, self._waiting = self._waiting, []
        return late
