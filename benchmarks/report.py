"""Tables and target checks for the benchmark suite (RESULTS.md, SUMMARY.md)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from typing import Any

import apsw
from _common import Result

DURABILITIES = ("full", "normal")
PACKAGES = ("apsw", "huey", "persist-queue", "litequeue")


def machine(n: int, command: str, started: float) -> Result:
    """Where, when and with what the suite ran."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {p: _version(p) for p in PACKAGES}
    versions["sqlite"] = apsw.sqlite_lib_version()
    versions["python"] = platform.python_version()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False).stdout.strip()
    return {"n": n, "command": command, "cpu": cpu, "cores": os.cpu_count(),
            "system": platform.platform(), "versions": versions, "queuetopia_lite_rev": rev,
            "date": datetime.datetime.fromtimestamp(started, datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC")}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def brief(r: Result) -> str:
    """One line for the progress output."""
    if "error" in r:
        return "ERROR " + r["error"]
    keys = [k for k in r if k.endswith(("_per_s", "_ms", "_us_p50")) and k != "mean_ms"]
    return "  ".join(f"{k}={r[k]:,.1f}" for k in keys[:5])


def _get(results: dict[str, Result], key: str, field: str) -> float | None:
    value = results.get(key, {}).get(field)
    return None if value is None else float(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def targets(results: dict[str, Result]) -> list[Result]:
    """Every target (issues 5 and 9) with its measured value and whether it is met."""
    out: list[Result] = []

    def add(name: str, value: float | None, goal: float, higher: bool, unit: str = "x") -> None:
        met = None if value is None else (value >= goal if higher else value <= goal)
        out.append({"target": name, "value": value, "goal": goal, "unit": unit,
                    "higher_is_better": higher, "met": met})

    for d in DURABILITIES:
        qtl = results.get(f"qtl/enqueue/{d}", {})
        add(f"enqueue one by one / raw single insert ({d})",
            _ratio(qtl.get("enqueue_per_s"), _get(results, f"raw/single/{d}", "enqueue_per_s")),
            0.8, True)
        add(f"create_jobs batches of 1,000 / raw batched insert ({d})",
            _ratio(qtl.get("batch_enqueue_per_s"),
                   _get(results, f"raw/batch/{d}", "enqueue_per_s")), 0.5, True)
        add(f"processing 50 queues, 4 workers / raw 1 tx per step, 50 queues ({d})",
            _ratio(_get(results, f"qtl/process/50q/4w/{d}", "process_per_s"),
                   _get(results, f"raw/queues/{d}", "process_per_s")),
            2.5 if d == "full" else 1.5, True)  # issue 9's targets
        add(f"processing 1 queue, 1 worker / raw 1 tx per step ({d})",
            _ratio(_get(results, f"qtl/process/1q/1w/{d}", "process_per_s"),
                   _get(results, f"raw/single/{d}", "process_per_s")), 1.0, True)
        huey = [_get(results, f"huey/{w}w/{d}", "e2e_per_s") for w in (1, 4)]
        best = max((h for h in huey if h is not None), default=None)
        add(f"end to end / huey SqliteHuey, its best of 1 and 4 threads ({d})",
            _ratio(_get(results, f"qtl/e2e/{d}", "e2e_per_s"), best), 3.0, True)
        add(f"wake-up p50 in-process ({d})",
            _get(results, f"latency/in_process/{d}", "p50_ms"), 2.0, False, "ms")
        add(f"wake-up p50 cross-process ({d})",
            _get(results, f"latency/cross_process/{d}", "p50_ms"), 20.0, False, "ms")
    add("end to end, 8 producer threads / huey SqliteHuey, its default durability (full)",
        _ratio(_get(results, "qtl/e2e8/full", "e2e_per_s"),
               _get(results, "huey/e2e8/default", "e2e_per_s")), 2.0, True)
    add("poll/claim cost, big backlog / 1,000 jobs",
        _ratio(_get(results, "poll/jobs-big", "step_us_p50"),
               _get(results, "poll/jobs-small", "step_us_p50")), 2.0, False)
    add("poll/claim cost, many queues / 10 queues",
        _ratio(_get(results, "poll/queues-big", "step_us_p50"),
               _get(results, "poll/queues-small", "step_us_p50")), 2.0, False)
    add("peak RSS, big backlog / 1,000 jobs (flat: <= 1.25x)",
        _ratio(_get(results, "poll/jobs-big", "peak_rss_mb"),
               _get(results, "poll/jobs-small", "peak_rss_mb")), 1.25, False)
    return out


def targets_table(rows: list[Result]) -> str:
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]
    for t in rows:
        sign = ">=" if t["higher_is_better"] else "<="
        value = "n/a" if t["value"] is None else f"{t['value']:.2f} {t['unit']}"
        met = {True: "met", False: "**missed**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['target']} | {value} | {sign} {t['goal']} {t['unit']} | {met} |")
    return "\n".join(lines)


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{float(value):,.{digits}f}"


RATE_ROWS = [
    ("raw/single/{d}", "raw SQLite, 1 transaction per insert, claim, completion"),
    ("raw/queues/{d}", "raw SQLite, the same over 50 named queues"),
    ("raw/batch/{d}", "raw SQLite, 1,000 per transaction (the ceiling)"),
    ("qtl/enqueue/{d}", "queuetopia_lite create_job / create_jobs(1,000)"),
    ("qtl/e2e/{d}", "queuetopia_lite end to end, 50 queues, 4 workers"),
    ("huey/1w/{d}", "huey SqliteHuey, 1 worker thread"),
    ("huey/4w/{d}", "huey SqliteHuey, 4 worker threads"),
]


def rates_table(results: dict[str, Result]) -> str:
    lines = ["| case | durability | enqueue/s | batch enqueue/s | process/s | end to end/s |"
             " peak RSS MiB |", "|---|---|---|---|---|---|---|"]
    rows = [(k.format(d=d), label, d) for d in DURABILITIES for k, label in RATE_ROWS]
    rows += [("qtl/e2e8/full", "queuetopia_lite end to end, 8 producer threads at once", "full"),
             ("huey/e2e8/default", "huey SqliteHuey end to end, 8 producer threads at once "
              "(its default)", "full"),
             ("persist-queue", "persist-queue SQLiteAckQueue (its default: FULL)", "full"),
             ("litequeue", "litequeue (its default: NORMAL)", "normal")]
    for key, label, d in rows:
        r = results.get(key, {})
        if "error" in r:
            lines.append(f"| {label} | {d} | error: {r['error']} | | | | |")
            continue
        if key.startswith("huey") and d == "full":
            label += " (its default: FULL)"
        if r.get("n") and key == "litequeue":
            label += f", n = {r['n']:,}"
        lines.append(f"| {label} | {d} | {_fmt(r.get('enqueue_per_s'))} | "
                     f"{_fmt(r.get('batch_enqueue_per_s'))} | {_fmt(r.get('process_per_s'))} | "
                     f"{_fmt(r.get('e2e_per_s'))} | {_fmt(r.get('peak_rss_mb'), 1)} |")
    return "\n".join(lines)


def processing_table(results: dict[str, Result]) -> str:
    lines = ["| queues | workers | full: jobs/s | normal: jobs/s |", "|---|---|---|---|"]
    for queues, workers in [(1, 1), (1, 4), (50, 1), (50, 4), (1000, 1), (1000, 4)]:
        cells = [_fmt(_get(results, f"qtl/process/{queues}q/{workers}w/{d}", "process_per_s"))
                 for d in DURABILITIES]
        lines.append(f"| {queues:,} | {workers} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def latency_table(results: dict[str, Result]) -> str:
    lines = ["| wake-up | durability | p50 ms | p90 ms | p99 ms | max ms |",
             "|---|---|---|---|---|---|"]
    for where in ("in_process", "cross_process"):
        for d in DURABILITIES:
            r = results.get(f"latency/{where}/{d}", {})
            lines.append(f"| {where.replace('_', '-')} | {d} | {_fmt(r.get('p50_ms'), 2)} | "
                         f"{_fmt(r.get('p90_ms'), 2)} | {_fmt(r.get('p99_ms'), 2)} | "
                         f"{_fmt(r.get('max_ms'), 2)} |")
    return "\n".join(lines)


def poll_table(results: dict[str, Result]) -> str:
    lines = ["| database | jobs | queues | claim + outcome p50 us | p90 us | scheduler jobs/s |"
             " peak RSS MiB |", "|---|---|---|---|---|---|---|"]
    for key in ("jobs-small", "jobs-big", "queues-small", "queues-big"):
        r = results.get(f"poll/{key}", {})
        lines.append(f"| {key} | {_fmt(r.get('jobs'))} | {_fmt(r.get('queues'))} | "
                     f"{_fmt(r.get('step_us_p50'))} | {_fmt(r.get('step_us_p90'))} | "
                     f"{_fmt(r.get('scheduler_per_s'))} | {_fmt(r.get('peak_rss_mb'), 1)} |")
    return "\n".join(lines)


def markdown(doc: Result) -> str:
    meta, results = doc["meta"], doc["results"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    rev = meta["queuetopia_lite_rev"]
    return f"""# Benchmark results

Generated by `{meta['command']}` on {meta['date']} (queuetopia_lite at `{rev}`).
Machine: {meta['cpu']}, {meta['cores']} cores, {meta['system']}. Versions: {versions}.
N = {meta['n']:,} no-op jobs per case. Every case ran in its own process and temporary folder;
ratios compare cases of this one run (absolute figures move 10-30 % between runs on a shared
machine). Definitions: see the docstrings in `benchmarks/` and `benchmarks/README.md`.

## Targets (issues 5 and 9)

{targets_table(doc['targets'])}

## Enqueue, process, end to end (jobs per second)

End to end = N / (time to enqueue N jobs one by one + time to process them all), as in
`reference/perf-anchors.md`.

{rates_table(results)}

## queuetopia_lite processing a pre-filled backlog (real scheduler, no-op performer)

{processing_table(results)}

## Wake-up latency, create_job to the start of perform

{latency_table(results)}

## Poll/claim cost and memory against the table's size (durability normal)

One `backend.step(claim=1)` plus the `step` that saves its outcome, median of 300; then the
real scheduler (4 workers) runs 500 jobs of the same database; peak RSS of that process.

{poll_table(results)}
"""


def summary(doc: Result) -> str:
    """The short table for the README."""
    r = doc["results"]
    n = doc["meta"]["n"]
    rows = [
        ("raw SQLite (no library), 1 transaction per step", "raw/single/{d}"),
        ("**queuetopia_lite**, 50 queues, 4 workers", "qtl/e2e/{d}"),
        ("huey SqliteHuey, 1 thread", "huey/1w/{d}"),
    ]
    lines = [f"Jobs per second, N = {n:,} no-op jobs, one run of `{doc['meta']['command']}` on "
             f"{doc['meta']['cores']} shared cores ({doc['meta']['date']}); see "
             "`benchmarks/RESULTS.md`.", "",
             "| | durability | enqueue | process | end to end |", "|---|---|---|---|---|"]
    for d in DURABILITIES:
        for label, key in rows:
            x = r.get(key.format(d=d), {})
            proc = x.get("process_per_s")
            if key.startswith("qtl"):
                proc = _get(r, f"qtl/process/50q/4w/{d}", "process_per_s")
            lines.append(f"| {label} | {d} | {_fmt(x.get('enqueue_per_s'))} | {_fmt(proc)} | "
                         f"{_fmt(x.get('e2e_per_s'))} |")
    for key, label in (("persist-queue", "persist-queue SQLiteAckQueue"),
                       ("litequeue", "litequeue")):
        x = r.get(key, {})
        d = "full" if key == "persist-queue" else "normal"
        lines.append(f"| {label} | {d} | {_fmt(x.get('enqueue_per_s'))} | "
                     f"{_fmt(x.get('process_per_s'))} | {_fmt(x.get('e2e_per_s'))} |")
    lat = [_get(r, f"latency/{w}/full", "p50_ms") for w in ("in_process", "cross_process")]
    lines += ["", f"Wake-up p50 (durability full): {_fmt(lat[0], 1)} ms in-process, "
              f"{_fmt(lat[1], 1)} ms from another process."]
    return "\n".join(lines) + "\n"
