"""Fork safety: no thread of ours is inside SQLite when the process forks.

A thread inside SQLite may hold one of its process-wide mutexes (the one around
opening files, the memory allocator's); a child forked at that instant inherits
the mutex locked, with no thread to unlock it, and hangs at its first connection.
Our reads and writes pass through this gate; a fork waits (a little) until none
is inside and holds new ones back until it is done. The child starts afresh.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Iterator

FORK_WAIT = 1.0  # seconds a fork waits for our SQLite calls to end (then it goes on)


class ForkGate:
    """Counts the threads inside SQLite; a fork waits for none."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._forking = False

    @contextlib.contextmanager
    def passage(self) -> Iterator[None]:
        """Hold the gate open for one call into SQLite."""
        with self._cond:
            while self._forking:
                self._cond.wait()
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                if not self._inside:
                    self._cond.notify_all()

    def before_fork(self) -> None:
        deadline = time.monotonic() + FORK_WAIT
        with self._cond:
            self._forking = True
            while self._inside and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        """No call of ours inside SQLite while the block runs (closing connections that
        other threads use: one closed under a running statement can crash the process)."""
        self.before_fork()
        try:
            yield
        finally:
            self.after_fork_in_parent()

    def after_fork_in_child(self) -> None:
        self.__init__()  # type: ignore[misc]  # the parent's threads are not here


GATE = ForkGate()
_registered = False


def install() -> None:
    """Register the gate's fork hooks (once, when the first backend opens)."""
    global _registered
    if not _registered:
        _registered = True
        os.register_at_fork(before=GATE.before_fork,
                            after_in_parent=GATE.after_fork_in_parent,
                            after_in_child=GATE.after_fork_in_child)
