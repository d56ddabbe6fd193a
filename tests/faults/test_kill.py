"""Workers killed (SIGKILL) or frozen (SIGSTOP) at random: nothing lost, order kept, fencing."""

from __future__ import annotations

import random
import signal
import subprocess
from collections import defaultdict

from queuetopia_lite import JobState, Queuetopia

from ..conftest import wait_until
from .procs import Line, Workers, freeze, integrity

QUEUES = 20
JOBS_PER_QUEUE = 50
KILLS = 30
WORKER_OPTIONS = ("--max-workers", "4", "--lease", "1", "--backoff", "0.05")


def check_queue_log(name: str, lines: list[Line], killed: set[int]) -> None:
    """Order kept, every job ended, and only attempts of killed workers repeated."""
    ended: set[int] = set()
    attempts: dict[int, list[Line]] = defaultdict(list)
    for line in lines:
        if line.kind == "start":
            # the head runs only once everything before it has ended: order kept
            assert all(n in ended for n in range(line.n)), f"{name}: {line} before its turn"
            attempts[line.n].append(line)
        else:
            ended.add(line.n)
    assert ended == set(range(JOBS_PER_QUEUE)), f"{name}: missing {set(range(50)) - ended}"
    for n, starts in attempts.items():
        # every attempt but the last was cut short by a kill of its worker
        for start in starts[:-1]:
            assert start.pid in killed, f"{name}: job {n} repeated but {start.pid} lived"


def test_sigkill_loop_loses_nothing_keeps_order_and_never_overlaps(workers: Workers) -> None:
    q = Queuetopia(workers.db, durability="normal")
    q.create_jobs([(f"q{i}", "sleep", {"n": n, "seconds": 0.25})
                   for n in range(JOBS_PER_QUEUE) for i in range(QUEUES)])
    procs = [workers.start(*WORKER_OPTIONS) for _ in range(2)]
    rng = random.Random()
    for _ in range(KILLS):
        # 0.5-2 s of work (jobs last long enough that kills land mid-job), then a kill
        pause = rng.uniform(0.5, 2.0)
        try:
            wait_until(lambda: q.count_jobs()[JobState.DONE] == QUEUES * JOBS_PER_QUEUE,
                       timeout=pause)
        except AssertionError:
            pass  # the normal case: still working after the pause
        victim = rng.choice(procs)
        workers.kill(victim)
        procs.remove(victim)
        procs.append(workers.start(*WORKER_OPTIONS))
    wait_until(lambda: q.count_jobs()[JobState.DONE] == QUEUES * JOBS_PER_QUEUE, timeout=120,
               message="every job done")
    workers.stop_all()
    assert [p.returncode for p in procs] == [0, 0]
    assert workers.read("overlaps") == ""
    assert len(workers.killed) == KILLS
    repeated = sum(1 for i in range(QUEUES) for ln in workers.log(f"q{i}")
                   if ln.kind == "start" and ln.attempt > 1)
    assert repeated > 0, "no kill landed mid-job: the test proved nothing"
    for i in range(QUEUES):
        check_queue_log(f"q{i}", workers.log(f"q{i}"), workers.killed)
    assert integrity(workers.db) == "ok"


def test_frozen_worker_past_its_lease_cannot_record_its_result(workers: Workers) -> None:
    q = Queuetopia(workers.db, durability="normal")
    job = q.create_job("f", "sleep_once", {"n": 0, "seconds": 2.0})
    nxt = q.create_job("f", "ok", {"n": 1})
    paused = workers.start("--lease", "1", stderr=subprocess.PIPE)
    wait_until(lambda: workers.log("f"), message="first attempt started")
    freeze(paused, workers.db)
    taker = workers.start("--lease", "1")
    wait_until(lambda: q.count_jobs()[JobState.DONE] == 2, timeout=30,
               message="the other worker ran the queue")
    done = q.get_job(job.id)
    assert done is not None and done.attempts == 2
    assert done.attempted_by is not None and done.attempted_by.endswith(f":{taker.pid}")
    paused.send_signal(signal.SIGCONT)
    # The paused worker wakes, finishes its attempt, and its result is refused.
    wait_until(lambda: [ln for ln in workers.log("f") if ln.pid == paused.pid
                        and ln.kind == "end"], message="paused attempt ended")
    workers.stop_all()
    assert paused.stderr is not None
    err = paused.stderr.read().decode()
    assert f"the result of job {job.id} was discarded" in err
    after = q.get_job(job.id)
    assert after == done  # not touched by the paused worker's late success
    assert [(ln.kind, ln.n, ln.attempt, ln.pid) for ln in workers.log("f")] == [
        ("start", 0, 1, paused.pid), ("start", 0, 2, taker.pid), ("end", 0, 2, taker.pid),
        ("start", 1, 1, taker.pid), ("end", 1, 1, taker.pid), ("end", 0, 1, paused.pid)]
    # The frozen attempt held the queue's flock while the taker ran both jobs: that is the
    # price of at-least-once after a pause past the lease; fencing kept the record right.
    assert workers.read("overlaps").split() == ["f", str(job.id), "f", str(nxt.id)]
    assert (q.get_job(nxt.id) or nxt).state == JobState.DONE
