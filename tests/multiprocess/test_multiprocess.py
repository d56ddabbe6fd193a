"""Real worker processes on one SQLite file, checked from outside the library.

The workers are tests/faults/worker.py (per-queue flock, fsynced start/end logs); the
`workers` fixture comes from tests/faults/conftest.py.
"""

from __future__ import annotations

import signal
from collections import defaultdict

from queuetopia_lite import JobState, Queuetopia

from ..conftest import wait_until
from ..faults.procs import Workers


def all_done(q: Queuetopia, count: int) -> bool:
    return q.count_jobs()[JobState.DONE] == count


def test_four_processes_run_every_job_once_in_order_never_two_at_once(
        workers: Workers) -> None:
    q = Queuetopia(workers.db, durability="normal", driver=workers.driver)
    queues = [f"q{i}" for i in range(30)]
    q.create_jobs([(name, "ok", {"n": n}) for n in range(10) for name in queues])
    procs = [workers.start("--max-workers", "4") for _ in range(4)]
    # More jobs while they run, from this (another) process.
    q.create_jobs([(name, "sleep", {"n": n, "seconds": 0.001})
                   for n in range(10, 20) for name in queues])
    wait_until(lambda: all_done(q, 600), timeout=120, message="600 jobs done")
    workers.stop_all()
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    assert workers.read("overlaps") == ""
    pids = set()
    for name in queues:
        lines = workers.log(name)
        starts = [line.n for line in lines if line.kind == "start"]
        assert starts == list(range(20)), f"queue {name} ran {starts}"
        # start/end strictly alternate: never two jobs of a queue at once
        assert [line.kind for line in lines] == ["start", "end"] * 20
        pids.update(line.pid for line in lines)
    assert len(pids) > 1  # the work was really shared


def test_killed_worker_job_runs_again_after_the_lease_before_the_next_job(
        workers: Workers) -> None:
    q = Queuetopia(workers.db, durability="normal", driver=workers.driver)
    first = q.create_job("k", "hang_once", {"n": 0})
    q.create_job("k", "ok", {"n": 1})
    victim = workers.start("--lease", "1", "--backoff", "0.1")
    wait_until(lambda: workers.read("hanging").strip(), message="job hanging")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    workers.start("--lease", "1", "--backoff", "0.1")
    wait_until(lambda: all_done(q, 2), timeout=60, message="both jobs done")
    lines = workers.log("k")
    assert [(line.kind, line.n, line.attempt) for line in lines] == [
        ("start", 0, 1),  # the killed attempt: no end
        ("start", 0, 2), ("end", 0, 2),
        ("start", 1, 1), ("end", 1, 1),
    ]
    assert lines[0].pid == victim.pid and lines[1].pid != victim.pid
    job = q.get_job(first.id)
    assert job is not None and job.attempts == 2 and job.state == JobState.DONE
    # The lost attempt stays visible on the job (SPEC 12.6), though `error` is cleared.
    (lost,) = job.errors
    assert lost["attempt"] == 1 and lost["error"].startswith("worker lost")
    assert lost["by"].endswith(f":{victim.pid}") and job.error is None


def test_job_that_outlives_its_timeout_never_overlaps_the_next_attempt(
        workers: Workers) -> None:
    q = Queuetopia(workers.db, durability="normal", driver=workers.driver)
    slow = q.create_job("slow", "sleep", {"n": 0, "seconds": 1.5}, timeout=0.3, max_attempts=1)
    q.create_job("slow", "ok", {"n": 1})
    workers.start("--max-workers", "1", "--backoff", "0")
    wait_until(lambda: (q.get_job(slow.id) or slow).state == JobState.FAILED,
               message="timeout recorded")
    stored = q.get_job(slow.id)
    assert stored is not None and stored.error is not None and stored.error.startswith("timeout")
    # With its only worker slot's thread stuck, another queue still runs:
    other = q.create_job("other", "ok", {"n": 7})
    wait_until(lambda: (q.get_job(other.id) or other).state == JobState.DONE,
               message="other queue during the runaway")
    assert [line.kind for line in workers.log("slow")] == ["start"]  # runaway still going
    wait_until(lambda: all_done(q, 2), timeout=30, message="slow queue moves on")
    assert [(line.kind, line.n) for line in workers.log("slow")] == [
        ("start", 0), ("end", 0), ("start", 1), ("end", 1)]
    assert workers.read("overlaps") == ""
    by_state: dict[str, int] = defaultdict(int)
    for job in q.list_jobs():
        by_state[job.state.value] += 1
    assert by_state == {"done": 2, "failed": 1}
