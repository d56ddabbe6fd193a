"""Combining: concurrent callers' requests written together, one batch at a time.

A caller queues its request; if nobody is writing, it writes every waiting request
as one batch; otherwise it sleeps until its request is done, or until the writer
of the batch before hands it the turn (then it writes every request waiting by
then). Each caller sleeps on a lock of its own and is woken once: a finished batch
wakes its own callers and the next writer, not every waiting thread.

A signal's exception (Ctrl-C) in a waiting caller takes its request back and is
raised at once, unless a writer has already taken the request into a batch: then
it is raised once that batch is written (the request may be stored). A turn the
caller held passes on, so later callers never wait for a caller that left.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Generic, Sequence, TypeVar

from .errors import DatabaseError


class Request:
    """One caller's part of a batch: ``done`` once the batch settled it, with
    ``error`` if it failed."""

    __slots__ = ("_wake", "done", "error", "taken", "thread", "turn")

    def __init__(self) -> None:
        self.thread = threading.get_ident()  # the caller's
        self.turn = False  # it leads the next batch (guarded by the combiner's lock)
        self.taken = False  # a writer took it into a batch (guarded by the combiner's lock)
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
        try:
            with self._lock:
                self._waiting.append(request)
                request.turn = not self._busy  # nobody writing: the turn is ours
                self._busy = True
                if (request.turn and self._last > 1
                        and time.monotonic() - self._ended < self._gather):
                    self._want = self._last
                    self._arrived.wait_for(lambda: len(self._waiting) >= self._want,
                                           self._gather)
                    self._want = 0
                elif self._want and len(self._waiting) >= self._want:
                    self._arrived.notify()
            if not request.turn:
                request._wake.acquire()  # done, or our turn: handed over by the writer
        except BaseException:  # a signal (Ctrl-C) while waiting
            if request.done or self._leave(request):
                raise  # settled already, or never taken into a batch (nothing written)
            # Taken into a batch under way: only its writer can settle it, soon.
            _quietly(request._wake.acquire)  # later signals were already raised once
            raise
        if request.done:
            return
        batch: list[R] = []
        try:
            with self._lock:
                batch, self._waiting = self._waiting, []
                self._last = len(batch)
                for taken in batch:
                    taken.taken = True
            write(batch)
        except BaseException as exc:
            for unsettled in batch:  # the leader's own gets a Ctrl-C, the others an error
                if not unsettled.done:
                    unsettled.error = (exc if isinstance(exc, Exception)
                                       or unsettled is request else _orphaned())
                    unsettled.done = True
            if not isinstance(exc, Exception):  # Ctrl-C, SystemExit: the leader's own
                raise
        finally:  # whatever happened, even a Ctrl-C in here: the turn passes on
            _quietly(lambda: self._end_turn(batch, request))

    def _leave(self, request: R) -> bool:
        """Take a waiting request back (its caller was interrupted); False if a writer
        has already taken it into a batch. A turn it held passes on."""
        with self._lock:
            if request not in self._waiting:
                return not request.taken  # else never queued (interrupted before)
            self._waiting.remove(request)
            following = self._pass_turn() if request.turn else None
        if following is not None:
            _wake(following)
        return True

    def _end_turn(self, batch: list[R], request: R) -> None:
        """Pass the turn on and wake the batch's callers (safe to call again)."""
        with self._lock:
            if request in self._waiting:  # interrupted before it took its batch
                self._waiting.remove(request)
            if request.turn:  # cleared last: a repeat after an interrupt passes it again
                self._ended = time.monotonic()
                following = self._pass_turn()
                request.turn = False
            else:
                following = None
        if following is not None:
            _wake(following)  # the next writer first: it starts at once
        for other in batch:
            if other is not request:
                if not other.done:  # its writer was interrupted while settling the batch
                    other.error, other.done = _orphaned(), True
                _wake(other)  # never woken undone: it would take itself for the next writer

    def _pass_turn(self) -> R | None:
        """The request that writes next, marked so (lock held); None: nobody waits."""
        following = self._waiting[0] if self._waiting else None
        self._busy = following is not None
        if following is not None:
            following.turn = True
        return following

    def take_waiting(self) -> list[R]:
        """The requests waiting now, for the writer to add to its batch (``write``
        appends them to the list it was given, and settles them)."""
        with self._lock:
            late, self._waiting = self._waiting, []
            for taken in late:
                taken.taken = True
        return late


def _wake(request: Request) -> None:
    """Release a request's caller (once: a second release is ignored)."""
    try:
        request._wake.release()
    except RuntimeError:  # already released: an end of turn done twice
        pass


def settle_done(batch: Sequence[Request]) -> None:
    """Mark every request of a written batch done, even if a signal lands meanwhile
    (then raised once all are marked): none may be left for an error that is not its."""
    def mark() -> None:
        for request in batch:
            request.done = True
    _quietly(mark)


def _quietly(action: Callable[[], object]) -> None:
    """Run ``action`` to its end: an exception a signal raises meanwhile runs it again
    (``action`` must be safe to repeat), then is raised."""
    interrupted: BaseException | None = None
    while True:
        try:
            action()
            break
        except BaseException as exc:  # KeyboardInterrupt from a signal handler
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def _orphaned() -> Exception:
    """The error of a request whose writer was interrupted before settling it: whether
    it was stored is unknown (as after any interrupted write)."""
    return DatabaseError("(this process)", "the thread writing this batch was interrupted "
                         "before it could tell how the write ended", retryable=True)


def _interrupted_elsewhere(location: str, exc: BaseException) -> Exception:
    """The error of a request whose batch another caller's Ctrl-C (or SystemExit) rolled
    back: not its own failure, and worth trying again."""
    return DatabaseError(location, "the write was rolled back: the thread that ran it was "
                         f"interrupted ({type(exc).__name__})", retryable=True)


def settle_interrupted(batch: Sequence[Request], exc: BaseException,
                       location: Callable[[], str]) -> None:
    """Fail every request of a rolled-back batch: with ``exc`` if it is an ordinary error;
    a Ctrl-C or SystemExit only for the caller that ran the batch (the others get a
    retryable DatabaseError), and then it is raised again here, in that caller."""
    here = threading.get_ident()
    for request in batch:
        own = isinstance(exc, Exception) or request.thread == here
        request.error = exc if own else _interrupted_elsewhere(location(), exc)
        request.done = True
    if not isinstance(exc, Exception):
        raise exc
