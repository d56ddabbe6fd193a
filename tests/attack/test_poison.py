"""A performer's odd behaviour costs at most its own job, never the scheduler (SPEC 3, 4.3-4.4)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from queuetopia_lite import InvalidJobError, Job, JobState, Queuetopia

from .helpers import Tracker, wait_for


@pytest.mark.parametrize("delay", [float("inf"), 1e15])
def test_backoff_returning_inf_or_huge_stalls_every_queue(tmp_path: Path, delay: float) -> None:
    """SPEC 3/4.4: a performer may define backoff(job); nonsense must not break the queue.

    Expected: an infinite/huge backoff is rejected (default backoff used) or capped, the
    failure is saved, and other queues keep flowing.
    Observed: BoundPerformer.backoff only filters NaN and negatives, so inf/1e15 is stored as
    next_attempt_at; the step's `job_failed ... RETURNING` row goes through job_from_row ->
    datetime.fromtimestamp(inf) -> OverflowError/ValueError inside the step transaction.
    The step rolls back, the scheduler re-queues the poisoned outcome and retries forever:
    no other queue of the scope ever runs again, and the failed job stays 'running'.
    """
    tracker = Tracker(backoff=delay)
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker, poll_interval=0.1)
    with q:
        bad = q.create_job("A", "fail")
        assert wait_for(lambda: tracker.started(bad.id))
        assert wait_for(lambda: bad.id in tracker.ends)
        other = q.create_job("B", "ok")
        ran = wait_for(lambda: tracker.started(other.id), timeout=3)
        q.stop(timeout=1)
    assert ran, "queue B never ran: the scheduler is stuck on A's failure"
    stored = q.get_job(bad.id)  # also crashes today once the value is stored
    assert stored is not None and stored.state != JobState.RUNNING


def test_huge_max_backoff_with_many_attempts_breaks_reads(tmp_path: Path) -> None:
    """SPEC 7: durations must be finite; any accepted value must be usable.

    Expected: max_backoff=1e15 is either refused with InvalidJobError('max_backoff') or
    the resulting retry time is representable.
    Observed: default_backoff = min(2**(attempts-1)+1, max_backoff) reaches ~2**45 s after
    46 attempts; the stored next_attempt_at is past year 9999 and every read of the job
    (get_job, list_jobs, queues, the scheduler's step) raises.
    """
    q = Queuetopia(os.fspath(tmp_path / "j.db"), lambda job: 1 / 0)
    with pytest.raises(InvalidJobError) as info:
        q.create_job("A", "x", max_backoff=1e15, max_attempts=100)
    assert info.value.field == "max_backoff"
    from queuetopia_lite.backend import MAX_DURATION

    job = q.create_job("A", "x", max_backoff=MAX_DURATION, max_attempts=100)
    from queuetopia_lite.backend import Failure

    backend = q.backend
    now = 1_800_000_000.0
    for _attempt in range(1, 50):
        result = backend.step(q.scope, now, claim=1, owner="t", lease=30)
        assert [c.job.id for c in result.claimed] == [job.id]
        claim = result.claimed[0]
        from queuetopia_lite.backend import default_backoff

        nxt = now + default_backoff(claim.job)
        backend.step(q.scope, now, outcomes=[Failure(claim, "boom", nxt)])
        now = nxt
    assert q.get_job(job.id) is not None


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise AttributeError("no message")


def test_exception_with_broken_str_kills_worker_and_locks_queue_forever(tmp_path: Path) -> None:
    """SPEC 4.3: a raise is a failure, the error is saved and the lock released.

    Expected: a job raising an exception whose __str__ itself raises is recorded as a
    failed attempt (with some fallback text) and the queue goes on.
    Observed: Scheduler._perform calls error_text(exc) inside its except clause;
    str(exc) raises there, the exception escapes _perform and kills the worker thread
    (scheduler.py _worker has no guard). The task stays in _tasks as RUNNING forever: the
    heartbeat renews its lease forever, the job stays 'running', its queue is locked for
    good and one worker slot is lost.
    """
    def perform(job: Job) -> Any:
        if job.action == "bad":
            raise BrokenStr()
        return None

    q = Queuetopia(os.fspath(tmp_path / "j.db"), perform, poll_interval=0.1, lease=0.6)
    with q:
        bad = q.create_job("A", "bad", max_attempts=1)
        after = q.create_job("A", "ok")
        finished = wait_for(lambda: q.get_job(after.id).state == JobState.DONE,  # type: ignore[union-attr]
                            timeout=6)
        q.stop(timeout=1)
    stored = q.get_job(bad.id)
    assert stored is not None and stored.state == JobState.FAILED, stored
    assert finished


def test_exception_with_broken_str_escapes_drain(tmp_path: Path) -> None:
    """Same root cause through drain(): expected the failure saved and drain() to go on."""
    def perform(job: Job) -> Any:
        raise BrokenStr()

    q = Queuetopia(os.fspath(tmp_path / "j.db"), perform)
    job = q.create_job("A", "bad", max_attempts=1)
    q.drain()
    stored = q.get_job(job.id)
    assert stored is not None and stored.state == JobState.FAILED


def test_handle_failed_job_raising_system_exit_stops_all_later_hooks(tmp_path: Path) -> None:
    """SPEC 3: handle_failed_job is called after each failure; if it raises, the failure
    is still saved and the queue goes on.

    Expected: a hook that raises SystemExit once does not prevent later hooks.
    Observed: Scheduler.call_failed_hook catches Exception only; SystemExit ends the
    callbacks thread (_run_callbacks), so handle_failed_job is never called again for any
    job of this Queuetopia until it is restarted (failures pile up in the queue unseen).
    """
    class Hooked(Tracker):
        def handle_failed_job(self, job: Job) -> None:
            super().handle_failed_job(job)
            if len(self.hooks) == 1:
                raise SystemExit(1)

    tracker = Hooked(backoff=3600)
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker, poll_interval=0.1)
    with q:
        q.create_job("A", "fail")
        assert wait_for(lambda: len(tracker.hooks) == 1)
        q.create_job("B", "fail")
        called = wait_for(lambda: len(tracker.hooks) == 2, timeout=3)
    assert called, "the second failure's hook was never called"
