"""The scheduler: claims queue heads, runs them on worker threads, records outcomes.

It is a few parts with one job each, sharing a board of this process's claims:

- the committer (committer.py), the only thread that writes: it saves outcomes
  and claims heads in one transaction, enforces timeouts, and sleeps until the
  next due time;
- the runner (runner.py): worker threads that perform sync jobs, and one event
  loop thread (aioloop.py) that awaits async ones, posting their outcomes;
- the lease keeper, the commit watcher, the holder check (a lock of a gone
  process of this host is recovered at once) and the dispatcher of failed-job
  hooks and event callbacks (helpers.py; events built in emit.py).

``drain()`` (drain.py) runs due jobs in the caller's thread instead.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from ..backend import Backend, Outcome
from ..errors import DatabaseError
from ..events import Events
from ..hostclock import HostClock, no_host_clock
from ..performer import BoundPerformer
from ..running import owner_name
from .board import Board
from .committer import Committer
from .drain import Drainer
from .helpers import EXPECT_TIME, Dispatcher, LeaseKeeper, check_holders, clean, watch
from .runner import Runner

# Heads claimed beyond the free workers: none. A job claimed ahead reads as running
# before it starts, so a cancel would not stop it, a killed process would charge it a
# lost attempt, and other processes' idle workers could not take it. Measured faster
# (benchmarks/README.md), left out for those reasons.
PREFETCH = 0


class Scheduler:
    """Runs one scope's jobs in this process. Made and driven by Queuetopia."""

    def __init__(self, backend: Backend, performer: BoundPerformer, *, scope: str,
                 max_workers: int, lease: float, poll_interval: float,
                 cleanup_interval: float | None, job_retention: float,
                 clock: Callable[[], float], host_clock: HostClock = no_host_clock,
                 events: Events | None = None) -> None:
        self._backend = backend
        self._events = Events() if events is None else events
        self._performer = performer
        self._scope = scope
        self._max_workers = max_workers
        self._lease = lease
        self._poll_interval = poll_interval
        self._cleanup_interval = cleanup_interval
        self._job_retention = job_retention
        self._clock = clock
        self._host_clock = host_clock
        self._lifecycle = threading.Lock()  # start() and stop() one at a time
        self._reset()

    def _reset(self) -> None:
        """Forget every thread: none started yet, or we are a fork()ed child of a process
        whose threads did not come along (and whose locks may have been held)."""
        self._pid = os.getpid()
        self._board = Board()
        self._committer: Committer | None = None
        self._thread: threading.Thread | None = None
        self._keeping: threading.Thread | None = None  # the lease keeper
        self._dispatching: threading.Thread | None = None  # hooks and event callbacks
        self._halt = threading.Event()
        self._unsaved: list[Outcome] = []  # results a failed drain() could not save

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._lifecycle = threading.Lock()
            self._reset()

    # -- lifecycle --------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the committer thread of this process is alive."""
        self._check_fork()
        return self._thread is not None and self._thread.is_alive()

    @property
    def failure(self) -> DatabaseError | None:
        """The error that stopped the scheduler on its own, if any."""
        return None if self._committer is None else self._committer.failure

    @property
    def iterations(self) -> int:
        """The committer's loop turns (tests check that it does not spin)."""
        return 0 if self._committer is None else self._committer.iterations

    def start(self) -> None:
        """Start the committer, the workers and the helper threads.

        After a stop(timeout) that returned before the scheduler settled, start()
        takes the still-running scheduler back instead of starting a second one.
        """
        self._check_fork()
        with self._lifecycle:
            if self._thread is not None and self._thread.is_alive():
                with self._board.lock:
                    if self._board.stopping and not self._board.exiting:
                        self._board.stopping = False
                        self._board.changed.notify()
                        return
                    if not self._board.stopping:
                        return
                self._thread.join()  # it is ending (settled): let it finish
            self._board = Board()
            self._halt = threading.Event()
            board, halt = self._board, self._halt
            runner = Runner(board, self._performer, self._clock, self._max_workers)
            hooks = Dispatcher(self._performer, self._events)
            committer = Committer(
                self._backend, board, runner, self._performer, hooks, self._events,
                scope=self._scope,
                capacity=self._max_workers + PREFETCH,
                lease=self._lease, poll_interval=self._poll_interval, clock=self._clock,
                host_clock=self._host_clock)
            keeper = LeaseKeeper(self._backend, board, self._scope, self._lease, self._clock,
                                 self._host_clock)
            owner_name()  # computed once here, not in the first step

            watcher = threading.Thread(target=lambda: watch(self._backend, board, halt),
                                       name="queuetopia-watcher", daemon=True)
            cleaner = None if self._cleanup_interval is None else threading.Thread(
                target=lambda: clean(self._backend, self._scope, self._cleanup_interval or 0.0,
                                     self._job_retention, self._clock, halt),
                name="queuetopia-cleaner", daemon=True)
            holders = threading.Thread(
                target=lambda: check_holders(self._backend, board, self._scope, self._clock,
                                             halt), name="queuetopia-holders", daemon=True)

            def commit() -> None:
                try:
                    committer.run()
                finally:
                    with board.lock:
                        board.stopping = board.exiting = True
                    halt.set()  # the watcher ends; the keeper too, once no runaway runs
                    runner.stop()
                    hooks.close()
                    # Their reads may be under way: once stop() returns, close() may follow.
                    watcher.join()
                    holders.join()
                    if cleaner is not None:  # a prune under way ends first
                        cleaner.join()

            committer.pending, self._unsaved[:] = list(self._unsaved), []
            self._committer = committer
            runner.start()
            watcher.start()
            holders.start()
            if cleaner is not None:
                cleaner.start()
            self._keeping = threading.Thread(target=lambda: keeper.run(halt), daemon=True,
                                             name="queuetopia-lease-keeper")
            self._keeping.start()
            self._dispatching = threading.Thread(target=hooks.run, daemon=True,
                                                 name="queuetopia-dispatcher")
            self._dispatching.start()
            self._thread = threading.Thread(target=commit, name="queuetopia-committer",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, let claimed jobs end and save their results, deliver their
        hooks and events, then stop.

        Returns when that is done, or after ``timeout`` seconds: the scheduler then
        finishes in the background and ends by itself. A job past its timeout is
        not waited for: its failure is saved, and its thread (or coroutine) runs on
        with its queue locked and its lease renewed while it runs in this process.
        """
        self._check_fork()
        with self._lifecycle:
            thread = self._thread
            if thread is None:
                return
            with self._board.lock:
                self._board.stopping = True
                self._board.changed.notify()
            deadline = None if timeout is None else time.monotonic() + timeout
            thread.join(timeout)
            if thread.is_alive():
                return  # it ends by itself once settled
            # The hooks and events of the saved outcomes are delivered before stop returns
            # (unless a callback calls stop()), and the lease keeper ends, but for one that
            # renews runaways' leases while they run. (The watcher and the holder check
            # ended with the committer; workers never touch the database.)
            waits = [self._dispatching]
            if not self._board.claims(runaways_only=True):
                waits.append(self._keeping)
            for helper in waits:
                if helper is not None and helper is not threading.current_thread():
                    helper.join(None if deadline is None
                                else max(deadline - time.monotonic(), 0.0))

    def notify(self) -> None:
        """Wake the committer: something may be runnable."""
        self._check_fork()
        self._board.poke()

    def expect_commit(self) -> None:
        """A job was written in an application's open transaction: watch for its commit."""
        self._check_fork()
        self._board.expect_until = time.monotonic() + EXPECT_TIME

    def drain(self) -> int:
        """Run due jobs in this thread until none is due; return how many ran.

        Ctrl-C (KeyboardInterrupt) during a job saves it as a failed attempt and
        then stops the drain by raising.
        """
        self._check_fork()
        return Drainer(self._backend, self._performer, self._unsaved, self._events,
                       scope=self._scope, lease=self._lease, clock=self._clock,
                       host_clock=self._host_clock).drain()


__all__ = ["Scheduler", "owner_name"]
