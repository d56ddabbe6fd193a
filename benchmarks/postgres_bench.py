"""Postgres benchmark: queuetopia_lite against procrastinate and pgqueuer on one server.

A plain script, not a test. For each library, on a fresh database of its own:

- throughput: a producer enqueues N no-op jobs (batches of 100) while one worker
  process runs them; jobs/s from the first enqueue to the last job finished.
- wake-up latency: an idle worker; a producer on another connection enqueues one
  job at a time; latency is from just before the enqueue call (so it includes the
  insert and its commit) to the start of the job.

queuetopia_lite jobs are spread over QUEUES queues (each queue runs one job at
a time, by design); the peers have no such ordering. Each library runs at most
WORKERS jobs at once: queuetopia_lite max_workers, procrastinate concurrency,
pgqueuer max_concurrent_tasks (with batch_size WORKERS // 2, the largest it
accepts for that cap).

pgqueuer runs on asyncpg, its default driver (its CLI tries asyncpg first), and
again on psycopg ("pgqueuer-psycopg"). pgqueuer's psycopg driver listens on the
one connection it also queries through, inside ``notifies(timeout=1.0)``, which
holds the connection's lock: the dequeue a notification triggers waits for that
timeout, so its wake-up is about one second (that driver's design, not this
harness's). "pgqueuer-wide" is the setting this harness used before: batches of
WORKERS and up to 4 * WORKERS jobs at once.

    .venv/bin/pip install -e '.[postgres,bench-postgres]'
    .venv/bin/python benchmarks/postgres_bench.py [--jobs 20000] [--samples 200] [--workers 16]

Prints a table and writes benchmarks/out/postgres_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable

import psycopg

SERVER = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
WORKERS = 16  # concurrent jobs per worker process
QUEUES = 1000  # queuetopia_lite queues the jobs are spread over
BATCH = 100  # jobs per enqueue call
TIMEOUT = 600.0  # seconds: give up on a run


def fresh_database(name: str) -> str:
    """Drop and create database ``name``; return its URL."""
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{SERVER}/{name}"


def summary(latencies: list[float]) -> dict[str, float]:
    """Median, p90 and p99 in milliseconds."""
    ms = sorted(x * 1000 for x in latencies)
    return {"median_ms": statistics.median(ms), "p90_ms": ms[int(len(ms) * 0.9)],
            "p99_ms": ms[min(int(len(ms) * 0.99), len(ms) - 1)]}


def pause() -> float:
    """A random idle gap between latency samples, so the worker is asleep."""
    return random.uniform(0.01, 0.03)


# -- queuetopia_lite -------------------------------------------------------------


def bench_queuetopia(jobs: int, samples: int) -> dict[str, Any]:
    from queuetopia_lite import Job, Queuetopia

    url = fresh_database("qtl_bench_queuetopia")
    count = 0
    lock = threading.Lock()
    all_done = threading.Event()
    started = threading.Event()
    latencies: list[float] = []

    def perform(job: Job) -> None:
        nonlocal count
        if job.action == "latency":
            latencies.append(time.time() - job.params["t"])
            started.set()
            return
        with lock:
            count += 1
            if count == jobs:
                all_done.set()

    worker = Queuetopia(url, perform, max_workers=WORKERS, poll_interval=5.0)
    producer = Queuetopia(url)  # its own pool: wake-ups come through NOTIFY
    worker.start()
    try:
        t0 = time.perf_counter()
        for start in range(0, jobs, BATCH):
            producer.create_jobs([(f"q{i % QUEUES}", "noop", {"i": i})
                                  for i in range(start, min(start + BATCH, jobs))])
        enqueued = time.perf_counter() - t0
        assert all_done.wait(TIMEOUT), "queuetopia_lite did not finish"
        elapsed = time.perf_counter() - t0
        for _ in range(samples):
            time.sleep(pause())
            started.clear()
            producer.create_job("latency", "latency", {"t": time.time()})
            assert started.wait(30), "a latency job did not start"
    finally:
        worker.close()
        producer.close()
    return {"jobs_per_s": jobs / elapsed, "enqueue_per_s": jobs / enqueued,
            **summary(latencies)}


# -- pgqueuer --------------------------------------------------------------------


async def _bench_pgqueuer(jobs: int, samples: int, driver: str,
                          wide: bool = False) -> dict[str, Any]:
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver, PsycopgDriver
    from pgqueuer.models import Job
    from pgqueuer.queries import Queries

    url = fresh_database("qtl_bench_pgqueuer")
    if driver == "asyncpg":
        import asyncpg

        worker_conn: Any = await asyncpg.connect(url)
        producer_conn: Any = await asyncpg.connect(url)
        make_driver: Any = AsyncpgDriver
    else:
        worker_conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        producer_conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        make_driver = PsycopgDriver
    producer = Queries(make_driver(producer_conn))
    await producer.install()
    pgq = PgQueuer(make_driver(worker_conn))
    count = 0
    all_done = asyncio.Event()
    started = asyncio.Event()
    latencies: list[float] = []

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        nonlocal count
        count += 1
        if count == jobs:
            all_done.set()

    @pgq.entrypoint("latency")
    async def latency(job: Job) -> None:
        assert job.payload is not None
        latencies.append(time.time() - float(job.payload.decode()))
        started.set()

    # At most WORKERS jobs at once, as the others; pgqueuer wants batches of at most half.
    # wide: this harness's earlier setting, batches of WORKERS and 4 * WORKERS at once.
    batch, most = (WORKERS, 4 * WORKERS) if wide else (WORKERS // 2, WORKERS)
    runner = asyncio.create_task(pgq.run(batch_size=batch, max_concurrent_tasks=most))
    await asyncio.sleep(0.5)  # let it LISTEN
    try:
        t0 = time.perf_counter()
        for start in range(0, jobs, BATCH):
            n = min(BATCH, jobs - start)
            await producer.enqueue(["noop"] * n, [None] * n, [0] * n)
        enqueued = time.perf_counter() - t0
        await asyncio.wait_for(all_done.wait(), TIMEOUT)
        elapsed = time.perf_counter() - t0
        for _ in range(samples):
            await asyncio.sleep(pause())
            started.clear()
            await producer.enqueue("latency", str(time.time()).encode())
            await asyncio.wait_for(started.wait(), 30)
    finally:
        pgq.shutdown.set()
        await asyncio.wait_for(runner, 30)
        await worker_conn.close()
        await producer_conn.close()
    return {"jobs_per_s": jobs / elapsed, "enqueue_per_s": jobs / enqueued,
            **summary(latencies)}


# -- procrastinate ---------------------------------------------------------------


async def _bench_procrastinate(jobs: int, samples: int) -> dict[str, Any]:
    import procrastinate

    url = fresh_database("qtl_bench_procrastinate")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    producer_app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    count = 0
    all_done = asyncio.Event()
    started = asyncio.Event()
    latencies: list[float] = []

    @app.task(name="noop")
    async def noop(i: int) -> None:
        nonlocal count
        count += 1
        if count == jobs:
            all_done.set()

    @app.task(name="latency")
    async def latency(t: float) -> None:
        latencies.append(time.time() - t)
        started.set()

    async with app.open_async(), producer_app.open_async():
        await app.schema_manager.apply_schema_async()
        defer_noop = producer_app.configure_task("noop")
        runner = asyncio.create_task(app.run_worker_async(
            concurrency=WORKERS, install_signal_handlers=False, delete_jobs="never"))
        await asyncio.sleep(0.5)  # let it LISTEN
        try:
            t0 = time.perf_counter()
            for start in range(0, jobs, BATCH):
                await defer_noop.batch_defer_async(
                    *[{"i": i} for i in range(start, min(start + BATCH, jobs))])
            enqueued = time.perf_counter() - t0
            await asyncio.wait_for(all_done.wait(), TIMEOUT)
            elapsed = time.perf_counter() - t0
            for _ in range(samples):
                await asyncio.sleep(pause())
                started.clear()
                await producer_app.configure_task("latency").defer_async(t=time.time())
                await asyncio.wait_for(started.wait(), 30)
        finally:
            runner.cancel()
            try:
                await runner
            except asyncio.CancelledError:
                pass
    return {"jobs_per_s": jobs / elapsed, "enqueue_per_s": jobs / enqueued,
            **summary(latencies)}


def bench_pgqueuer(jobs: int, samples: int) -> dict[str, Any]:
    return asyncio.run(_bench_pgqueuer(jobs, samples, "asyncpg"))


def bench_pgqueuer_wide(jobs: int, samples: int) -> dict[str, Any]:
    return asyncio.run(_bench_pgqueuer(jobs, samples, "asyncpg", wide=True))


def bench_pgqueuer_psycopg(jobs: int, samples: int) -> dict[str, Any]:
    return asyncio.run(_bench_pgqueuer(jobs, samples, "psycopg"))


def bench_procrastinate(jobs: int, samples: int) -> dict[str, Any]:
    return asyncio.run(_bench_procrastinate(jobs, samples))


BENCHES: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "queuetopia_lite": bench_queuetopia,
    "pgqueuer": bench_pgqueuer,
    "pgqueuer-wide": bench_pgqueuer_wide,
    "pgqueuer-psycopg": bench_pgqueuer_psycopg,
    "procrastinate": bench_procrastinate,
}


def main() -> None:
    global WORKERS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    parser.add_argument("--workers", type=int, default=16,
                        help="jobs each library runs at once")
    parser.add_argument("--out", default="benchmarks/out/postgres_bench.json")
    args = parser.parse_args()
    WORKERS = args.workers
    results: dict[str, Any] = {}
    for name in args.only or BENCHES:
        print(f"running {name}...", flush=True)
        results[name] = BENCHES[name](args.jobs, args.samples)
    with psycopg.connect(f"{SERVER}/postgres") as conn:
        server = conn.execute("SHOW server_version").fetchone()
    print(f"\n{args.jobs} no-op jobs, {WORKERS} concurrent jobs per worker, one worker "
          f"process; {args.samples} wake-up samples; PostgreSQL {server[0] if server else '?'}")
    header = f"{'library':<17} {'jobs/s':>9} {'enqueue/s':>10} {'wake p50':>9} " \
             f"{'p90':>8} {'p99':>8}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(f"{name:<17} {r['jobs_per_s']:>9.0f} {r['enqueue_per_s']:>10.0f} "
              f"{r['median_ms']:>7.2f}ms {r['p90_ms']:>6.2f}ms {r['p99_ms']:>6.2f}ms")
    print()
    for peer in ("pgqueuer", "pgqueuer-wide", "pgqueuer-psycopg"):
        if "queuetopia_lite" in results and peer in results:
            ratio = results["queuetopia_lite"]["jobs_per_s"] / results[peer]["jobs_per_s"]
            print(f"queuetopia_lite / {peer} throughput: {ratio:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"jobs": args.jobs, "samples": args.samples, "workers": WORKERS,
                               "queues": QUEUES, "python": platform.python_version(),
                               "postgres": server[0] if server else None,
                               "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
