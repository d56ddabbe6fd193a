"""Runs the jobs the committer hands over, and posts their outcomes on the board.

Sync actions run on worker threads, started as needed up to ``workers``. Async
actions (an ``async def``, or an action that returns an awaitable) are awaited
on one event loop thread (aioloop.py): a job that awaits holds no worker
thread. Workers never touch the database.

A job past its timeout is given up by the committer (abandon): a worker thread
running it stops counting toward ``workers`` at once, so a runaway keeps its
thread but not a slot other queues need; a coroutine is cancelled. Either way
the task posts ``(task, None)`` once its thread or coroutine has really ended.
"""

from __future__ import annotations

import functools
import inspect
import queue as queues
import threading
import time
from typing import TYPE_CHECKING, Awaitable, Callable

from ..backend import Outcome, Success
from ..performer import BoundPerformer
from ..running import failed
from .board import Board, Task, TaskState

if TYPE_CHECKING:  # aioloop (and asyncio) are imported with the first async job
    from .aioloop import LoopThread


class Runner:
    """Worker threads and an event loop, fed by the committer."""

    def __init__(self, board: Board, performer: BoundPerformer, clock: Callable[[], float],
                 workers: int) -> None:
        self._board = board
        self._performer = performer
        self._clock = clock
        self._workers = workers
        self._work: queues.SimpleQueue[Task | None] = queues.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one release per worker waiting for work
        self._lock = threading.Lock()
        self._threads = 0  # worker threads that count toward ``workers`` (runaways do not)
        self._loop: LoopThread | None = None

    def start(self) -> None:
        """Nothing to do: threads and the loop start with the first job that needs them."""

    def hand(self, tasks: list[Task]) -> None:
        """Run claimed jobs: on the event loop if their action is async, else on workers."""
        awaited = [task for task in tasks if self._performer.is_async(task.claim.job)]
        if awaited:
            with self._board.lock:
                for task in awaited:
                    task.aio = True
            self._event_loop().spawn(*[functools.partial(self._await, task, None)
                                       for task in awaited])
        for task in tasks:
            if task.aio is None:
                self._to_thread(task)

    def _to_thread(self, task: Task) -> None:
        self._work.put(task)
        if self._idle.acquire(blocking=False):
            return
        with self._lock:
            if self._threads < self._workers:
                self._threads += 1
                threading.Thread(target=self._work_loop, name="queuetopia-worker",
                                 daemon=True).start()

    def abandon(self, task: Task) -> None:
        """Give up a job the committer marked TIMED_OUT: cancel its coroutine, or stop
        counting its thread (the slot goes to the next job)."""
        with self._board.lock:
            aio = task.aio
        if aio is None:
            with self._lock:
                self._threads -= 1
        elif aio is not True and self._loop is not None:  # its asyncio task
            job = task.claim.job
            self._loop.cancel(aio, f"queuetopia_lite: job {job.id} passed its {job.timeout} s "
                                   "timeout")
        # else: not started on the loop yet; it will see TIMED_OUT and not run

    def stop(self) -> None:
        """Tell every worker to end once the jobs handed to it are done; the loop ends
        once its coroutines have."""
        with self._lock:
            threads, self._threads = self._threads, 0
            loop = self._loop
        for _ in range(threads):
            self._work.put(None)
        if loop is not None:
            loop.close_when_idle()

    def _event_loop(self) -> LoopThread:
        with self._lock:
            if self._loop is None:
                from .aioloop import LoopThread

                self._loop = LoopThread()
            return self._loop

    def _running(self, task: Task) -> None:
        """Mark a task running and start its timeout (board lock held)."""
        task.state = TaskState.RUNNING
        task.started = time.monotonic()
        timeout = task.claim.job.timeout
        if timeout is not None:
            task.deadline = time.monotonic() + timeout
            if task.deadline < self._board.wake_at:  # the committer would sleep past it
                self._board.changed.notify()

    def _finish(self, task: Task, outcome: Outcome) -> bool:
        """Post a performed job's outcome; False if it had timed out (result discarded)."""
        with self._board.lock:
            if task.state is TaskState.TIMED_OUT:
                task.ended = True
                self._board.post(task, None)
                return False
            task.state = TaskState.FINISHED
            task.finished = time.monotonic()
            self._board.post(task, outcome)
            return True

    def _work_loop(self) -> None:
        while (task := self._work.get()) is not None:
            with self._board.lock:
                self._running(task)
            try:
                result = self._performer.perform(task.claim.job)
            except BaseException as exc:  # SystemExit, KeyboardInterrupt too: a failed attempt
                outcome = failed(self._performer, task.claim, exc, self._clock)
            else:
                if inspect.isawaitable(result):  # a sync-looking action: the loop awaits it
                    if not self._to_loop(task, result):
                        return
                    self._idle.release()
                    continue
                outcome = Success(task.claim)
            if not self._finish(task, outcome):
                return  # a runaway: the abandon() of its timeout freed this thread's slot
            self._idle.release()

    def _to_loop(self, task: Task, awaitable: Awaitable[object]) -> bool:
        """Hand a worker's awaitable to the loop; False if the job timed out meanwhile."""
        with self._board.lock:
            timed_out = task.state is TaskState.TIMED_OUT
            if timed_out:
                task.ended = True
                self._board.post(task, None)
            else:
                task.aio = True
        if timed_out:
            from .aioloop import discard

            discard(awaitable)
            return False
        self._event_loop().spawn(functools.partial(self._await, task, awaitable))
        return True

    async def _await(self, task: Task, awaitable: Awaitable[object] | None) -> None:
        """Await a job on the loop (``awaitable`` None: call the async action here)."""
        from .aioloop import current_task, discard
        with self._board.lock:
            start = task.state is not TaskState.TIMED_OUT  # timed out before the loop had it
            if not start:
                task.ended = True
                self._board.post(task, None)
            else:
                if task.state is TaskState.QUEUED:
                    self._running(task)
                task.aio = current_task()
        if not start:
            if awaitable is not None:
                discard(awaitable)
            return
        try:
            result = self._performer.perform(task.claim.job) if awaitable is None else awaitable
            if inspect.isawaitable(result):
                await result
        except BaseException as exc:  # CancelledError of a timeout too (then discarded)
            outcome = failed(self._performer, task.claim, exc, self._clock)
        else:
            outcome = Success(task.claim)
        self._finish(task, outcome)

    def begin(self, task: Task) -> None:
        """A worker starts the task's job: its timeout counts from now."""
        with self._board.lock:
            self._running(task)

    def end(self, task: Task, outcome: Outcome) -> bool:
        """A worker's job ended: post its outcome; False if it had timed out (discarded)."""
        return self._finish(task, outcome)
