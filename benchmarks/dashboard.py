"""The dashboard's cost: its overview on a 1,000,000-job / 100,000-queue database, and the
workers' throughput while it refreshes.

``build`` fills a SQLite database fast with raw SQL (a recursive CTE, indexes built after
the rows), following queuetopia_lite/sqlite/migrations.sql, like pollcost.py. Every queue
holds ``jobs // queues`` jobs: the first 60 % done (finished over the last two hours, so the
throughput chart has data), one in a hundred of those failed, the rest pending. One queue
in a hundred is blocked (its head failed and waits for its retry), one in a thousand is
running (locked by a worker), the others are runnable.

``overview`` times the dashboard's overview page (served by the real HTTP server, fetched
with urllib) and its parts; ``throughput`` runs the real scheduler over the runnable
queues with no dashboard, then while a client reloads the overview every ``refresh``
seconds (the page's own refresh is 5 s; a shorter one makes the cost visible).

Usage:
    python benchmarks/dashboard.py                  # 1,000,000 jobs, 100,000 queues
    python benchmarks/dashboard.py --jobs 100000 --queues 10000   # quicker
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Callable, Sequence

import apsw
from _common import Result, Stopwatch, drop_job_indexes, rate

from queuetopia_lite import Job, Queuetopia
from queuetopia_lite.sqlite import SQLiteBackend

SCOPE = "default"
DONE_SHARE = 6  # of every 10 jobs of a queue, the first 6 are done
HISTORY = 7200.0  # seconds: done jobs finished over the last two hours

FILL_JOBS = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :jobs - 1)
INSERT INTO qt_jobs (id, scope, queue, action, params, scheduled_at, timeout, max_backoff,
                     max_attempts, attempts, attempted_at, attempted_by, next_attempt_at,
                     done_at, error, status, lock_token, created_at)
SELECT i + 1, :scope, 'queue-' || (i % :queues), 'noop', '{"i": ' || i || '}',
       :t0 + i * 1e-6, 60.0, 86400.0, 20,
       CASE WHEN k < :done THEN 1
            WHEN k = :done AND b THEN 3 WHEN k = :done AND r THEN 1 ELSE 0 END,
       CASE WHEN k < :done THEN :now - (:ndone - i) * :spread - 0.01
            WHEN k = :done AND (b OR r) THEN :now - 5.0 END,
       CASE WHEN k < :done OR (k = :done AND (b OR r)) THEN 'bench:1' END,
       CASE WHEN k = :done AND b THEN :now + 600.0 END,
       CASE WHEN k < :done AND i % 100 <> 1 THEN :now - (:ndone - i) * :spread END,
       CASE WHEN k = :done AND b THEN 'ConnectionError: upstream refused (attempt 3)'
            WHEN k < :done AND i % 100 = 1 THEN 'ValueError: bad input' END,
       CASE WHEN k < :done AND i % 100 = 1 THEN 'failed' WHEN k < :done THEN 'done'
            WHEN k = :done AND r THEN 'running' ELSE 'pending' END,
       CASE WHEN k = :done AND r THEN 'tok-' || (i % :queues) END,
       :t0 + i * 1e-6
FROM (SELECT i, i / :queues AS k, (i % :queues) % 100 = 0 AS b,
             (i % :queues) % 1000 = 1 AS r FROM n)
"""
FILL_QUEUES = """
INSERT INTO qt_queues (scope, queue, head_id, head_scheduled_at, head_due_at, ready_at,
                       blocked_since, lock_token, locked_by, locked_at, locked_until)
SELECT scope, queue, id, scheduled_at, max(scheduled_at, coalesce(next_attempt_at, 0)),
       CASE WHEN status = 'running' THEN NULL ELSE max(scheduled_at,
            coalesce(next_attempt_at, 0)) END,
       CASE WHEN error IS NOT NULL THEN attempted_at END,
       lock_token, CASE WHEN lock_token IS NOT NULL THEN 'bench:1' END,
       CASE WHEN lock_token IS NOT NULL THEN attempted_at END,
       CASE WHEN lock_token IS NOT NULL THEN :now + 3600.0 END
FROM qt_jobs WHERE id IN (
    SELECT min(id) FROM qt_jobs WHERE status IN ('pending', 'running') GROUP BY queue)
"""


def build(path: str, jobs: int, queues: int) -> float:
    """Fill ``path``; return the seconds it took."""
    SQLiteBackend(path, durability="normal").close()  # the schema, by the real migrations
    conn = apsw.Connection(path)
    now = time.time()
    with Stopwatch() as sw:
        conn.execute("BEGIN IMMEDIATE")
        indexes = drop_job_indexes(conn)
        conn.execute(FILL_JOBS, {"jobs": jobs, "queues": queues, "scope": SCOPE,
                                 "t0": now - HISTORY - 60.0, "now": now, "done": DONE_SHARE,
                                 "ndone": DONE_SHARE * queues,
                                 "spread": HISTORY / (DONE_SHARE * queues)})
        for sql in indexes:
            conn.execute(sql)
        conn.execute(FILL_QUEUES, {"now": now})
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.execute("ANALYZE")
    conn.close()
    return sw.seconds


