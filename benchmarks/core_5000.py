"""How long 5,000 no-op jobs spread over 50 queues take to run with max_workers=4.

Usage: python benchmarks/core_5000.py [--durability full|normal] [--jobs N] [--queues Q]
    [--events]  (--events: a callback counts every event, as a metrics exporter would)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

from queuetopia_lite import Job, Queuetopia


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--events", action="store_true")
    args = parser.parse_args()
    done = threading.Event()
    count = 0
    lock = threading.Lock()

    def perform(job: Job) -> None:
        nonlocal count
        with lock:
            count += 1
            if count == args.jobs:
                done.set()

    with tempfile.TemporaryDirectory() as folder:
        q = Queuetopia(os.path.join(folder, "bench.db"), perform, max_workers=args.workers,
                       durability=args.durability)
        seen: dict[str, int] = {}
        if args.events:
            for kind in ("job_started", "job_succeeded", "job_failed", "queue_blocked"):
                q.on(kind, lambda event: seen.__setitem__(event.kind, seen.get(event.kind, 0) + 1))
        started = time.perf_counter()
        q.create_jobs([(f"q{i % args.queues}", "noop", {"i": i}) for i in range(args.jobs)])
        enqueued = time.perf_counter()
        q.start()
        done.wait()
        q.stop()
        finished = time.perf_counter()
        print(f"{args.jobs} jobs over {args.queues} queues, max_workers={args.workers}, "
              f"durability={args.durability}: enqueue (one batch) {enqueued - started:.3f} s, "
              f"run {finished - enqueued:.3f} s ({args.jobs / (finished - enqueued):,.0f} jobs/s)"
              + (f", events {seen}" if args.events else ""))
        q.close()


if __name__ == "__main__":
    main()
