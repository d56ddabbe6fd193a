"""Scheduler loop behaviour: sleeping, fairness (SPEC 4.8, 4.9)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from queuetopia_lite import Queuetopia
from queuetopia_lite.backend import HostInstant
from queuetopia_lite.sqlite import SQLiteBackend

from .helpers import Tracker, wait_for


class CountingBackend(SQLiteBackend):
    """The real SQLite backend, counting how often the scheduler asks for its next due time."""

    def __init__(self, path: str) -> None:
        super().__init__(path, durability="normal")
        self.lock = threading.Lock()
        self.next_due_calls = 0

    def next_due(self, scope: str, now: float | None = None,
                 host: HostInstant | None = None) -> float | None:
        with self.lock:
            self.next_due_calls += 1
        return super().next_due(scope, now, host)


def test_scheduler_busy_spins_while_runnable_queues_wait_for_a_worker(tmp_path: Path) -> None:
    """SPEC 4.8: the scheduler sleeps until the earliest due time, capped by poll_interval.

    Expected: while every worker is busy and another queue is runnable, the scheduler
    sleeps until a worker frees (a worker's outcome wakes it).
    Observed: _tick does nothing with free == 0, then _sleep_time() returns
    max(next_due - now, 0) = 0 because a queue's ready_at is already past; the loop spins
    at full speed, reading the database thousands of times a second, for as long as the
    workers stay busy (forever with long jobs).
    """
    backend = CountingBackend(os.fspath(tmp_path / "j.db"))
    tracker = Tracker()
    q = Queuetopia(backend, tracker, max_workers=1, poll_interval=60)
    gate = tracker.gate("g")
    with q:
        busy = q.create_job("A", "gate", {"gate": "g"})
        q.create_job("B", "ok")
        assert wait_for(lambda: tracker.started(busy.id))
        time.sleep(0.05)
        with backend.lock:
            before = backend.next_due_calls
        time.sleep(0.5)
        with backend.lock:
            calls = backend.next_due_calls - before
        gate.set()
    assert calls < 20, f"{calls} next_due() reads in 0.5 s while waiting for a worker"


def test_past_scheduled_jobs_starve_a_waiting_queue(tmp_path: Path) -> None:
    """SPEC 4.9: no runnable queue waits more than one round behind queues that became
    runnable after it: none starves.

    Expected: queue 'victim', runnable since T, is claimed before queues that became
    runnable later.
    Observed: offer_head sets a new queue's ready_at to the job's scheduled_at, so a job
    created *later* with a scheduled_at in the past (a backfill, an import, a clock-skewed
    producer) sorts before the waiting queue. With one worker, a steady stream of such
    jobs in fresh queues keeps 'victim' waiting round after round.
    """
    from datetime import datetime, timezone

    from queuetopia_lite.backend import Success
    from queuetopia_lite.validation import new_job

    backend = SQLiteBackend(os.fspath(tmp_path / "j.db"), durability="normal")
    now = 1_800_000_000.0
    backend.insert_jobs("s", [new_job("victim", "a")], now)
    past = datetime.fromtimestamp(now - 3600, tz=timezone.utc)
    served = []
    for i in range(5):
        now += 1
        backend.insert_jobs("s", [new_job(f"late{i}", "a", scheduled_at=past)], now)
        claim = backend.step("s", now, claim=1, owner="w", lease=30).claimed[0]
        served.append(claim.job.queue)
        backend.step("s", now, outcomes=[Success(claim)])
    assert "victim" in served[:2], f"victim waited {len(served)} rounds: {served}"
