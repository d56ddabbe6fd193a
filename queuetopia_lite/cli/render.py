"""Human output of the CLI: jobs and queues as tables sized to the terminal, relative times."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

from ..job import Job, JobState
from .layout import (
    ELLIPSIS,
    WIDTH,
    Column,
    clean,
    cut_middle,
    fit,
    table,
    terminal_width,
    width,
    wrap,
)

__all__ = ["ELLIPSIS", "WIDTH", "Column", "ago", "clean", "cut_middle", "first_line", "fit",
           "job_detail", "job_when", "jobs_table", "span", "table", "terminal_width", "width",
           "wrap"]


# -- text ---------------------------------------------------------------------------


def first_line(text: str | None) -> str:
    """The first non-empty line of an error (its summary), or ''."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


# -- times ------------------------------------------------------------------------


def span(seconds: float) -> str:
    """A duration in the largest fitting units: '3 s', '2 min', '1 h 5 min', '2 d 3 h'."""
    s = round(abs(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h and d < 10 else f"{d} d"


def ago(instant: datetime | None, now: datetime) -> str:
    """'in 3 s', '2 min ago' or 'now' (under half a second); '-' for None."""
    if instant is None:
        return "-"
    delta = (instant - now).total_seconds()
    if abs(delta) < 0.5:
        return "now"
    return f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"


# -- jobs -------------------------------------------------------------------------


def job_when(job: Job, now: datetime) -> str:
    """What the job's state says about time: when it runs, ran or ended."""
    if job.state == JobState.SCHEDULED:
        return f"starts {ago(job.scheduled_at, now)}"
    if job.state == JobState.AVAILABLE:
        if job.next_attempt_at is not None:
            return f"retry due {ago(max(job.scheduled_at, job.next_attempt_at), now)}"
        return f"due {ago(job.scheduled_at, now)}"
    if job.state == JobState.RETRYING:
        return f"retry {ago(job.next_attempt_at, now)}"
    if job.state == JobState.RUNNING:
        return f"started {ago(job.attempted_at, now)}"
    if job.state == JobState.DONE:
        return f"done {ago(job.done_at, now)}"
    return f"{job.state.value} {ago(job.done_at or job.attempted_at or job.created_at, now)}"


JOB_COLUMNS = (
    Column("ID", right=True), Column("QUEUE", least=12, middle=True),
    Column("ACTION", least=10, middle=True), Column("STATE"), Column("TRIES", right=True),
    Column("WHEN"), Column("LAST ERROR", least=10, yields=1),  # `job ID` shows it whole
)


def jobs_table(jobs: Sequence[Job], now: datetime, total: int = WIDTH) -> str:
    """One line per job: id, queue, action, state, attempts, when, last error.

    Within ``total`` columns: the error's first line is cut first, then queue
    and action names lose their middle, only as far as needed.
    """
    rows = [[str(j.id), j.queue, j.action, j.state.value, f"{j.attempts}/{j.max_attempts}",
             job_when(j, now), first_line(j.error)] for j in jobs]
    return "\n".join(table(JOB_COLUMNS, rows, total))


_LABEL = 17  # columns of a field's label in job_detail


def job_detail(job: Job, now: datetime, total: int = WIDTH, holder_gone: bool = False) -> str:
    """Every field of one job, times absolute and relative, the error history, the full error.

    ``holder_gone``: the running job's process no longer exists (this host can tell).

    Values wrap within ``total`` columns; params (up to 64 KiB) are cut to one
    line (``--json`` shows them whole).
    """
    def instant(value: datetime | None) -> str:
        if value is None:
            return "-"
        return f"{value.isoformat(timespec='seconds')} ({ago(value, now)})"

    timeout = "none" if job.timeout is None else f"{job.timeout:g} s"
    by = (job.attempted_by or "-") + (" (holder gone)" if holder_gone else "")
    fields = [
        ("id", str(job.id)), ("scope", job.scope), ("queue", job.queue),
        ("action", job.action), ("state", job.state.value),
        ("params", json.dumps(dict(job.params), ensure_ascii=False)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("timeout", timeout), ("max_backoff", f"{job.max_backoff:g} s"),
        ("created_at", instant(job.created_at)), ("scheduled_at", instant(job.scheduled_at)),
        ("attempted_at", instant(job.attempted_at)), ("attempted_by", by),
        ("next_attempt_at", instant(job.next_attempt_at)), ("done_at", instant(job.done_at)),
        ("unique_key", job.unique_key or "-"),
    ]
    room = max(total - _LABEL, 20)
    lines = []
    for name, value in fields:
        text = clean(value)
        parts = [fit(text, room)] if name == "params" else wrap(text, room)
        lines.append(f"{name + ':':<{_LABEL}}{parts[0]}")
        lines.extend(" " * _LABEL + part for part in parts[1:])
    lines.extend(error_history(getattr(job, "errors", None), now, total))
    if job.error:
        lines.append("error:")
        # The whole error, but printable and wrapped within the width.
        for line in job.error.rstrip().splitlines():
            text = clean(line)
            indent = "  " + " " * (len(text) - len(text.lstrip(" ")))
            lines.extend(indent + part for part in wrap(text.strip(), max(total - len(indent),
                                                                          20)))
    else:
        lines.append(f"{'error:':<{_LABEL}}-")
    return "\n".join(lines)


def error_history(errors: Sequence[Any] | None, now: datetime, total: int) -> list[str]:
    """Lines for a job's past failures (each {attempt, at, error, by}); none if it has none.

    One entry a line: the attempt, when, by whom, then the error's first line,
    wrapped (``--json`` has each whole).
    """
    if not errors:
        return []
    lines = [f"{'errors:':<{_LABEL}}{len(errors)} failed attempt{'s' if len(errors) != 1 else ''}"]
    for entry in errors:
        get = entry.get if isinstance(entry, dict) else lambda key, e=entry: getattr(e, key, None)
        at = _instant(get("at"))
        when = "-" if at is None else f"{at.isoformat(timespec='seconds')} ({ago(at, now)})"
        head = f"attempt {get('attempt') or '?'}  {when}  by {get('by') or '-'}"
        lines.extend("  " + part for part in wrap(clean(head), max(total - 2, 20)))
        lines.extend("    " + part for part in wrap(clean(first_line(get("error"))) or "-",
                                                    max(total - 4, 20)))
    return lines


def _instant(value: object) -> datetime | None:
    """An entry's time, however it was stored: a datetime, epoch seconds or ISO 8601."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None