class Counter:
    """A no-op performer counting the jobs it ran."""

    def __init__(self) -> None:
        self.count = itertools.count()
        self.ran = 0

    def __call__(self, job: Job) -> None:
        self.ran = next(self.count) + 1


def timed(fn: Callable[[], object], rounds: int = 5) -> tuple[float, float]:
    """The first call's and the median later call's milliseconds."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples[0], statistics.median(samples[1:])


def start_dashboard(path: str) -> tuple[subprocess.Popen[str], str]:
    """The `dashboard` command in its own process, as an operator runs it; its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "queuetopia_lite", "--db", path,
                             "dashboard", "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    match = re.search(r"at (http://\S+/) ", proc.stdout.readline())
    assert match is not None, "the dashboard did not start"
    return proc, match.group(1)


def fetch(url: str) -> int:
    """GET a page whole; its size in bytes."""
    with urllib.request.urlopen(url, timeout=60) as reply:
        return len(reply.read())


def overview(path: str, url: str, jobs: int) -> Result:
    """Milliseconds: the whole overview over HTTP, other pages, and the overview's reads."""
    backend = SQLiteBackend(path, migrate=False)
    now = time.time()
    parts = {
        "overview page (HTTP, rendered)": lambda: fetch(url),
        "overview page 1,000 (offset 49,950)": lambda: fetch(url + "?page=1000"),
        "overview search 'ue-4242'": lambda: fetch(url + "?q=ue-4242"),
        "overview only failing": lambda: fetch(url + "?only=failing"),
        "queue page (a blocked queue)": lambda: fetch(url + "queues/queue-100"),
        "job page (a blocked head)": lambda: fetch(url + f"jobs/{DONE_SHARE * jobs // 10 + 1}"),
        "read: count_jobs": lambda: backend.count_jobs(SCOPE, now),
        "read: queue_page (first 50)": lambda: backend.queue_page(SCOPE, now),
        "read: job_activity (60 x 1 min)": lambda: backend.job_activity(
            SCOPE, now, since=now - 3600, bucket=60.0),
    }
    out: Result = {}
    for name, fn in parts.items():
        first, median = timed(fn)
        out[name] = {"first_ms": round(first, 1), "median_ms": round(median, 1)}
    backend.close()
    return out


def throughput(path: str, url: str, window: float, refreshes: Sequence[float]) -> Result:
    """Jobs per second of the real scheduler (4 workers) with the dashboard idle, then
    with a client loading the overview every ``refresh`` seconds."""
    counter = Counter()
    q = Queuetopia(path, counter, durability="normal", max_workers=4, migrate=False)
    q.start()
    time.sleep(2.0)  # warm up: the first steps, the caches
    out: Result = {}
    try:
        for refresh in (0.0, *refreshes, 0.0):
            stop = threading.Event()
            loads: list[float] = []

            def client(refresh: float = refresh, stop: threading.Event = stop,
                       loads: list[float] = loads) -> None:
                while not stop.wait(refresh):
                    t0 = time.perf_counter()
                    fetch(url)
                    loads.append((time.perf_counter() - t0) * 1000)

            thread = threading.Thread(target=client, daemon=True) if refresh else None
            start_count, t0 = counter.ran, time.perf_counter()
            if thread:
                thread.start()
            time.sleep(window)
            stop.set()
            ran, seconds = counter.ran - start_count, time.perf_counter() - t0
            if thread:
                thread.join()
            key = f"refresh every {refresh:g} s" if refresh else (
                "no dashboard" if "no dashboard" not in out else "no dashboard, again")
            out[key] = {"jobs_per_s": round(rate(ran, seconds)),
                        "page_loads": len(loads),
                        "page_ms_median": round(statistics.median(loads), 1) if loads else None}
    finally:
        q.close()
    return out


def main() -> None:
    """Build the database, measure, print a Markdown table (and JSON with --json)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--queues", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=8.0, help="seconds per throughput run")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dash.db")
        result: Result = {"jobs": args.jobs, "queues": args.queues,
                          "build_s": round(build(path, args.jobs, args.queues), 1)}
        proc, url = start_dashboard(path)
        try:
            result["overview"] = overview(path, url, args.jobs)
            result["throughput"] = throughput(path, url, args.window, (1.0, 5.0))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    print(f"{args.jobs:,} jobs, {args.queues:,} queues (built in {result['build_s']} s)\n")
    print("| what | first ms | median ms |\n|---|---|---|")
    for name, figures in result["overview"].items():
        print(f"| {name} | {figures['first_ms']} | {figures['median_ms']} |")
    print("\n| workers (4, no-op jobs) | jobs/s | overview loads | load median ms |\n"
          "|---|---|---|---|")
    for name, figures in result["throughput"].items():
        print(f"| {name} | {figures['jobs_per_s']:,} | {figures['page_loads']} | "
              f"{figures['page_ms_median'] or '-'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
