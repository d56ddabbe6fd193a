"""Human output of the CLI: aligned tables within 100 columns, relative times."""

from __future__ import annotations

import json
import textwrap
import unicodedata
from datetime import datetime
from typing import Sequence

from ..job import Job, JobState, QueueState, QueueStatus

WIDTH = 100  # columns every table fits in
ELLIPSIS = "..."  # ASCII: a terminal in the C locale must still print it


# -- text cells -------------------------------------------------------------------


def clean(text: str) -> str:
    """One line of printable text: control characters (newlines too) become spaces.

    Queue names, actions and errors are user data; a newline in one must not
    break a table's alignment.
    """
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def width(text: str) -> int:
    """Terminal columns of ``text``: wide (East Asian) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def fit(text: str, size: int) -> str:
    """``text`` cut to at most ``size`` columns, marked with an ellipsis when cut."""
    if width(text) <= size:
        return text
    out, used = "", 0
    room = max(size - len(ELLIPSIS), 0)
    for c in text:
        w = width(c)
        if used + w > room:
            break
        out += c
        used += w
    return out + ELLIPSIS[: size - used]


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


# -- tables -----------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
          right: frozenset[int] = frozenset(), limits: dict[int, int] | None = None) -> str:
    """Aligned columns within WIDTH; the last column takes what room is left.

    Args:
        headers: the column titles.
        rows: the cells, already strings.
        right: indexes of right-aligned (numeric) columns.
        limits: the widest each column may grow (others: as wide as their cells).
    """
    limits = limits or {}
    cells = [[clean(c) for c in row] for row in rows]
    sizes = []
    for i, head in enumerate(headers):
        size = max([width(head)] + [width(row[i]) for row in cells])
        sizes.append(min(size, limits.get(i, size)))
    # The last column gets the rest of the line (at least its title).
    used = sum(sizes[:-1]) + 2 * (len(sizes) - 1)
    sizes[-1] = max(min(sizes[-1], WIDTH - used), width(headers[-1]))
    lines = [_line(headers, sizes, right), *(_line(row, sizes, right) for row in cells)]
    return "\n".join(lines)


def _line(cells: Sequence[str], sizes: Sequence[int], right: frozenset[int]) -> str:
    parts = []
    for i, (cell, size) in enumerate(zip(cells, sizes, strict=True)):
        text = fit(cell, size)
        pad = " " * (size - width(text))
        parts.append(pad + text if i in right else text + pad)
    return "  ".join(parts).rstrip()


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


def jobs_table(jobs: Sequence[Job], now: datetime) -> str:
    """One line per job: id, queue, action, state, attempts, when, last error."""
    rows = [[str(j.id), j.queue, j.action, j.state.value, f"{j.attempts}/{j.max_attempts}",
             job_when(j, now), first_line(j.error)] for j in jobs]
    return table(["ID", "QUEUE", "ACTION", "STATE", "TRIES", "WHEN", "LAST ERROR"], rows,
                 right=frozenset({0, 4}), limits={1: 16, 2: 16, 5: 22})


def job_detail(job: Job, now: datetime) -> str:
    """Every field of one job, times absolute and relative, the full error last."""
    def instant(value: datetime | None) -> str:
        if value is None:
            return "-"
        return f"{value.isoformat(timespec='seconds')} ({ago(value, now)})"

    timeout = "none" if job.timeout is None else f"{job.timeout:g} s"
    fields = [
        ("id", str(job.id)), ("scope", job.scope), ("queue", job.queue),
        ("action", job.action), ("state", job.state.value),
        ("params", json.dumps(dict(job.params), ensure_ascii=False)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("timeout", timeout), ("max_backoff", f"{job.max_backoff:g} s"),
        ("created_at", instant(job.created_at)), ("scheduled_at", instant(job.scheduled_at)),
        ("attempted_at", instant(job.attempted_at)), ("attempted_by", job.attempted_by or "-"),
        ("next_attempt_at", instant(job.next_attempt_at)), ("done_at", instant(job.done_at)),
        ("unique_key", job.unique_key or "-"),
    ]
    lines = [f"{name + ':':<17}{fit(clean(value), WIDTH - 17)}" for name, value in fields]
    # Each failed attempt on one line (its error's summary); the last one in full below.
    lines.append(f"{'errors:':<17}{len(job.errors) or '-'}")
    lines.extend(fit(f"  #{e['attempt']} {instant(e['at'])} by {clean(e['by'] or '-')}: "
                     f"{clean(first_line(e['error']))}", WIDTH) for e in job.errors)
    if job.error:
        lines.append("error:")
        # The whole error, but printable and wrapped within the width.
        for line in job.error.rstrip().splitlines():
            lines.extend(textwrap.wrap(clean(line), WIDTH - 2, initial_indent="  ",
                                       subsequent_indent="    ", drop_whitespace=False)
                         or ["  "])
    else:
        lines.append(f"{'error:':<17}-")
    return "\n".join(lines)


# -- queues -----------------------------------------------------------------------


def queue_detail(status: QueueStatus, now: datetime) -> str:
    """The state's own facts: who runs it, what blocks it, when it starts."""
    head = status.head
    if status.state == QueueState.RUNNING:
        text = f"by {status.locked_by}, lease until {ago(status.locked_until, now)}"
        if head is not None and head.state != JobState.RUNNING:
            # The head was recorded as failed (timeout) but its thread still runs.
            text += f"; job {head.id} {head.state.value}, still running"
        return text
    if status.state == QueueState.BLOCKED:
        since = ago(status.blocked_since, now) if status.blocked_since else "-"
        retry = ago(status.next_run_at, now)
        if head is not None and head.error:
            return (f"since {since} by job {head.id}, attempt {head.attempts}/"
                    f"{head.max_attempts}, next retry {retry}")
        # A head that ran out of attempts holds the queue for its last backoff.
        # QueueStatus does not say which job that was: `jobs --state failed` does.
        return f"held after a job failed for good; moves on {retry}"
    if status.state == QueueState.SCHEDULED:
        return f"next start {ago(status.next_run_at, now)}"
    if status.state == QueueState.AVAILABLE:
        if head is not None and head.error:
            return (f"retry of job {head.id} (attempt {head.attempts}/{head.max_attempts} "
                    f"failed) due {ago(status.next_run_at, now)}, waiting for a worker")
        return f"due {ago(status.next_run_at, now)}, waiting for a worker"
    return ""


