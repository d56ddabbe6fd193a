"""Wake-up latency: from the call of create_job to the start of perform.

In-process: this process creates a job, its running scheduler starts it.
Cross-process: a child process creates jobs on the same file, stamped with
time.perf_counter() (CLOCK_MONOTONIC on Linux: one clock for every process).
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time

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


def produce(samples: int, durability: str) -> None:
    """The child: create jobs one at a time, stamped just before create_job."""
    q = Queuetopia("lat.db", durability=durability)
    for i in range(samples):
        q.create_job(f"q{i % 4}", "x", {"t": time.perf_counter()})
        time.sleep(random.uniform(*PAUSE) + 0.003)  # also leave time for the start
    q.close()


if __name__ == "__main__":
    produce(int(sys.argv[1]), sys.argv[2])
