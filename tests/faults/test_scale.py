"""Scale (slow, on demand: scripts/test -m slow): a 1,000,000-job backlog in 100,000 queues
drains completely, in order per queue, with bounded memory and a bounded WAL."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import pytest

from queuetopia_lite import Job, JobState, Queuetopia
from queuetopia_lite.sqlite.connection import JOURNAL_SIZE_LIMIT

from ..conftest import wait_until
from .procs import integrity

QUEUES = 100_000
PER_QUEUE = 10
BATCH = 20_000


def rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.slow
def test_a_million_jobs_in_100k_queues_drain_in_order_with_bounded_memory_and_wal(
        tmp_path: Path) -> None:
    db = os.fspath(tmp_path / "jobs.db")
    lock = threading.Lock()
    last: dict[int, int] = {}
    disorder: list[int] = []
    ran: list[int] = []  # appended by workers; read cheaply by the waiting loop

    def perform(job: Job) -> None:
        queue, n = job.params["q"], job.params["n"]
        with lock:
            if last.get(queue, -1) != n - 1:
                disorder.append(job.id)
            last[queue] = n
            ran.append(job.id)

    q = Queuetopia(db, perform, durability="normal", max_workers=16, poll_interval=1.0)
    items = ((f"q{i}", "a", {"q": i, "n": n}) for n in range(PER_QUEUE) for i in range(QUEUES))
    batch: list[tuple[str, str, dict[str, int]]] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            q.create_jobs(batch)
            batch = []
    assert q.count_jobs()[JobState.AVAILABLE] == QUEUES * PER_QUEUE
    before = rss_mib()
    wal_peak = 0

    def drained() -> bool:
        nonlocal wal_peak
        if os.path.exists(db + "-wal"):
            wal_peak = max(wal_peak, os.path.getsize(db + "-wal"))
        return len(ran) >= QUEUES * PER_QUEUE

    with q:
        wait_until(drained, timeout=3600, message="the backlog drained")
    assert q.count_jobs()[JobState.DONE] == QUEUES * PER_QUEUE
    assert len(ran) == len(set(ran)) == QUEUES * PER_QUEUE
    assert disorder == []
    assert len(last) == QUEUES and all(n == PER_QUEUE - 1 for n in last.values())
    # Memory: the scheduler holds claims, not the backlog (the test's own dict is ~20 MiB).
    assert rss_mib() - before < 300
    assert wal_peak <= JOURNAL_SIZE_LIMIT + 16 * 1024 * 1024
    assert integrity(db) == "ok"
    q.close()
