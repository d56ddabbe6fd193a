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
from typing import Callable, Sequence

from .backend import Backend, NewJob
from .combine import Combiner, Request, settle_interrupted
from .errors import InvalidJobError
from .job import Job

GATHER = 0.001  # seconds a creator finding nobody writing waits for the last batch's callers


class _Request(Request):
    __slots__ = ("jobs", "new")

    def __init__(self, new: Sequence[NewJob]) -> None:
        super().__init__()
        self.new = new
        self.jobs: list[Job] = []


class Enqueuer:
    """Inserts jobs for one scope, combining concurrent calls into one transaction."""

    def __init__(self, backend: Backend, scope: str, clock: Callable[[], float]) -> None:
        self._backend = backend
        self._scope = scope
        self._clock = clock
        self._reset()

    def _reset(self) -> None:
        # Made anew in a fork()ed child: a parent's thread may have held these locks.
        # The pid last: another thread of the child must not take the parent's combiner.
        self._combiner: Combiner[_Request] = Combiner(gather=GATHER)
        self._pid = os.getpid()

    def insert(self, new: Sequence[NewJob]) -> list[Job]:
        """Store these jobs (all or none) and return them in order."""
        if self._pid != os.getpid():
            self._reset()
        request = _Request(new)
        self._combiner.submit(request, self._write)
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
            # A Ctrl-C is raised again here; the other callers may try again.
            settle_interrupted(batch, exc, lambda: self._backend.location)
            return
        for request in batch:
            request.jobs, created = created[:len(request.new)], created[len(request.new):]
        self._settle(batch)

    @staticmethod
    def _settle(batch: list[_Request], error: BaseException | None = None) -> None:
        for request in batch:
            request.error = error
            request.done = True
