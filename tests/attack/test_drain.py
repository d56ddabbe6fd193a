"""drain(): outcomes must not be lost when saving them fails (SPEC 3, 5, 7)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import apsw
import pytest

from queuetopia_lite import JobState, Queuetopia
from queuetopia_lite.errors import DatabaseError
from queuetopia_lite.sqlite import SQLiteBackend


def test_drain_loses_a_success_when_the_database_is_briefly_locked(tmp_path: Path) -> None:
    """SPEC 7: a locked database gives a clear error and loses nothing.

    Expected: a job that succeeded inside drain() is recorded done once the database is
    writable again (the background scheduler keeps unsaved outcomes and retries them).
    Observed: Scheduler.drain() keeps the outcome only in a local variable; when the next
    step raises DatabaseError (locked), the success is dropped, drain's heartbeat stops,
    and the job stays 'running' until its lease expires, is then recorded as a failed
    'worker lost' attempt and runs a second time.
    """
    path = os.fspath(tmp_path / "j.db")
    backend = SQLiteBackend(path, durability="normal", busy_timeout=0.01)
    holding = threading.Event()
    done = threading.Event()

    def hold_lock() -> None:
        other = apsw.Connection(path)
        other.execute("BEGIN IMMEDIATE")
        holding.set()
        done.wait(8)
        other.execute("COMMIT")
        other.close()

    def perform(job: object) -> None:
        threading.Thread(target=hold_lock, daemon=True).start()
        holding.wait(5)

    q = Queuetopia(backend, perform, lease=60)
    job = q.create_job("a", "x")
    try:  # drain() may wait the lock out, or give up with a clear error...
        q.drain()
    except DatabaseError:
        pass
    done.set()
    q.drain()  # ...and then saves the result it kept
    stored = q.get_job(job.id)
    assert stored is not None and stored.state == JobState.DONE, stored.state if stored else None


def test_keyboard_interrupt_inside_drain_is_swallowed(tmp_path: Path) -> None:
    """Design question (SPEC 3 says raise = failure): in drain(), which runs in the caller's
    (often the main) thread, Ctrl-C during a job is recorded as a job failure and drain()
    goes on with the next due jobs, so a foreground script cannot be interrupted.
    Expected (careful user): the failure is saved, then KeyboardInterrupt propagates."""
    calls = []

    def perform(job: object) -> None:
        calls.append(job)
        raise KeyboardInterrupt

    q = Queuetopia(os.fspath(tmp_path / "j.db"), perform)
    q.create_jobs([(f"q{i}", "x") for i in range(5)])
    with pytest.raises(KeyboardInterrupt):
        q.drain()
    assert len(calls) == 1
