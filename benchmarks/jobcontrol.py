"""Job control costs (SPEC 12): enqueue with a unique key against without; processing
with 100 periodic definitions against none. Prints a table and writes jobcontrol.json.

    .venv/bin/python benchmarks/jobcontrol.py [--n 2000] [--rounds 3] [--postgres URL]

Runs alternate (A, B, A, B...) in fresh databases under a temporary folder, and the
median of each is compared: the machine is shared, so only ratios within a run count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import uuid
from typing import Any, Callable

from _common import Stopwatch, rate

from queuetopia_lite import Job, Performer, Queuetopia

QUEUES = 10
PERIODICS = 100


def enqueue(target: Callable[[], str], n: int, keyed: bool) -> float:
    """create_job one by one, each with a fresh unique key or none; jobs per second."""
    q = Queuetopia(target(), durability="normal")
    with Stopwatch() as sw:
        for i in range(n):
            q.create_job(f"q{i % QUEUES}", "noop", {"i": i},
                         unique_key=f"key-{i}" if keyed else None)
    q.close()
    return rate(n, sw.seconds)


def enqueue_duplicates(target: Callable[[], str], n: int) -> float:
    """create_job one by one with keys a waiting job holds (each returns the waiting one)."""
    q = Queuetopia(target(), durability="normal")
    for i in range(QUEUES):
        q.create_job("dup", "noop", unique_key=f"dup-{i}")
    with Stopwatch() as sw:
        for i in range(n):
            q.create_job("dup", "noop", unique_key=f"dup-{i % QUEUES}")
    q.close()
    return rate(n, sw.seconds)


def processing(target: Callable[[], str], n: int, periodics: int) -> float:
    """Run n pre-filled jobs over 10 queues with ``periodics`` definitions ticking."""
    done = threading.Event()
    count = iter(range(1, n + 1))
    performer = Performer()

    def noop(job: Job) -> None:
        if next(count) == n:
            done.set()

    performer.register("noop", noop)
    q = Queuetopia(target(), performer, durability="normal", max_workers=4)
    for i in range(periodics):  # every minute: each process ticks each one once a minute
        q.periodic(f"p{i}", "* * * * *", f"periodic{i}", "noop")
    for start in range(0, n, 1000):
        q.create_jobs([(f"q{i % QUEUES}", "noop") for i in range(start, min(n, start + 1000))])
    with Stopwatch() as sw:
        q.start()
        if not done.wait(600):
            raise RuntimeError("the jobs did not all run in time")
    q.stop()
    q.close()
    return rate(n, sw.seconds)


def cases(target: Callable[[], str], n: int, rounds: int) -> list[dict[str, Any]]:
    """The three comparisons on one backend."""
    return [
        compare("enqueue: unique_key (new keys) / none", rounds,
                lambda: enqueue(target, n, False), lambda: enqueue(target, n, True)),
        compare("enqueue: unique_key held (returns the waiting job) / none", rounds,
                lambda: enqueue(target, n, False), lambda: enqueue_duplicates(target, n)),
        compare(f"process: {PERIODICS} periodic definitions / none", rounds,
                lambda: processing(target, n, 0), lambda: processing(target, n, PERIODICS)),
    ]


def compare(name: str, runs: int, a: Callable[[], float], b: Callable[[], float]) -> dict[str, Any]:
    """Alternate a and b ``runs`` times; medians and the ratio b / a."""
    first, second = [], []
    for _ in range(runs):
        first.append(a())
        second.append(b())
    ma, mb = statistics.median(first), statistics.median(second)
    return {"case": name, "a_per_s": ma, "b_per_s": mb, "ratio": mb / ma,
            "a_runs": first, "b_runs": second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="also run on this database")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="qtl-jobcontrol-")
    targets: dict[str, Callable[[], str]] = {
        "sqlite": lambda: os.path.join(folder, f"{uuid.uuid4().hex}.db")}
    schemas: list[str] = []  # dropped at the end
    if args.postgres:
        sep = "&" if "?" in args.postgres else "?"

        def postgres_target() -> str:
            schemas.append(f"qtl_bench_{uuid.uuid4().hex[:10]}")
            return f"{args.postgres}{sep}schema={schemas[-1]}"
        targets["postgres"] = postgres_target
    try:
        rows = run_all(targets, args.n, args.rounds)
    finally:
        if schemas:
            import psycopg

            with psycopg.connect(args.postgres, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())
    print(f"{'backend':<9} {'case':<58} {'A /s':>9} {'B /s':>9} {'B/A':>6}")
    for row in rows:
        print(f"{row['backend']:<9} {row['case']:<58} {row['a_per_s']:>9.0f} "
              f"{row['b_per_s']:>9.0f} {row['ratio']:>6.2f}")
    with open("jobcontrol.json", "w", encoding="utf-8") as out:
        json.dump({"n": args.n, "rounds": args.rounds, "rows": rows}, out, indent=2)


def run_all(targets: dict[str, Callable[[], str]], n: int, rounds: int) -> list[dict[str, Any]]:
    """Every comparison on every backend."""
    rows = []
    for backend, target in targets.items():
        rows += [{"backend": backend, **row} for row in cases(target, n, rounds)]
    return rows


if __name__ == "__main__":
    main()
