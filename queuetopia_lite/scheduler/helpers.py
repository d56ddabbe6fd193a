"""The scheduler's small background parts: lease keeper, commit watcher, holder check,
dispatcher."""

from __future__ import annotations

import logging
import queue as queues
import random
import threading
import time
from typing import Callable

from ..backend import Backend, Claim
from ..errors import DatabaseError
from ..events import Event, Events
from ..holders import holder_alive, host_prefix
from ..hostclock import HostClock
from ..job import Job
from ..performer import BoundPerformer
from .board import Board

log = logging.getLogger("queuetopia_lite")

WATCH_INTERVAL = 0.005  # seconds between looks for other processes' commits
# After a job was written in an application's transaction, its commit is near: look
# more often for a while (a look is one PRAGMA data_version, a few microseconds).
EXPECT_INTERVAL = 0.0002  # seconds between looks while a commit is expected
EXPECT_TIME = 2.0  # seconds the closer watch lasts after such a write
# A killed process renews nothing and commits nothing: only a look finds its locks.
HOLDER_CHECK_INTERVAL = 1.0  # seconds between looks for locks of gone processes of this host


class LeaseKeeper:
    """Renews the lease of every claim on the board, every third of a lease."""

    def __init__(self, backend: Backend, board: Board, scope: str, lease: float,
                 clock: Callable[[], float], host_clock: HostClock) -> None:
        self._backend = backend
        self._host_clock = host_clock
        self._board = board
        self._scope = scope
        self._lease = lease
        self._clock = clock

    def run(self, halt: threading.Event) -> None:
        """Renew until ``halt`` is set, then the runaways' only while they run (thread target).

        stop() does not wait for a job past its timeout, but while its thread lives
        in this process its queue stays locked: no second job of that queue starts.
        """
        while not halt.wait(self._lease / 3):
            self.renew_once(self._board.claims())
        while runaways := self._board.claims(runaways_only=True):
            time.sleep(self._lease / 3)
            self.renew_once(runaways)

    def renew_once(self, claims: list[Claim]) -> None:
        """Renew these claims now; a failure is logged and tried again next time."""
        if not claims:
            return
        try:
            host = self._host_clock()
            lost = self._backend.renew(self._scope, claims, self._clock() + self._lease,
                                       None if host is None else host.after(self._lease))
        except Exception as exc:  # the keeper must outlive a bad moment
            log.error("queuetopia_lite: cannot renew leases: %s", exc)
            return
        for claim in lost:
            log.warning("queuetopia_lite: lost the lock of queue %r (job %s): its result "
                        "will be discarded", claim.job.queue, claim.job.id)


def clean(backend: Backend, scope: str, interval: float, retention: float,
          clock: Callable[[], float], halt: threading.Event) -> None:
    """Delete this scope's done jobs older than ``retention``, every ``interval`` seconds
    (thread target): off the committer's path, since pruning many jobs takes a while."""
    wait = random.uniform(0, min(interval, 1.0))  # processes started together spread out
    while not halt.wait(wait):
        try:
            backend.prune(scope, clock() - retention)
        except Exception as exc:  # the cleaner must outlive a bad moment
            log.error("queuetopia_lite: cannot prune old jobs: %s", exc)
        wait = interval


def watch(backend: Backend, board: Board, halt: threading.Event) -> None:
    """Poke the committer when another connection commits (thread target)."""
    last = None
    while not halt.wait(EXPECT_INTERVAL if time.monotonic() < board.expect_until
                        else WATCH_INTERVAL):
        try:
            counter = backend.change_counter()
        except DatabaseError:
            continue
        if counter != last:
            # The first reading pokes too: a commit that landed after the committer's
            # first look but before this baseline would otherwise wait for a poll.
            board.poke()
            last = counter


def recover_dead_holders(backend: Backend, scope: str, clock: Callable[[], float]) -> int:
    """End now the leases that gone processes of this host hold; return how many ended.

    One cheap read (the lease index: locked queues only, this host's tokens) and a
    look in /proc per lock. The next step records each job's attempt as lost.
    """
    prefix = host_prefix()
    if not prefix:
        return 0  # no /proc: nothing can be told, every lease runs out
    dead = [token for token in backend.lock_tokens(scope, prefix)
            if holder_alive(token) is False]
    if not dead:
        return 0
    ended = backend.expire_claims(scope, dead, clock())
    if ended:
        log.warning("queuetopia_lite: %d queue lock(s) of scope %r held by a process of this "
                    "host that no longer exists: recovered now", ended, scope)
    return ended


def check_holders(backend: Backend, board: Board, scope: str, clock: Callable[[], float],
                  halt: threading.Event) -> None:
    """Recover gone holders' leases at once, and wake the committer (thread target)."""
    while True:
        try:
            if recover_dead_holders(backend, scope, clock):
                board.poke()  # its next step records the lost attempts
        except Exception as exc:  # a bad moment: the next look tries again
            log.error("queuetopia_lite: cannot look for locks of gone processes: %s", exc)
        if halt.wait(HOLDER_CHECK_INTERVAL):
            return


class Dispatcher:
    """Calls ``handle_failed_job`` and event callbacks off the committer's path, in order."""

    def __init__(self, performer: BoundPerformer, events: Events) -> None:
        self._performer = performer
        self._events = events
        self._items: queues.SimpleQueue[Job | Event | None] = queues.SimpleQueue()

    def put(self, job: Job) -> None:
        """Queue a failed job for its hook."""
        self._items.put(job)

    def emit(self, events: list[Event]) -> None:
        """Queue events for their callbacks."""
        for event in events:
            self._items.put(event)

    def close(self) -> None:
        """End the thread once the queued hooks and events are delivered."""
        self._items.put(None)

    def run(self) -> None:
        """Deliver until closed (thread target)."""
        while (item := self._items.get()) is not None:
            if isinstance(item, Job):
                call_failed_hook(self._performer, item)
            else:
                self._events.deliver(item)


def call_failed_hook(performer: BoundPerformer, job: Job) -> None:
    """The performer's handle_failed_job(job); its errors are logged, never raised."""
    try:
        performer.handle_failed_job(job)
    except BaseException:  # SystemExit too: one hook must not end the others
        log.exception("queuetopia_lite: handle_failed_job raised for job %s", job.id)
