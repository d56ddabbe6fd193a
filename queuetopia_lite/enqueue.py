"""Group commit for creators: concurrent create calls share one write transaction.

Each create_job would otherwise pay a commit of its own (an fsync with
durability="full") while the others wait for the write lock. Here the first
caller to get the turn writes every request that is waiting at that moment in
one transaction and hands each caller its own jobs; the others wait for it.
A call still stores all of its jobs or none: a batch that fails fails for every
caller in it, and nothing of it is stored.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Sequence

from .backend import Backend, NewJob
from .errors import InvalidJobError
from .job import Job


class _Request:
    __slots__ = ("done", "error", "jobs", "new")

    def __init__(self, new: Sequence[NewJob]) -> None:
        self.new = new
        self.jobs: list[Job] = []
        self.error: BaseException | None = None
        self.done = False


class Enqueuer:
    """Inserts jobs for one scope, combining concurrent calls into one transaction."""

    def __init__(self, backend: Backend, scope: str, clock: Callable[[], float]) -> None:
        self._backend = backend
        self._scope = scope
        self._clock = clock
        self._reset()

    def _reset(self) -> None:
        # Made anew in a fork()ed child: a parent's thread may have held these locks.
        self._pid = os.getpid()
        # Guards _waiting and _writing; waiters sleep on it until their request is
        # done or nobody writes (then the first awake writes every waiting request).
        self._changed = threading.Condition(threading.Lock())
        self._writing = False  # a caller is writing a batch
        self._waiting: list[_Request] = []

    def insert(self, new: Sequence[NewJob]) -> list[Job]:
        """Store these jobs (all or none) and return them in order."""
        if self._pid != os.getpid():
            self._reset()
        request = _Request(new)
        changed = self._changed
        with changed:
            self._waiting.append(request)
            while self._writing and not request.done:
                changed.wait()
            lead = not request.done  # nobody wrote it while we waited: write every waiting one
            if lead:
                batch, self._waiting = self._waiting, []
                self._writing = True
        if lead:
            try:
                self._write(batch)
            finally:
                # Every caller of the batch returns at once (not one by one after the
                # next batch's writer), and a waiting one takes the next turn.
                with changed:
                    self._writing = False
                    changed.notify_all()
        if request.error is not None:
            raise request.error
        return request.jobs

    def _write(self, batch: list[_Request]) -> None:
        try:
            created = self._backend.insert_jobs(
                self._scope, [job for request in batch for job in request.new], self._clock())
        except InvalidJobError as exc:
            if len(batch) == 1:
                self._settle(batch, error=exc)
            else:  # a refusal may concern one caller only (e.g. its thread's state)
                for request in batch:
                    self._write([request])
            return
        except BaseException as exc:  # the transaction rolled back: nothing of it is stored
            self._settle(batch, error=exc)
            return
        for request in batch:
            request.jobs, created = created[:len(request.new)], created[len(request.new):]
        self._settle(batch)

    @staticmethod
    def _settle(batch: list[_Request], error: BaseException | None = None) -> None:
        for request in batch:
            request.error = error
            request.done = True
