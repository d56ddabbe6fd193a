"""Wall-clock jumps forward and back (an injected clock shared by two schedulers)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

from queuetopia_lite import Job, JobState, Queuetopia, hostclock

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


def run_through_jumps(db: str, clock: JumpingClock, check: OverlapCheck,
                      host_clock: bool) -> None:
    """48 jobs in 4 queues on two schedulers while the wall clock jumps back and forth.

    ``host_clock``: leases follow this host's clock (as with the real wall clock);
    otherwise the injected wall clock alone.
    """
    producer = Queuetopia(db, durability="normal", clock=clock)
    count = 4 * 12
    producer.create_jobs([(f"q{n % 4}", "a", {"n": n, "seconds": 0.3}) for n in range(count)],
                         max_backoff=1)
    # lease 3: heartbeats every second, so a scheduler steps between a jump and the renewal
    schedulers = [Queuetopia(db, check, durability="normal", clock=clock, lease=3.0,
                             max_workers=2, poll_interval=0.5) for _ in range(2)]
    for q in schedulers:
        if host_clock:  # an injected clock comes without one (tests move leases with it)
            q._host_clock = hostclock.now
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
        producer.close()


def test_clock_jumps_never_run_two_jobs_of_a_queue_at_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Jumps of a wall clock that leases follow too (no host clock, e.g. not Linux).

    A forward jump past the lease makes a running job look abandoned to whichever
    scheduler steps first; the job's late result is refused and its retry waits the
    backoff. Jobs here are shorter than the backoff (as jobs are shorter than the
    lease in real use): the retry never overlaps the abandoned run.
    """
    caplog.set_level(logging.WARNING, logger="queuetopia_lite")
    check = OverlapCheck()
    run_through_jumps(os.fspath(tmp_path / "jobs.db"), JumpingClock(), check, host_clock=False)
    assert check.overlaps == []
    assert sorted(check.runs) == list(range(1, 49))
    # Forward jumps past the lease did make running jobs look abandoned: they were taken
    # over, the late results were refused (fencing) and the jobs ran again after a backoff.
    discarded = [r for r in caplog.records if "was discarded" in r.getMessage()]
    assert discarded, "no lease was ever taken over: the jumps tested nothing"
    assert any(runs > 1 for runs in check.runs.values())


@pytest.mark.skipif(hostclock.now() is None,
                    reason="no CLOCK_BOOTTIME or /proc here: leases follow the wall clock")
def test_with_the_host_clock_wall_jumps_take_no_lease_over(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same jumps, with leases on this host's clock (the default with the real clock):
    no lease looks abandoned, so every job runs exactly once."""
    caplog.set_level(logging.WARNING, logger="queuetopia_lite")
    check = OverlapCheck()
    run_through_jumps(os.fspath(tmp_path / "jobs.db"), JumpingClock(), check, host_clock=True)
    assert check.overlaps == []
    assert check.runs == {job_id: 1 for job_id in range(1, 49)}
    discarded = [r.getMessage() for r in caplog.records if "was discarded" in r.getMessage()]
    assert discarded == []
