"""queuetopia_lite cases: enqueue, processing with the real scheduler, end to end."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from _common import Result, Stopwatch, rate

from queuetopia_lite import Job, Queuetopia

BATCH = 1000
WAIT_LIMIT = 600.0  # seconds: a case that takes longer is broken


class CountingPerformer:
    """A no-op performer that sets ``done`` when the n-th job starts."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.done = threading.Event()
        self._count = itertools.count(1)

    def __call__(self, job: Job) -> None:
        if next(self._count) == self.n:  # next() on a count is atomic under the GIL
            self.done.set()


def open_q(durability: str, performer: Any = None, workers: int = 1) -> Queuetopia:
    return Queuetopia("qtl.db", performer, durability=durability, max_workers=workers)


def fill(q: Queuetopia, n: int, queues: int) -> None:
    """A backlog of n jobs spread round-robin over ``queues`` queues, in batches."""
    for start in range(0, n, BATCH):
        q.create_jobs([(f"q{i % queues}", "noop", {"i": i})
                       for i in range(start, min(n, start + BATCH))])


def process(q: Queuetopia, performer: CountingPerformer) -> float:
    """Start the scheduler, wait until every job ran; seconds taken."""
    with Stopwatch() as sw:
        q.start()
        if not performer.done.wait(WAIT_LIMIT):
            raise RuntimeError("the jobs did not all run in time")
    q.stop()
    return sw.seconds


def enqueue(n: int, durability: str) -> Result:
    """create_job one by one, then create_jobs in batches of 1,000 (another file)."""
    q = open_q(durability)
    with Stopwatch() as one:
        for i in range(n):
            q.create_job("q", "noop", {"i": i})
    q.close()
    batched = Queuetopia("qtl-batch.db", durability=durability)
    with Stopwatch() as many:
        fill(batched, n, 1)
    batched.close()
    return {"enqueue_per_s": rate(n, one.seconds), "batch_enqueue_per_s": rate(n, many.seconds)}


def processing(n: int, durability: str, queues: int, workers: int) -> Result:
    """Process a pre-filled backlog of n jobs over ``queues`` queues."""
    performer = CountingPerformer(n)
    q = open_q(durability, performer, workers)
    fill(q, n, queues)
    seconds = process(q, performer)
    q.close()
    return {"process_per_s": rate(n, seconds)}


def end_to_end(n: int, durability: str, queues: int, workers: int) -> Result:
    """Enqueue n jobs one by one, then process them all (the anchors' definition)."""
    performer = CountingPerformer(n)
    q = open_q(durability, performer, workers)
    with Stopwatch() as enq:
        for i in range(n):
            q.create_job(f"q{i % queues}", "noop", {"i": i})
    seconds = process(q, performer)
    q.close()
    return {"enqueue_per_s": rate(n, enq.seconds), "process_per_s": rate(n, seconds),
            "e2e_per_s": rate(n, enq.seconds + seconds)}


def end_to_end_concurrent(n: int, durability: str, producer_threads: int = 8,
                          queues: int = 50, workers: int = 4) -> Result:
    """8 threads enqueue one by one while the scheduler runs: first create to last job."""
    from peers import producers

    performer = CountingPerformer(n)
    q = open_q(durability, performer, workers)
    q.start()
    with Stopwatch() as total:
        enq = producers(n, producer_threads,
                        lambda i: q.create_job(f"q{i % queues}", "noop", {"i": i}))
        if not performer.done.wait(WAIT_LIMIT):
            raise RuntimeError("the jobs did not all run in time")
    q.stop()
    q.close()
    return {"enqueue_per_s": rate(n, enq), "e2e_per_s": rate(n, total.seconds)}
