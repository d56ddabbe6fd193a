"""The committer: the one thread of a scheduler that writes to the database.

It collects the workers' outcomes, enforces timeouts, and in one transaction
saves every outcome that arrived and claims heads for the free workers (none
ahead of them: see PREFETCH in __init__.py). What arrives during a commit forms
the next batch, so a busy process commits as often as the database allows and an
idle one at once.

The timeout protocol lives here: a job past its timeout is recorded by one
backend operation (a ``Failure`` that keeps the lock), and the release of its
queue is sent only after that operation is settled and the runaway's thread (or
coroutine, which the runner cancels) has ended. Both orders of "timed out" and
"thread ended" reach the database in that order, whatever the timing.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

from ..backend import Backend, BackoffFunction, Failure, Outcome, Release, StepResult
from ..errors import DatabaseError
from ..events import Events
from ..hostclock import HostClock
from ..performer import BoundPerformer
from ..running import owner_name, with_plain_error
from .board import Board, Event, Task, TaskState
from .emit import claim_events, step_events
from .helpers import Dispatcher
from .runner import Runner

log = logging.getLogger("queuetopia_lite")

ERROR_PAUSE_MAX = 30.0  # seconds: the longest pause after a database error
ISOLATE_AFTER = 3  # failed steps in a row before outcomes are saved one by one
IDLE_PAUSE = 0.05  # seconds: the least sleep after a step that claimed nothing (no spinning)


class Committer:
    """Saves outcomes and claims heads for one scope; the loop of the scheduler thread."""

    def __init__(self, backend: Backend, board: Board, runner: Runner,
                 performer: BoundPerformer, dispatcher: Dispatcher, events: Events, *,
                 scope: str, capacity: int,
                 lease: float, poll_interval: float, clock: Callable[[], float],
                 host_clock: HostClock) -> None:
        self._backend = backend
        self._board = board
        self._runner = runner
        self._performer = performer
        self._dispatcher = dispatcher  # hooks and event callbacks, on their own thread
        self._events = events
        self._step_now = 0.0  # the clock reading the last step saved with
        self._scope = scope
        self._capacity = capacity  # jobs running or waiting for a worker, at most
        self._lease = lease
        self._poll_interval = poll_interval
        self._clock = clock
        self._host_clock = host_clock  # leases of this host judged on a clock that never jumps
        self._recovery_backoff: BackoffFunction | None = (
            performer.safe_backoff if performer.has_backoff else None)
        self.pending: list[Outcome] = []  # outcomes to save, oldest first
        self._strikes = 0  # steps failed in a row
        self.failure: DatabaseError | None = None  # why it stopped on its own
        self.iterations = 0  # loop turns, for tests that check it does not spin

    # -- the loop -----------------------------------------------------------------

    def run(self) -> None:
        """Commit until stopped and settled, or until an error that needs a person."""
        error_pause = 0.0
        sleep = 0.0
        fruitless = False  # the last step found work to claim, yet claimed nothing
        while True:
            # After an error, only stop() cuts the pause short; after a fruitless step,
            # pokes do not either (on Postgres our own commit pokes us: a loop).
            events, stopping = self._wait(sleep, pokes=not (error_pause or fruitless),
                                          events=not error_pause)
            fruitless = False
            try:
                fruitless = self.turn(events, stopping)
                error_pause = 0.0
                sleep = self._sleep_time(0 if stopping else self._free())
                if fruitless:  # e.g. our own claim whose lease looks expired (a clock jump)
                    sleep = max(sleep, IDLE_PAUSE)
            except Exception as exc:  # the committer must never die silently
                if isinstance(exc, DatabaseError) and not exc.retryable:
                    log.critical("queuetopia_lite: %s: the scheduler stops", exc)
                    self.failure = exc
                    return
                error_pause = min(max(error_pause * 2, 0.1), ERROR_PAUSE_MAX)
                if isinstance(exc, DatabaseError):
                    log.error("queuetopia_lite: %s (retrying in %.1f s)", exc, error_pause)
                else:
                    log.exception("queuetopia_lite: scheduler error (retrying in %.1f s)",
                                  error_pause)
                sleep = error_pause
            if self._settled_to_stop():
                return

    def turn(self, events: list[Event], stopping: bool) -> bool:
        """One pass of the loop, without waiting (tests drive it step by step).

        Takes the workers' ``events``, records the jobs past their deadline as timed
        out, then saves what is pending and claims heads for the free workers in one
        step, if there is anything to do (``stopping``: claim nothing). Returns
        whether a step found work to claim yet claimed nothing (run() then pauses).
        Raises what the step raised (run() pauses, then tries again).
        """
        self.iterations += 1
        self._absorb(events)
        self._expire_timeouts()
        free = 0 if stopping else self._free()
        if self.pending or (free > 0 and self._backend.has_runnable(
                self._scope, self._clock(), self._host_clock())):
            saving = bool(self.pending)
            return self._step(free) == 0 and not saving
        return False

    def _wait(self, timeout: float, *, pokes: bool = True,
              events: bool = True) -> tuple[list[Event], bool]:
        """Sleep until an event, a poke, a timeout deadline, stop() or ``timeout`` seconds.

        Without ``events`` (an error pause) only stop() and the time cut the sleep
        short: a retry at every event would be a hot loop on a full disk.
        """
        board = self._board
        with board.lock:
            end = time.monotonic() + timeout
            was_stopping = board.stopping
            while board.stopping == was_stopping:
                if (events and board.inbox) or (pokes and board.poked):
                    break
                wake = min(end, self._earliest_deadline()) if events else end
                left = wake - time.monotonic()
                if left <= 0:
                    break
                board.wake_at = wake
                board.changed.wait(left)
            board.wake_at = math.inf
            arrived, board.inbox = board.inbox, []
            board.poked = False  # every turn asks the database whether work waits
            return arrived, board.stopping

    def _earliest_deadline(self) -> float:
        """The first timeout of a running job (lock held)."""
        deadlines = [task.deadline for task in self._board.tasks.values()
                     if task.state is TaskState.RUNNING and task.deadline is not None]
        return min(deadlines, default=math.inf)

    def _settled_to_stop(self) -> bool:
        """Stopping, and nothing runs (runaways aside) or waits to be saved."""
        board = self._board
        with board.lock:
            if not board.stopping or self.pending or board.inbox:
                return False
            board.exiting = all(task.state is TaskState.TIMED_OUT and task.timeout_settled
                                for task in board.tasks.values())
            return board.exiting

    def _free(self) -> int:
        """How many more heads to claim: capacity less jobs running or waiting for a worker."""
        with self._board.lock:
            busy = sum(1 for task in self._board.tasks.values()
                       if task.state in (TaskState.QUEUED, TaskState.RUNNING))
        return max(self._capacity - busy, 0)

    def _sleep_time(self, free: int) -> float:
        """Seconds until something may be due: a head, a lease end, the poll."""
        wait = self._poll_interval
        if free > 0:  # with every slot busy (or stopping) a due head must wait anyway
            now = self._clock()
            due = self._backend.next_due(self._scope, now, self._host_clock())
            if due is not None:
                wait = min(wait, due - now)
        return max(wait, 0.0)

    # -- events and timeouts ------------------------------------------------------

    def _absorb(self, events: list[Event]) -> None:
        """Outcomes become pending; an ended runaway's queue is released once settled."""
        for task, outcome in events:
            if outcome is not None:
                self.pending.append(outcome)
            elif task.timeout_settled:  # else: released when its timeout failure settles
                self.pending.append(Release(task.claim))

    def _expire_timeouts(self) -> None:
        """Record running jobs past their timeout as failed; their queues stay locked."""
        mono = time.monotonic()
        with self._board.lock:
            expired = [task for task in self._board.tasks.values()
                       if task.state is TaskState.RUNNING and task.deadline is not None
                       and task.deadline <= mono]
            for task in expired:
                task.state = TaskState.TIMED_OUT
                task.finished = mono  # the attempt's duration ends at its timeout
        for task in expired:
            job = task.claim.job
            log.warning("queuetopia_lite: job %s in queue %r passed its %s s timeout",
                        job.id, job.queue, job.timeout)
            self.pending.append(Failure(
                task.claim, f"timeout: the job ran longer than {job.timeout} s",
                self._clock() + self._performer.safe_backoff(job), keep_lock=True))
        # Only once every failure is pending: abandoning may raise, and a timed-out
        # task without its failure would keep its queue locked for good.
        for task in expired:
            self._runner.abandon(task)  # the runaway must not take a slot from other queues

    # -- steps --------------------------------------------------------------------

    def _step(self, free: int) -> int:
        """Save every pending outcome and claim up to ``free`` heads, in one transaction.

        Returns how many heads were claimed.
        """
        outcomes, self.pending = self.pending, []
        if self._strikes >= ISOLATE_AFTER and len(outcomes) > 1:
            return self._isolate(outcomes, free)
        try:
            result = self._call(outcomes, free)
        except DatabaseError as exc:
            self.pending[:0] = outcomes  # the transaction rolled back: nothing was saved
            if exc.retryable:
                self._strikes += 1
            raise
        except Exception:
            if not outcomes:
                raise
            log.exception("queuetopia_lite: a step failed; saving its outcomes one by one")
            return self._isolate(outcomes, free)
        self._strikes = 0
        self._apply(outcomes, result)
        return len(result.claimed)

    def _call(self, outcomes: list[Outcome], claim: int) -> StepResult:
        self._step_now = now = self._clock()
        return self._backend.step(self._scope, now, outcomes=outcomes, claim=claim,
                                  owner=owner_name(), lease=self._lease,
                                  backoff=self._recovery_backoff, alive=self._board.alive(),
                                  host=self._host_clock())

    def _isolate(self, outcomes: list[Outcome], free: int) -> int:
        """Save outcomes one by one, so that one that cannot be saved holds back no other.

        An outcome whose own step raises something other than a database error is
        saved once more with a plain error text, then dropped: its task leaves the
        board, its lease lapses, and the job runs again (at least once). One that
        meets a retryable database error stays pending for a later step; if none
        could be saved, that error is raised (the same trouble for all, a full disk:
        the pause before the next try keeps growing).
        """
        refused: DatabaseError | None = None
        settled = 0
        for index, outcome in enumerate(outcomes):
            try:
                part = self._call([outcome], 0)
            except DatabaseError as exc:
                if not exc.retryable:
                    self.pending[:0] = outcomes[index:]
                    raise
                self.pending.append(outcome)
                refused = exc
                continue
            except Exception as exc:
                part = self._salvage(outcome, exc)
            self._apply([outcome], part)
            settled += 1
        if refused is not None and settled == 0:
            raise refused
        self._strikes = 0
        if free <= 0:
            return 0
        result = self._call([], free)
        self._apply([], result)
        return len(result.claimed)

    def _salvage(self, outcome: Outcome, exc: Exception) -> StepResult:
        """The last try for an outcome that cannot be saved as it is."""
        job = outcome.claim.job
        if isinstance(outcome, Failure):
            try:
                return self._call([with_plain_error(outcome, exc)], 0)
            except Exception as again:
                exc = again
        log.error("queuetopia_lite: the outcome of job %s cannot be saved (%s: %s); it is "
                  "dropped and the job runs again after its lease", job.id,
                  type(exc).__name__, exc)
        return StepResult()

    def _apply(self, outcomes: list[Outcome], result: StepResult) -> None:
        """Take settled outcomes off the board and hand the new claims to workers."""
        board = self._board
        emit = self._events.active  # no callback: no event is built
        durations: dict[str, float] = {}
        with board.lock:
            for outcome in outcomes:
                token = outcome.claim.token
                task = board.tasks.get(token)
                if emit and task is not None and task.finished is not None:
                    durations[token] = task.finished - task.started
                if isinstance(outcome, Failure) and outcome.keep_lock:
                    if task is not None:  # the runaway's release may go once it has ended
                        task.timeout_settled = True
                        if task.ended:
                            self.pending.append(Release(task.claim))
                else:
                    board.tasks.pop(token, None)
            tasks = [Task(claim) for claim in result.claimed]
            for task in tasks:
                board.tasks[task.claim.token] = task
        self._runner.hand(tasks)  # at once: a batch of async jobs wakes the loop once
        for rejected in result.rejected:
            log.warning("queuetopia_lite: the result of job %s was discarded: its claim was "
                        "lost (lease expired, job cancelled or taken over)",
                        rejected.claim.job.id)
        if emit:
            self._dispatcher.emit(step_events(outcomes, result, self._step_now, durations)
                                  + claim_events(result.claimed, self._step_now))
        for job in result.failed:
            self._dispatcher.put(job)
