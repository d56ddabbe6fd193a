"""Jobs that are stored but can never run (SPEC 5 'never lost', 6 retry_job)."""

from __future__ import annotations

import os
from pathlib import Path

from queuetopia_lite import JobState, Queuetopia

from .helpers import Tracker, wait_for


def test_retry_of_max_attempts_zero_job_in_a_new_queue_never_runs(tmp_path: Path) -> None:
    """SPEC 6: retry_job makes a job runnable now; an exhausted job gets one more attempt.

    Expected: a max_attempts=0 job (failed at once) that the operator retries runs.
    Observed: insert_jobs never offers a max_attempts=0 job to qt_queues, so its queue has
    no row; retry_job's refresh_head finds no row and does nothing. The job is 'available'
    forever, drain() runs 0 jobs, a running scheduler never starts it, and queues() does not
    even list its queue.
    """
    tracker = Tracker()
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker)
    job = q.create_job("fresh", "ok", max_attempts=0)
    assert job.state == JobState.FAILED
    retried = q.retry_job(job.id)
    assert retried.state == JobState.AVAILABLE
    assert [s.queue for s in q.queues()] == ["fresh"], "its queue is not even listed"
    assert q.drain() == 1
    done = q.get_job(job.id)
    assert done is not None and done.state == JobState.DONE


def test_retry_of_max_attempts_zero_job_never_runs_with_running_scheduler(tmp_path: Path) -> None:
    """Same bug as above, through start(): the retried job is never picked up."""
    tracker = Tracker()
    q = Queuetopia(os.fspath(tmp_path / "j.db"), tracker, poll_interval=0.05)
    job = q.create_job("fresh", "ok", max_attempts=0)
    with q:
        q.retry_job(job.id)
        ran = wait_for(lambda: tracker.started(job.id), timeout=3)
    assert ran, "retried job never started (no qt_queues row for its queue)"
