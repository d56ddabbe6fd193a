"""The `queues` command's human output: a summary, the queues that need a look first, a limit."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from ..job import JobState, QueueState, QueueStatus
from .layout import WIDTH, Column, clean, fit, table_blocks, wrap
from .render import ago, first_line

# The order queues are listed in: what needs a person, what runs, what waits, the rest.
ORDER = (QueueState.BLOCKED, QueueState.RUNNING, QueueState.AVAILABLE, QueueState.SCHEDULED,
         QueueState.IDLE)
DEFAULT_LIMIT = 50  # queues listed unless --limit says otherwise
NAMED = 10  # blocked queues named in the closing note

COLUMNS = (
    Column("QUEUE", least=12, middle=True), Column("STATE"), Column("PENDING", right=True),
    Column("HEAD", least=10, yields=1),
    Column("DETAIL", least=24, yields=2, wrap=True),  # the retry time must never be cut off
)


def ordered(statuses: Sequence[QueueStatus]) -> list[QueueStatus]:
    """Blocked queues first, then running, available, scheduled, idle; by name within each."""
    rank = {state: index for index, state in enumerate(ORDER)}
    return sorted(statuses, key=lambda s: (rank[s.state], s.queue))


def summary(statuses: Sequence[QueueStatus]) -> str:
    """'2,000 queues: 1 blocked, 3 running, 10 scheduled, 1,986 idle'."""
    counts = {state: 0 for state in ORDER}
    for s in statuses:
        counts[s.state] += 1
    parts = ", ".join(f"{n:,} {state.value}" for state, n in counts.items() if n)
    noun = "queue" if len(statuses) == 1 else "queues"
    return f"{len(statuses):,} {noun}" + (f": {parts}" if parts else "")


def queue_detail(status: QueueStatus, now: datetime) -> str:
    """The state's own facts: who runs it, what blocks it, when it starts."""
    head = status.head
    if status.state == QueueState.RUNNING:
        # A gone holder's lease is recovered by the next look of a scheduler of this host.
        gone = " (holder gone)" if status.holder_alive is False else ""
        text = f"by {status.locked_by}{gone}, lease until {ago(status.locked_until, now)}"
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


def queues_table(statuses: Sequence[QueueStatus], now: datetime, total: int = WIDTH) -> str:
    """One row per queue, in the order given; a blocked one shows its error beneath it.

    Names are whole when ``total`` columns allow, else cut in the middle; the
    detail wraps onto more lines rather than being cut.
    """
    rows = [[s.queue, s.state.value.upper() if s.state == QueueState.BLOCKED else s.state.value,
             f"{s.pending:,}", "-" if s.head is None else f"#{s.head.id} {s.head.action}",
             queue_detail(s, now)] for s in statuses]
    header, blocks = table_blocks(COLUMNS, rows, total)
    out = [header]
    for status, block in zip(statuses, blocks, strict=True):
        out.extend(block)
        # The head's last error, whenever it still stands in the queue's way.
        if status.state != QueueState.RUNNING and status.head is not None and status.head.error:
            out.append(fit("    error: " + clean(first_line(status.head.error)), total))
    return "\n".join(out)


def queues_text(statuses: Sequence[QueueStatus], now: datetime, *, blocked_only: bool = False,
                limit: int = DEFAULT_LIMIT, total: int = WIDTH) -> str:
    """The summary of every queue, then the queues to show (0: no limit), then what is left out.

    Every count covers all queues, whatever ``blocked_only`` and ``limit`` leave out.
    """
    if not statuses:
        return "no queues"
    shown = ordered(statuses)
    if blocked_only:
        shown = [s for s in shown if s.state == QueueState.BLOCKED]
    lines = [summary(statuses)]
    if not shown:
        lines.append("no blocked queues")
        return "\n".join(lines)
    rest = len(shown) - limit if limit else 0
    if rest > 0:
        shown = shown[:limit]
    lines.append(queues_table(shown, now, total))
    if rest > 0:
        lines.append(f"... and {rest:,} more (--limit 0 shows all)")
    blocked = [s.queue for s in ordered(statuses) if s.state == QueueState.BLOCKED]
    if blocked:
        names = ", ".join(blocked[:NAMED])
        if len(blocked) > NAMED:
            names += f" and {len(blocked) - NAMED:,} more"
        lines.extend(wrap(clean(f"{len(blocked):,} blocked: {names} (`job ID` shows the error, "
                                "`retry ID` / `cancel ID` act on it)"), total))
    return "\n".join(lines)
