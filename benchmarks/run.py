"""Run the whole benchmark suite and write RESULTS.md, results.json and SUMMARY.md.

Usage (from the repository root):
    .venv/bin/python benchmarks/run.py            # N = 20,000 jobs, about 5-10 minutes
    .venv/bin/python benchmarks/run.py --quick    # N = 2,000, a smoke run of about a minute

Every case runs in its own process and its own temporary folder (under
benchmarks/out/, removed after the case); every ratio is taken within this run.
Cases run one at a time: the machine is small and shared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report
from _common import Result

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CASE_TIMEOUT = 900.0  # seconds
DURABILITIES = ("full", "normal")
KEEP_MARK = ("<!-- Sections below are written by their own scripts; "
             "benchmarks/run.py keeps them. -->")
PROCESSING = [(1, 1), (1, 4), (50, 1), (50, 4), (1000, 1), (1000, 4)]  # (queues, workers)
LITEQUEUE_MAX = 5000  # litequeue's dequeue sorts the whole table: O(n) per job


def plan(n: int, quick: bool) -> list[tuple[str, str, str, dict[str, Any], str | None]]:
    """(key, module, function, arguments, build step) for every case, in run order."""
    cases: list[tuple[str, str, str, dict[str, Any], str | None]] = []
    for d in DURABILITIES:
        for mode in ("single", "batch", "queues"):
            cases.append((f"raw/{mode}/{d}", "raw", "run", {"n": n, "durability": d,
                                                           "mode": mode}, None))
        cases.append((f"qtl/enqueue/{d}", "qtl", "enqueue", {"n": n, "durability": d}, None))
        for queues, workers in PROCESSING:
            args = {"n": n, "durability": d, "queues": queues, "workers": workers}
            cases.append((f"qtl/process/{queues}q/{workers}w/{d}", "qtl", "processing", args,
                          None))
        cases.append((f"qtl/e2e/{d}", "qtl", "end_to_end",
                      {"n": n, "durability": d, "queues": 50, "workers": 4}, None))
        for workers in (1, 4):
            cases.append((f"huey/{workers}w/{d}", "peers", "huey",
                          {"n": n, "workers": workers,
                           "durability": "default" if d == "full" else d}, None))
    # 8 producer threads enqueue while the consumer runs (huey at its default durability).
    cases.append(("qtl/e2e8/full", "qtl", "end_to_end_concurrent",
                  {"n": n, "durability": "full"}, None))
    cases.append(("huey/e2e8/default", "peers", "huey_concurrent", {"n": n}, None))
    cases.append(("persist-queue", "peers", "persist_queue", {"n": n}, None))
    cases.append(("litequeue", "peers", "litequeue", {"n": min(n, LITEQUEUE_MAX)}, None))
    samples = 100 if quick else 300
    for d in DURABILITIES:
        for where in ("in_process", "cross_process"):
            cases.append((f"latency/{where}/{d}", "latency", where,
                          {"samples": samples, "durability": d}, None))
        for driver in ("apsw", "sqlite3"):  # create_job(connection=...), then COMMIT
            cases.append((f"latency/after_commit/{driver}/{d}", "latency", "after_commit",
                          {"samples": samples, "durability": d, "driver": driver}, None))
    big_jobs, big_queues = (100_000, 10_000) if quick else (1_000_000, 100_000)
    queue_jobs = big_queues  # the queue cases hold the same number of jobs: only queues vary
    for key, jobs, queues in [("jobs-small", 1000, 10), ("jobs-big", big_jobs, 10),
                              ("queues-small", queue_jobs, 10),
                              ("queues-big", queue_jobs, big_queues)]:
        args = {"jobs": jobs, "queues": queues}
        cases.append((f"poll/{key}", "pollcost", "measure", args, "build"))
    return cases


def run_case(module: str, function: str, args: dict[str, Any], build: str | None) -> Result:
    """Run one case (after its build step, if any) in a fresh process and folder."""
    OUT.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{module}-", dir=OUT))
    try:
        result: Result = {}
        steps = ([build] if build else []) + [function]
        for step in steps:
            proc = subprocess.run(
                [sys.executable, str(HERE / "case.py"), module, step, json.dumps(args)],
                cwd=folder, capture_output=True, text=True, timeout=CASE_TIMEOUT)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                return {"error": (proc.stderr.strip().splitlines() or ["no result"])[-1]}
            result.update(json.loads(lines[-1][len("RESULT "):]))
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 2,000: a fast smoke run")
    parser.add_argument("-n", type=int, default=None, help="jobs per case (default 20,000)")
    parser.add_argument("--only", default="", help="run only cases whose key contains this")
    opts = parser.parse_args()
    n = opts.n or (2000 if opts.quick else 20_000)
    command = "python benchmarks/run.py" + (" --quick" if opts.quick else "") + (
        f" -n {opts.n}" if opts.n else "") + (f" --only {opts.only}" if opts.only else "")
    results: dict[str, Result] = {}
    started = time.time()
    for key, module, function, args, build in plan(n, opts.quick):
        if opts.only not in key:
            continue
        t0 = time.perf_counter()
        results[key] = run_case(module, function, args, build)
        print(f"{key:34} {time.perf_counter() - t0:6.1f} s  {report.brief(results[key])}",
              flush=True)
    doc = {"meta": report.machine(n, command, started), "results": results}
    doc["targets"] = report.targets(results)
    # A partial run (--only) must not replace the documented full results.
    out = HERE / "out" if opts.only else HERE
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    # Sections other scripts wrote (dashboard, Postgres, asyncio) follow a marker: kept.
    kept = ""
    if (out / "RESULTS.md").exists():
        previous = (out / "RESULTS.md").read_text()
        if KEEP_MARK in previous:
            kept = "\n" + previous[previous.index(KEEP_MARK):]
    (out / "RESULTS.md").write_text(report.markdown(doc) + kept)
    (out / "SUMMARY.md").write_text(report.summary(doc))
    print(report.targets_table(doc["targets"]))


if __name__ == "__main__":
    main()
