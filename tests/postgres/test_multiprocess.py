"""Postgres: several worker processes on one schema, each queue run by one at a time."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

from queuetopia_lite import Job, JobState, Queuetopia

from ..conftest import wait_until

QUEUES = 12
PER_QUEUE = 15


def _worker(url: str, stop: Any) -> None:
    import psycopg

    from .. import pgserver

    log = psycopg.connect(pgserver.URL, autocommit=True)
    table = url.rsplit("schema=", 1)[1] + ".ran"

    def perform(job: Job) -> None:
        # A session advisory lock per queue: taken by two processes at once = a violation.
        key = job.queue
        free = log.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
        overlap = not (free and free[0])
        time.sleep(0.002)  # hold the queue a moment, so an overlap could show
        log.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)",
                    (job.id, job.queue, os.getpid(), overlap))
        if not overlap:
            log.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

    q = Queuetopia(url, perform, max_workers=4, poll_interval=1.0)
    with q:
        stop.wait(60)
    q.close()


def test_worker_processes_share_the_queues_without_overlap(url: str, schema: str,
                                                           raw: Any) -> None:
    producer = Queuetopia(url)
    raw.execute(f"CREATE TABLE {schema}.ran (id bigint, queue text, pid int, overlap bool)")
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_worker, args=(url, stop)) for _ in range(3)]
    for p in procs:
        p.start()
    try:
        jobs = producer.create_jobs([(f"q{i % QUEUES}", "act") for i in range(QUEUES * PER_QUEUE)])

        def count() -> int:
            return int(raw.execute(f"SELECT count(*) FROM {schema}.ran").fetchone()[0])

        wait_until(lambda: count() >= len(jobs), timeout=60, message="every job")
        rows = raw.execute(f"SELECT id, queue, pid, overlap FROM {schema}.ran").fetchall()
        assert sorted(r[0] for r in rows) == sorted(j.id for j in jobs)  # each exactly once
        assert not any(r[3] for r in rows)
        assert len({r[2] for r in rows}) > 1  # the work was shared
        wait_until(lambda: producer.count_jobs()[JobState.DONE] == len(jobs), message="done")
        by_queue: dict[str, list[int]] = {}
        for job in sorted(producer.list_jobs(limit=1000), key=lambda j: j.done_at or 0):
            by_queue.setdefault(job.queue, []).append(job.id)
        assert all(ids == sorted(ids) for ids in by_queue.values())  # in order per queue
    finally:
        stop.set()
        for p in procs:
            p.join(30)
        producer.close()
