"""Helpers shared by the benchmark cases: timing, memory, results."""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any

Result = dict[str, Any]


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rate(n: int, seconds: float) -> float:
    """Jobs per second."""
    return n / seconds if seconds > 0 else float("inf")


def percentiles_ms(samples: list[float]) -> Result:
    """p50, p90, p99 and max of samples given in seconds, in milliseconds."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": pick(0.50), "p90_ms": pick(0.90), "p99_ms": pick(0.99),
            "max_ms": ordered[-1] * 1000, "mean_ms": statistics.fmean(ordered) * 1000,
            "samples": len(ordered)}


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def drop_job_indexes(conn: Any) -> list[str]:
    """Drop qt_jobs' indexes (a bulk fill is faster without them); return their SQL, to run
    again once the rows are in."""
    indexes = conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'index' "
                           "AND tbl_name = 'qt_jobs' AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    return [sql for _, sql in indexes]
