"""Wall-clock jumps forward and back (an injected clock shared by two schedulers)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

from queuetopia_lite import Job, JobState, Queuetopia

from ..conftest import wait_until


class JumpingClock:
    """The real wall clock plus an offset the test moves in jumps."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class OverlapCheck:
    """Counts jobs running per queue across every scheduler of the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.overlaps: list[int] = []
        self.runs: dict[int, int] = {}

    def __call__(self, job: Job) -> None:
        with self.lock:
            self.running[job.queue] = self.running.get(job.queue, 0) + 1
            if self.running[job.queue] > 1:
                self.overlaps.append(job.id)
            self.runs[job.id] = self.runs.get(job.id, 0) + 1
        time.sleep(job.params["seconds"])
        with self.lock:
            self.running[job.queue] -= 1


def test_clock_jumps_never_run_two_jobs_of_a_queue_at_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Jumps of the clock every scheduler reads, as an NTP step or a VM resume would do.

    A forward jump past the lease makes a running job look abandoned to whichever
    scheduler steps first; the job's late result is refused and its retry waits the
    backoff. Jobs here are shorter than the backoff (as jobs are shorter than the
    lease in real use): the retry never overlaps the abandoned run.
    """
    caplog.set_level(logging.WARNING, logger="queuetopia_lite")
    db = os.fspath(tmp_path / "jobs.db")
    clock = JumpingClock()
    check = OverlapCheck()
    producer = Queuetopia(db, durability="normal", clock=clock)
    count = 4 * 12
    producer.create_jobs([(f"q{n % 4}", "a", {"n": n, "seconds": 0.3}) for n in range(count)],
                         max_backoff=1)
    # lease 3: heartbeats every second, so a scheduler steps between a jump and the renewal
    schedulers = [Queuetopia(db, check, durability="normal", clock=clock, lease=3.0,
                             max_workers=2, poll_interval=0.5) for _ in range(2)]
    for q in schedulers:
        q.start()
    try:
        # Forward jumps make every lease look expired at once (the safety risk); backward
        # ones delay whatever was stamped with the later time (liveness only), so they are
        # kept short here: a queue released at T is not runnable before the clock says T.
        for jump in (+30.0, -2.0, +600.0, -2.0, +3600.0, -1.0):
            done = producer.count_jobs()[JobState.DONE]
            wait_until(lambda d=done: producer.count_jobs()[JobState.DONE] >= min(d + 4, count),
                       message="progress between jumps")
            clock.offset += jump
        wait_until(lambda: producer.count_jobs()[JobState.DONE] == count, timeout=60,
                   message="every job done")
    finally:
        for q in schedulers:
            q.close()
    assert check.overlaps == []
    assert sorted(check.runs) == list(range(1, count + 1))
    # Forward jumps past the lease did make running jobs look abandoned: they were taken
    # over, the late results were refused (fencing) and the jobs ran again after a backoff.
    discarded = [r for r in caplog.records if "was discarded" in r.getMessage()]
    assert discarded, "no lease was ever taken over: the jumps tested nothing"
    assert any(runs > 1 for runs in check.runs.values())
