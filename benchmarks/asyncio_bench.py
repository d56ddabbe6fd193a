"""asyncio: async actions against sync ones, and AsyncQueuetopia's calls from a loop.

Cases (each in its own process, on a fresh SQLite file, durability normal):

- ``noop``: N jobs over 50 queues (default max_workers=8), each awaiting
  ``asyncio.sleep(0)``, against the same jobs as sync no-op actions.
- ``io``: 1,000 queues, each job waits 10 ms, max_workers=1000: async actions
  awaiting ``asyncio.sleep(0.01)`` against sync actions in ``time.sleep(0.01)``.
  Peak thread count (sampled every 20 ms) and peak RSS show what each holds.
- ``call``: ``await aq.create_job(...)`` one after another from a coroutine, on
  AsyncQueuetopia's own small thread pool against ``asyncio.to_thread``.
- ``gap``: the longest pause of a ticker task on the loop while one
  ``create_job`` waits 1.5 s for another process's write lock: through
  AsyncQueuetopia, and the sync Queuetopia called on the loop (the bug of issue 11).

- ``pg_calls`` (with ``--postgres URL``): ``await aq.create_job`` on Postgres
  through our threads, against psycopg's async driver (``connection=`` an
  AsyncConnection, one transaction per job).

Run: ``.venv/bin/python benchmarks/asyncio_bench.py [--jobs N] [--io-jobs M]
[--postgres URL] [--json F]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

from _common import Result, peak_rss_mb, percentiles_ms, rate

from queuetopia_lite import AsyncQueuetopia, Job, Performer, Queuetopia


def process(kind: str, jobs: int, queues: int, workers: int, wait: float) -> Result:
    """Pre-fill ``jobs`` over ``queues``, then time the scheduler running them all."""
    done = threading.Event()
    count = [0]
    lock = threading.Lock()

    def finished() -> None:
        with lock:
            count[0] += 1
            if count[0] == jobs:
                done.set()

    p = Performer()

    @p.action("job")
    async def async_job(job: Job) -> None:
        await asyncio.sleep(wait)
        finished()

    @p.action("sync")
    def sync_job(job: Job) -> None:
        if wait:
            time.sleep(wait)
        finished()

    action = "job" if kind == "async" else "sync"
    with tempfile.TemporaryDirectory() as folder:
        q = Queuetopia(os.path.join(folder, "jobs.db"), p, durability="normal",
                       max_workers=workers)
        for start in range(0, jobs, 1000):
            q.create_jobs([(f"q{n % queues}", action) for n in range(start,
                                                                      min(jobs, start + 1000))])
        threads = [threading.active_count()]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.02):
                threads.append(threading.active_count())
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rss_before = peak_rss_mb()
        t0 = time.perf_counter()
        q.start()
        done.wait()
        seconds = time.perf_counter() - t0
        sampling.set()
        q.stop()
        q.close()
    return {"kind": kind, "jobs": jobs, "queues": queues, "max_workers": workers,
            "wait_ms": wait * 1000, "seconds": seconds, "jobs_per_s": rate(jobs, seconds),
            "peak_threads": max(threads), "rss_before_mb": rss_before,
            "peak_rss_mb": peak_rss_mb()}


class ToThread(AsyncQueuetopia):
    """The alternative measured: every call through asyncio.to_thread."""

    async def _call(self, fn: Callable[[Queuetopia], Any]) -> Any:
        return await asyncio.to_thread(lambda: fn(self._open()))


def calls(kind: str, samples: int) -> Result:
    """Latency of ``await aq.create_job`` (and get_job) one after another."""
    async def main(path: str) -> Result:
        cls = ToThread if kind == "to_thread" else AsyncQueuetopia
        aq = cls(path, durability="normal")
        await aq.count_jobs()
        created, read = [], []
        for n in range(samples):
            t0 = time.perf_counter()
            job = await aq.create_job(f"q{n % 50}", "x")
            t1 = time.perf_counter()
            await aq.get_job(job.id)
            created.append(t1 - t0)
            read.append(time.perf_counter() - t1)
        await aq.close()
        return {"kind": kind, "create_job": percentiles_ms(created),
                "get_job": percentiles_ms(read)}

    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(main(os.path.join(folder, "jobs.db")))


def pg_calls(kind: str, samples: int, url: str) -> Result:
    """Postgres: ``await aq.create_job`` through our threads, against psycopg's async
    driver (each job in its own transaction on an AsyncConnection, ``connection=conn``)."""
    import uuid

    import psycopg

    async def main() -> Result:
        schema = f"qtl_bench_{uuid.uuid4().hex[:8]}"
        aq = AsyncQueuetopia(f"{url}?schema={schema}")
        await aq.count_jobs()
        created = []
        try:
            async with await psycopg.AsyncConnection.connect(url) as conn:
                for n in range(samples):
                    t0 = time.perf_counter()
                    if kind == "async driver":
                        async with conn.transaction():
                            await aq.create_job(f"q{n % 50}", "x", connection=conn)
                    else:
                        await aq.create_job(f"q{n % 50}", "x")
                    created.append(time.perf_counter() - t0)
            await aq.close()
        finally:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        return {"kind": kind, "create_job": percentiles_ms(created)}

    return asyncio.run(main())


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def gap(kind: str, hold: float) -> Result:
    """The longest pause of a 5 ms ticker while create_job waits for another process."""
    async def main(path: str) -> Result:
        aq = AsyncQueuetopia(path, durability="normal")
        await aq.count_jobs()
        q = aq.queuetopia
        child = subprocess.Popen([sys.executable, "-c", HOLDER, path, str(hold)], text=True,
                                 stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        if kind == "AsyncQueuetopia":
            await aq.create_job("q", "x")
        else:
            q.create_job("q", "x")  # blocks the loop: what issue 11 found
        waited = time.perf_counter() - t0
        await asyncio.sleep(0.05)
        tick.cancel()
        child.wait()
        await aq.close()
        return {"kind": kind, "waited_s": waited, "max_gap_ms": max(gaps) * 1000,
                "ticks": len(gaps)}

    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(main(os.path.join(folder, "jobs.db")))


CASES: dict[str, Callable[..., Result]] = {"process": process, "calls": calls, "gap": gap,
                                           "pg_calls": pg_calls}


def in_child(case: str, *args: Any) -> Result:
    """Run one case in a fresh process (its own threads and peak RSS)."""
    out = subprocess.run([sys.executable, __file__, "--case", case, json.dumps(args)],
                         capture_output=True, text=True, check=True)
    result: Result = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs of the no-op case")
    parser.add_argument("--io-jobs", type=int, default=5_000, help="jobs of the 10 ms case")
    parser.add_argument("--samples", type=int, default=2_000, help="calls timed per kind")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL"),
                        help="a postgresql:// URL: also time create_job there")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(CASES[args.case](*json.loads(args.args))))
        return
    results: dict[str, Any] = {"noop": [], "io": [], "calls": [], "gap": [], "pg_calls": []}
    print("| case | actions | jobs | queues | max_workers | jobs/s | peak threads | "
          "peak RSS MiB |\n|---|---|---|---|---|---|---|---|")
    for name, jobs, queues, workers, wait in (("noop", args.jobs, 50, 8, 0.0),
                                              ("io", args.io_jobs, 1000, 1000, 0.01)):
        for kind in ("async", "sync"):
            r = in_child("process", kind, jobs, queues, workers, wait)
            results[name].append(r)
            print(f"| {name} | {kind} | {jobs:,} | {queues:,} | {workers} | "
                  f"{r['jobs_per_s']:,.0f} | {r['peak_threads']} | {r['peak_rss_mb']:.1f} |")
    print("\n| await aq.create_job via | create p50 ms | create p99 ms | get_job p50 ms |"
          "\n|---|---|---|---|")
    for kind in ("own pool", "to_thread"):
        r = in_child("calls", kind, args.samples)
        results["calls"].append(r)
        print(f"| {kind} | {r['create_job']['p50_ms']:.3f} | {r['create_job']['p99_ms']:.3f} | "
              f"{r['get_job']['p50_ms']:.3f} |")
    for kind in ("own pool", "async driver") if args.postgres else ():
        r = in_child("pg_calls", kind, args.samples, args.postgres)
        results["pg_calls"].append(r)
        print(f"| Postgres, {kind} | {r['create_job']['p50_ms']:.3f} | "
              f"{r['create_job']['p99_ms']:.3f} | - |")
    print("\n| create_job waiting 1.5 s for another process's lock | waited s | "
          "longest loop pause ms |\n|---|---|---|")
    for kind in ("AsyncQueuetopia", "sync Queuetopia on the loop"):
        r = in_child("gap", kind, 1.5)
        results["gap"].append(r)
        print(f"| {kind} | {r['waited_s']:.2f} | {r['max_gap_ms']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
