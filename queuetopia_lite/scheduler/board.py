"""The board: this process's claimed jobs and the events workers post to the committer.

Every part of the scheduler reads the board; only the committer adds and removes
tasks. One lock guards it, and a condition on that lock wakes the committer.
"""

from __future__ import annotations

import enum
import math
import threading

from ..backend import Claim, Outcome


class TaskState(enum.Enum):
    """Where a claimed job is in this process."""

    QUEUED = "queued"  # claimed, waiting for a worker thread
    RUNNING = "running"  # being performed
    FINISHED = "finished"  # performed; its outcome waits to be saved
    TIMED_OUT = "timed out"  # past its timeout: its failure is (being) saved, the thread runs on


class Task:
    """A claimed job in this process, from its claim until its outcome is saved."""

    __slots__ = ("aio", "claim", "deadline", "ended", "finished", "started", "state",
                 "timeout_settled")

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.state = TaskState.QUEUED
        self.deadline: float | None = None  # time.monotonic() at which it times out
        self.timeout_settled = False  # its timeout failure was saved (or refused)
        self.ended = False  # a timed-out job's thread (or coroutine) has ended
        # Awaited on the scheduler's event loop (not a worker thread): its asyncio
        # task once started there, else True; None for a job on a worker thread.
        self.aio: object | None = None
        self.started = 0.0  # time.monotonic() when it began performing
        self.finished: float | None = None  # time.monotonic() when it returned or timed out


# What a worker posts: the task and its outcome (None: a runaway's thread ended).
Event = tuple[Task, Outcome | None]


class Board:
    """Claimed jobs by token, the committer's inbox, and its wake-up condition."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.tasks: dict[str, Task] = {}  # guarded by lock
        self.inbox: list[Event] = []  # guarded by lock
        self.poked = False  # something may be runnable (a commit, notify(), a free worker)
        self.stopping = False  # stop claiming; the committer ends once settled
        self.exiting = False  # the committer has decided to end: it can no longer resume
        self.wake_at = math.inf  # time.monotonic() the sleeping committer wakes at
        self.expect_until = 0.0  # time.monotonic() until which commits are watched closely

    def post(self, task: Task, outcome: Outcome | None) -> None:
        """A worker's event for the committer (call with the lock held)."""
        self.inbox.append((task, outcome))
        self.changed.notify()

    def poke(self) -> None:
        """Wake the committer: something may be runnable."""
        with self.lock:
            self.poked = True
            self.changed.notify()

    def claims(self, runaways_only: bool = False) -> list[Claim]:
        """Every claim this process holds, runaways and unsaved outcomes included.

        With ``runaways_only``: the claims of timed-out jobs whose threads still run.
        """
        with self.lock:
            return [task.claim for task in self.tasks.values() if not runaways_only
                    or (task.state is TaskState.TIMED_OUT and not task.ended)]

    def alive(self) -> set[str]:
        """The tokens of this process's claims: never recovered as expired by us."""
        with self.lock:
            return set(self.tasks)
