"""Wake-up latency: from the call of create_job to the start of perform.

In-process: this process creates a job, its running scheduler starts it.
Cross-process: a child process creates jobs on the same file, stamped with
time.perf_counter() (CLOCK_MONOTONIC on Linux: one clock for every process).
After commit: the application creates each job in its own transaction on its own
connection (create_job(connection=...)); latency runs from the return of its
COMMIT to the start of perform, which only the commit can trigger (no notify()).
Run ``python benchmarks/latency.py after-commit [SAMPLES]`` for those cases alone
(SQLite on both drivers, and Postgres at $BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable

import apsw
from _common import Result, percentiles_ms

from queuetopia_lite import Job, Queuetopia

PAUSE = (0.002, 0.006)  # seconds between jobs, so the scheduler is idle at each create


class Recorder:
    """Performer noting latencies; ``done`` set after ``samples`` jobs."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.latencies: list[float] = []
        self.started = threading.Event()
        self.done = threading.Event()

    def __call__(self, job: Job) -> None:
        now = time.perf_counter()
        if "t" in job.params:
            self.latencies.append(now - float(job.params["t"]))
            if len(self.latencies) >= self.samples:
                self.done.set()
        self.started.set()


def in_process(samples: int, durability: str) -> Result:
    rec = Recorder(samples)
    q = Queuetopia("lat.db", rec, durability=durability, max_workers=4)
    with q:
        time.sleep(0.2)  # let the scheduler settle
        for i in range(samples):
            rec.started.clear()
            t0 = time.perf_counter()
            q.create_job(f"q{i % 4}", "x", {"t": t0})
            rec.started.wait(5.0)
            time.sleep(random.uniform(*PAUSE))
        rec.done.wait(5.0)
    q.close()
    return percentiles_ms(rec.latencies)


def cross_process(samples: int, durability: str) -> Result:
    rec = Recorder(samples)
    q = Queuetopia("lat.db", rec, durability=durability, max_workers=4)
    with q:
        time.sleep(0.2)
        child = subprocess.run([sys.executable, __file__, str(samples), durability],
                               check=True, timeout=300)
        assert child.returncode == 0
        rec.done.wait(10.0)
    q.close()
    return percentiles_ms(rec.latencies)


class Starts:
    """Performer noting when each job starts; ``started`` set at each."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.started = threading.Event()

    def __call__(self, job: Job) -> None:
        self.at[job.id] = time.perf_counter()
        self.started.set()


def _after_commit(q: Queuetopia, starts: Starts, samples: int,
                  enqueue: Callable[[str], Job]) -> Result:
    """Create ``samples`` jobs one at a time, each in its own application transaction."""
    committed: dict[int, float] = {}
    with q:
        time.sleep(0.2)  # let the scheduler settle
        for i in range(samples):
            starts.started.clear()
            job = enqueue(f"q{i % 4}")
            committed[job.id] = time.perf_counter()
            starts.started.wait(5.0)
            time.sleep(random.uniform(*PAUSE))
    q.close()
    # A start may come a hair before our stamp (the commit is visible before COMMIT
    # returns to Python): those count as zero.
    return percentiles_ms([max(0.0, starts.at[j] - t) for j, t in committed.items()
                           if j in starts.at])


def after_commit(samples: int, durability: str, driver: str = "apsw") -> Result:
    """SQLite: the application's own connection, BEGIN IMMEDIATE ... COMMIT."""
    starts = Starts()
    q = Queuetopia("lat.db", starts, durability=durability, max_workers=4, driver=driver)
    app: Any
    if driver == "sqlite3":
        # Imported here: with sqlite3 loaded, every enqueue of an apsw Queuetopia also
        # checks that no second SQLite library has the file (about 0.5 ms on Linux),
        # which the other cases must not pay.
        import sqlite3

        app = sqlite3.connect("lat.db", isolation_level=None, timeout=5.0)
    else:
        app = apsw.Connection("lat.db")
        app.set_busy_timeout(5000)

    def enqueue(queue: str) -> Job:
        app.execute("BEGIN IMMEDIATE")
        job = q.create_job(queue, "x", connection=app)
        app.execute("COMMIT")
        return job

    result = _after_commit(q, starts, samples, enqueue)
    app.close()
    return result


def after_commit_postgres(samples: int, url: str) -> Result:
    """Postgres: the application's psycopg connection, NOTIFY delivered at COMMIT."""
    import psycopg

    schema = f"qtl_latency_{uuid.uuid4().hex[:8]}"
    starts = Starts()
    q = Queuetopia(f"{url}?schema={schema}", starts, max_workers=4)
    try:
        with psycopg.connect(url, autocommit=True) as app:
            def enqueue(queue: str) -> Job:
                with app.transaction():
                    return q.create_job(queue, "x", connection=app)
            return _after_commit(q, starts, samples, enqueue)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main_after_commit(samples: int) -> None:
    """Print the after-commit wake-up figures (a small run: a loaded machine is noisy)."""
    url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    rows = []
    for driver in ("apsw", "sqlite3"):
        for durability in ("normal", "full"):
            with tempfile.TemporaryDirectory() as folder:
                os.chdir(folder)
                rows.append((f"sqlite {driver} {durability}",
                             after_commit(samples, durability, driver)))
    rows.append(("postgres", after_commit_postgres(samples, url)))
    print(f"wake-up after the application's COMMIT, {samples} samples, in-process scheduler")
    for name, r in rows:
        print(f"{name:<22} p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms  "
              f"p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:6.2f} ms")


def produce(samples: int, durability: str) -> None:
    """The child: create jobs one at a time, stamped just before create_job."""
    q = Queuetopia("lat.db", durability=durability)
    for i in range(samples):
        q.create_job(f"q{i % 4}", "x", {"t": time.perf_counter()})
        time.sleep(random.uniform(*PAUSE) + 0.003)  # also leave time for the start
    q.close()


if __name__ == "__main__":
    if sys.argv[1] == "after-commit":
        main_after_commit(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    else:
        produce(int(sys.argv[1]), sys.argv[2])
