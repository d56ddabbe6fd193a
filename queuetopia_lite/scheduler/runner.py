"""Worker threads: each performs the jobs the committer hands it and posts the outcome.

Workers never touch the database. A worker whose job passed its timeout is
replaced by a new thread at once (the committer asks for it), so a runaway keeps
its own thread but not a slot that other queues need.
"""

from __future__ import annotations

import queue as queues
import threading
import time
from typing import Callable

from ..performer import BoundPerformer
from ..running import perform
from .board import Board, Task, TaskState


class Runner:
    """A pool of worker threads fed by the committer."""

    def __init__(self, board: Board, performer: BoundPerformer, clock: Callable[[], float],
                 workers: int) -> None:
        self._board = board
        self._performer = performer
        self._clock = clock
        self._workers = workers
        self._work: queues.SimpleQueue[Task | None] = queues.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads."""
        for _ in range(self._workers):
            self.replace()

    def hand(self, task: Task) -> None:
        """Give a claimed job to the next free worker."""
        self._work.put(task)

    def replace(self) -> None:
        """Start one more worker (for the slot a runaway job's thread left)."""
        thread = threading.Thread(target=self._work_loop, name="queuetopia-worker", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Tell every worker to end once the jobs handed to it are done."""
        for _ in self._threads:
            self._work.put(None)
        self._threads = []

    def _work_loop(self) -> None:
        board = self._board
        while (task := self._work.get()) is not None:
            timeout = task.claim.job.timeout
            with board.lock:
                task.state = TaskState.RUNNING
                task.started = time.monotonic()
                if timeout is not None:
                    task.deadline = time.monotonic() + timeout
                    if task.deadline < board.wake_at:  # the committer would sleep past it
                        board.changed.notify()
            outcome = perform(self._performer, task.claim, self._clock)
            with board.lock:
                if task.state is TaskState.TIMED_OUT:  # a runaway: its late result is discarded
                    task.ended = True
                    board.post(task, None)
                    return  # a replacement worker took this thread's slot
                task.state = TaskState.FINISHED
                task.finished = time.monotonic()
                board.post(task, outcome)
