"""The cost of one poll/claim against a large table, and memory against the backlog.

``build`` fills a database fast with raw SQL (a recursive CTE, indexes built
after the rows), following the schema of queuetopia_lite/sqlite/migrations.sql,
with one consistent qt_queues row per queue. ``measure`` (another process, so
the build's memory does not count) times backend.step(claim=1) plus the step
saving its outcome, then lets the real scheduler run a few hundred jobs and
reports the peak RSS.
"""

from __future__ import annotations

import statistics
import time

import apsw
from _common import Result, Stopwatch, drop_job_indexes, peak_rss_mb, rate
from qtl import CountingPerformer, process

from queuetopia_lite import Queuetopia
from queuetopia_lite.backend import Success
from queuetopia_lite.sqlite import SQLiteBackend

DB = "big.db"
SCOPE = "default"
ROUNDS = 300  # measured claim + outcome steps
SCHEDULER_JOBS = 500  # jobs run by the scheduler for the memory figure

FILL_JOBS = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :jobs)
INSERT INTO qt_jobs (id, scope, queue, action, params, scheduled_at, timeout, max_backoff,
                     max_attempts, status, created_at)
SELECT i, :scope, 'q' || (i % :queues), 'noop', '{"i": ' || i || '}', :t0 + i * 1e-6, 60.0,
       86400.0, 20, 'pending', :t0 + i * 1e-6
FROM n
"""
FILL_QUEUES = """
INSERT INTO qt_queues (scope, queue, head_id, head_scheduled_at, head_due_at, ready_at)
SELECT scope, queue, min(id), scheduled_at, scheduled_at, scheduled_at
FROM qt_jobs WHERE status = 'pending' GROUP BY scope, queue
"""


def build(jobs: int, queues: int) -> Result:
    """A database with ``jobs`` pending jobs over ``queues`` queues (all runnable)."""
    SQLiteBackend(DB, durability="normal").close()  # the schema, by the real migrations
    conn = apsw.Connection(DB)
    with Stopwatch() as sw:
        conn.execute("BEGIN IMMEDIATE")
        indexes = drop_job_indexes(conn)
        # scheduled a little in the past, in id order, so every head is due now
        args = {"jobs": jobs, "queues": queues, "scope": SCOPE, "t0": time.time() - 10.0}
        conn.execute(FILL_JOBS, args)
        for sql in indexes:
            conn.execute(sql)
        conn.execute(FILL_QUEUES)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.execute("ANALYZE")
    conn.close()
    return {"build_s": sw.seconds}


def measure(jobs: int, queues: int) -> Result:
    """Median cost of a claim step plus its outcome step; then the scheduler's memory."""
    backend = SQLiteBackend(DB, durability="normal")
    costs = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        claimed = backend.step(SCOPE, time.time(), claim=1, owner="bench", lease=30.0).claimed
        backend.step(SCOPE, time.time(), outcomes=[Success(claimed[0])])
        costs.append(time.perf_counter() - t0)
    backend.close()
    rss_before = peak_rss_mb()
    performer = CountingPerformer(SCHEDULER_JOBS)
    q = Queuetopia(DB, performer, durability="normal", max_workers=4)
    seconds = process(q, performer)
    q.close()
    ordered = sorted(costs)
    return {"step_us_p50": statistics.median(costs) * 1e6,
            "step_us_p90": ordered[int(0.9 * len(ordered))] * 1e6,
            "scheduler_per_s": rate(SCHEDULER_JOBS, seconds),
            "rss_after_steps_mb": rss_before, "jobs": jobs, "queues": queues}
