"""Timeouts and runaways (SPEC 4.4, 4.5, 6) with real threads."""

from __future__ import annotations

import os
from pathlib import Path

from queuetopia_lite import JobState, QueueState, Queuetopia

from .helpers import Tracker, wait_for


def test_restart_after_a_timeout_leaves_no_worker(tmp_path: Path) -> None:
    """SPEC 3: q.start(); q.stop(); ... a Queuetopia may be started again.

    Expected: after stop() and start(), max_workers worker threads serve jobs again.
    Observed: a timed-out job's thread (the runaway) stays in Scheduler._workers after a
    replacement worker is added. stop() puts one None per entry of _workers into the work
    queue, but the runaway thread already returned and never takes its None, so one None
    is left over. On start() a new worker takes that stale None and exits. With
    max_workers=1 there is then no worker at all: the next job is claimed, its lease is
    renewed forever by the heartbeat, and it stays 'running' without ever starting.
    """
    tracker = Tracker(backoff=0.05)
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker, max_workers=1, poll_interval=0.1)
    with q:
        slow = q.create_job("A", "sleep", {"seconds": 0.4}, timeout=0.1, max_attempts=1)
        assert wait_for(lambda: slow.id in tracker.ends)  # the runaway has ended
        assert wait_for(lambda: q.queues()[0].state != QueueState.RUNNING)
    q.start()
    try:
        job = q.create_job("B", "ok")
        ran = wait_for(lambda: tracker.started(job.id), timeout=3)
        stuck = q.get_job(job.id)
    finally:
        q.stop(timeout=1)
    assert ran, f"no worker after restart; job is {stuck.state if stuck else None}"


def test_timed_out_last_attempt_does_not_hold_its_queue_for_its_last_backoff(
        tmp_path: Path) -> None:
    """SPEC 4.4: when attempts reach max_attempts the job is failed and the queue moves on
    *after that last backoff*.

    Expected: a job with max_attempts=1 that times out (backoff 1.5 s) holds its queue
    until timeout-time + 1.5 s, like an exhausted job that raised.
    Observed: the timeout's Failure has keep_lock=True, and save_outcome returns before
    set_head, so hold_until is never recorded; when the runaway ends, Release calls
    set_head(failed=False, hold_until=None). The next job starts as soon as the runaway
    thread ends (~0.3 s), not after the last backoff.
    """
    tracker = Tracker(backoff=1.5)
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker, poll_interval=0.05)
    with q:
        slow = q.create_job("A", "sleep", {"seconds": 0.3}, timeout=0.05, max_attempts=1)
        nxt = q.create_job("A", "ok")
        assert wait_for(lambda: tracker.started(slow.id))
        t0 = tracker.starts[slow.id][0]
        assert wait_for(lambda: tracker.started(nxt.id), timeout=5)
        gap = tracker.starts[nxt.id][0] - t0
    stored = q.get_job(slow.id)
    assert stored is not None and stored.state == JobState.FAILED
    assert gap >= 0.05 + 1.5 - 0.1, f"next job started {gap:.2f} s after the exhausted one"


def test_queue_blocked_by_a_timed_out_job_has_no_blocked_since(tmp_path: Path) -> None:
    """SPEC 6: a blocked queue shows since when it is blocked.

    Expected: after a job times out (and its runaway thread ends) its queue is 'blocked'
    with blocked_since set to the time of that failure.
    Observed: blocked_since is None: the keep_lock Failure path never calls set_head, and
    the later Release calls set_head(failed=False), which keeps the old (None) value.
    """
    tracker = Tracker(backoff=3600)
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker, poll_interval=0.05)
    with q:
        slow = q.create_job("A", "sleep", {"seconds": 0.2}, timeout=0.05)
        assert wait_for(lambda: slow.id in tracker.ends)
        assert wait_for(lambda: q.queues()[0].state == QueueState.BLOCKED)
    status = q.queues()[0]
    assert status.head is not None and status.head.error is not None
    assert status.head.error.startswith("timeout")
    assert status.blocked_since is not None


def test_queue_blocked_again_after_an_earlier_job_ran_has_no_blocked_since(
        tmp_path: Path) -> None:
    """SPEC 6: a blocked queue shows since when it is blocked.

    A head fails (blocked_since set); a job created with an earlier scheduled_at becomes
    head (offer_head clears blocked_since), runs and succeeds; the old head is head again
    and still retrying, so the queue is blocked. Observed: blocked_since stays None
    (set_head keeps blocked_since only when the head did not change).
    """
    from datetime import datetime, timedelta, timezone

    tracker = Tracker(backoff=3600)
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker)
    q.create_job("A", "fail")
    q.drain()
    assert q.queues()[0].state == QueueState.BLOCKED
    assert q.queues()[0].blocked_since is not None
    early = datetime.now(timezone.utc) - timedelta(hours=1)
    q.create_job("A", "ok", scheduled_at=early)
    assert q.drain() == 1
    status = q.queues()[0]
    assert status.state == QueueState.BLOCKED
    assert status.blocked_since is not None


def test_runaway_keeps_queue_locked_after_stop(tmp_path: Path) -> None:
    """SPEC 4.5: the queue stays locked until the runaway thread really ends: one queue
    never runs two jobs at once.

    Expected: while a timed-out job's thread still runs in this process, no other worker
    (another Queuetopia on the same file) runs the next job of its queue.
    Observed: stop() halts the heartbeat without waiting for (or handing over) the runaway;
    its lease expires, the other instance recovers the queue and runs the head again: the
    timed-out job 1 itself starts a second time while its first run is still going (the
    Tracker sees two runs of queue A at once). Scheduler.stop's docstring admits it; the
    SPEC does not.
    """
    path = os.fspath(tmp_path / "j.db")
    tracker = Tracker(backoff=0.01)
    q1 = Queuetopia(path, tracker, lease=0.3, poll_interval=0.05)
    q2 = Queuetopia(path, tracker, lease=0.3, poll_interval=0.05)
    gate = tracker.gate("g")
    q1.start()
    try:
        first = q1.create_job("A", "gate", {"gate": "g"}, timeout=0.05)
        second = q1.create_job("A", "ok")
        assert wait_for(lambda: tracker.started(first.id))
        assert wait_for(lambda: q1.get_job(first.id).error is not None)  # type: ignore[union-attr]
        q1.stop(timeout=1)
        q2.start()
        overlapped = wait_for(lambda: tracker.started(second.id), timeout=2)
    finally:
        gate.set()
        q2.stop(timeout=2)
        q1.stop(timeout=2)
    assert tracker.overlaps == [], "queue A ran two jobs at once"
    assert not overlapped, "job 2 of queue A ran while job 1's thread was still running"


def test_timeout_counts_from_start_of_perform_not_from_claim(tmp_path: Path) -> None:
    """SPEC 3: timeout counts from the start of perform. (Passes today: kept as coverage.)"""
    tracker = Tracker(backoff=0.01)
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker, max_workers=2, poll_interval=0.05)
    with q:
        job = q.create_job("A", "sleep", {"seconds": 0.05}, timeout=1.0)
        assert wait_for(lambda: q.get_job(job.id).state == JobState.DONE)  # type: ignore[union-attr]
    stored = q.get_job(job.id)
    assert stored is not None and stored.error is None