def queues_table(statuses: Sequence[QueueStatus], now: datetime) -> str:
    """One line per queue; a blocked one shows its error's first line beneath it."""
    headers = ["QUEUE", "STATE", "PENDING", "HEAD", "DETAIL"]
    rows = []
    head_errors = {}
    for s in statuses:
        head = "-" if s.head is None else f"#{s.head.id} {s.head.action}"
        state = s.state.value.upper() if s.state == QueueState.BLOCKED else s.state.value
        rows.append([s.queue, state, str(s.pending), head, queue_detail(s, now)])
        # The head's last error, whenever it still stands in the queue's way.
        if s.state != QueueState.RUNNING and s.head is not None and s.head.error:
            head_errors[len(rows)] = first_line(s.head.error)
    lines = table(headers, rows, right=frozenset({2}), limits={0: 20, 3: 20}).splitlines()
    out = [lines[0]]
    for index, line in enumerate(lines[1:], start=1):
        out.append(line)
        if index in head_errors:
            out.append(fit("    error: " + clean(head_errors[index]), WIDTH))
    blocked = [s.queue for s in statuses if s.state == QueueState.BLOCKED]
    if blocked:
        names = ", ".join(blocked)
        out.append(fit(f"{len(blocked)} blocked: {names} (`job ID` shows the error, "
                       "`retry ID` / `cancel ID` act on it)", WIDTH))
    return "\n".join(out)
