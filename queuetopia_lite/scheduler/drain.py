"""drain(): run due jobs in the caller's thread, one at a time, until none is due.

No timeout is enforced here (the caller's thread is the worker); leases are
renewed by a keeper thread while a job runs. Async actions are awaited to
completion on a private event loop in the caller's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Awaitable, Callable

from ..backend import Backend, Outcome, StepResult
from ..errors import DatabaseError
from ..events import Events
from ..hostclock import HostClock
from ..performer import BoundPerformer
from ..running import owner_name, perform, with_plain_error
from .board import Board, Task, TaskState
from .emit import claim_events, step_events
from .helpers import LeaseKeeper, call_failed_hook, recover_dead_holders

log = logging.getLogger("queuetopia_lite")

SAVE_TRIES = 5  # drain() tries to save a job's result this often before raising


class LazyLoop:
    """A PrivateLoop made at the first awaitable (asyncio is imported only then)."""

    def __init__(self) -> None:
        self._loop: Any = None

    def run(self, awaitable: Awaitable[object]) -> object:
        """Await ``awaitable`` to completion in this thread."""
        if self._loop is None:
            from .aioloop import PrivateLoop

            self._loop = PrivateLoop()
        return self._loop.run(awaitable)

    def close(self) -> None:
        """Close the loop, if one was made."""
        if self._loop is not None:
            self._loop.close()


class Drainer:
    """One drain() call.

    Args:
        unsaved: results an earlier drain could not save; taken first, and what
            this one cannot save is left there.
    """

    def __init__(self, backend: Backend, performer: BoundPerformer, unsaved: list[Outcome],
                 events: Events, *, scope: str, lease: float,
                 clock: Callable[[], float], host_clock: HostClock) -> None:
        self._backend = backend
        self._host_clock = host_clock
        self._events = events  # delivered in the caller's thread, after each save
        self._durations: dict[str, float] = {}  # seconds each unsaved attempt ran, by token
        self._now = 0.0  # the clock reading of the last step
        self._performer = performer
        self._unsaved = unsaved
        self._scope = scope
        self._lease = lease
        self._clock = clock
        self._board = Board()

    def drain(self) -> int:
        """Run due jobs until none is due; return how many ran."""
        ran = 0
        outcomes: list[Outcome] = []
        halt = threading.Event()
        loop = LazyLoop()  # async actions run to completion here, one at a time
        keeper = LeaseKeeper(self._backend, self._board, self._scope, self._lease, self._clock,
                             self._host_clock)
        threading.Thread(target=keeper.run, args=(halt,), daemon=True,
                         name="queuetopia-drain-keeper").start()
        try:
            while True:
                result = self._save(outcomes, 1)
                outcomes = []
                if not result.claimed:
                    # A gone process of this host may hold a queue: recover it now (its
                    # lost attempt is recorded by the next step), then look again.
                    if recover_dead_holders(self._backend, self._scope, self._clock):
                        continue
                    return ran
                (claim,) = result.claimed
                task = Task(claim)
                task.state = TaskState.RUNNING
                with self._board.lock:
                    self._board.tasks[claim.token] = task
                interrupts: list[BaseException] = []
                began = time.monotonic()
                outcomes = [perform(self._performer, claim, self._clock, interrupts, loop.run)]
                self._durations[claim.token] = time.monotonic() - began
                ran += 1
                if interrupts:
                    self._save(outcomes, 0)
                    raise interrupts[0]
        finally:
            halt.set()
            loop.close()

    def _save(self, outcomes: list[Outcome], claim: int) -> StepResult:
        """Save outcomes (and claim); a database error gets a few more tries before raising."""
        outcomes = self._unsaved + outcomes
        self._unsaved.clear()
        pause = 0.1
        for attempt in range(SAVE_TRIES):
            try:
                result = self._step(outcomes, claim)
                break
            except DatabaseError as exc:
                if not outcomes or not exc.retryable or attempt == SAVE_TRIES - 1:
                    self._unsaved[:0] = outcomes  # kept for the next drain, never dropped
                    raise
                log.error("queuetopia_lite: %s (saving the result again in %.1f s)", exc, pause)
                time.sleep(pause)
                pause *= 2
        with self._board.lock:
            for outcome in outcomes:
                self._board.tasks.pop(outcome.claim.token, None)
        if self._events.active:
            for event in (step_events(outcomes, result, self._now, self._durations)
                          + claim_events(result.claimed, self._now)):
                self._events.deliver(event)
        for outcome in outcomes:
            self._durations.pop(outcome.claim.token, None)
        for job in result.failed:
            call_failed_hook(self._performer, job)
        return result

    def _step(self, outcomes: list[Outcome], claim: int) -> StepResult:
        backoff = self._performer.safe_backoff if self._performer.has_backoff else None
        self._now = now = self._clock()
        host = self._host_clock()
        try:
            return self._backend.step(self._scope, now, outcomes=outcomes,
                                      claim=claim, owner=owner_name(), lease=self._lease,
                                      backoff=backoff, alive=self._board.alive(), host=host)
        except DatabaseError:
            raise
        except Exception as exc:  # an error text the database refuses: store a plain one
            plain = [with_plain_error(outcome, exc) for outcome in outcomes]
            return self._backend.step(self._scope, now, outcomes=plain,
                                      claim=claim, owner=owner_name(), lease=self._lease,
                                      backoff=backoff, alive=self._board.alive(), host=host)
