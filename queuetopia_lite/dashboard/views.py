"""The dashboard's HTML: every page rendered on the server, every job text escaped.

Nothing from a job (queue names, params, errors, holders) reaches the page
without ``html.escape``; the server's Content-Security-Policy forbids inline
scripts besides, so an unescaped slip could still not run one.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from html import escape
from typing import Iterable, Sequence
from urllib.parse import quote, urlencode

from ..backend import Activity, QueuePage
from ..job import FINISHED_STATES, Job, JobState, QueueStatus
from .chart import activity_svg

ERROR_PREVIEW = 160  # characters of an error shown in a table cell


@dataclasses.dataclass(frozen=True)
class Context:
    """What every page needs: where it is, what it may offer, when it was read."""

    title: str  # the dashboard's name (the database and scope)
    now: float  # epoch seconds the data was read at
    csrf: str  # the per-process token every form posts back
    read_only: bool
    refresh: float  # seconds between automatic refreshes (0: none)
    notice: str = ""  # a line shown on top (an action's result)


def e(value: object) -> str:
    """Escaped text for HTML content and quoted attribute values."""
    return escape(str(value), quote=True)


def queue_url(name: str) -> str:
    """The queue page's path (the name quoted whole: slashes included)."""
    return "/queues/" + quote(name, safe="")


def job_url(job_id: int) -> str:
    """The job page's path."""
    return f"/jobs/{job_id}"


def when(instant: datetime | None, now: float) -> str:
    """An instant as "3 min ago" / "in 20 s", its exact UTC time on hover."""
    if instant is None:
        return '<span class="none">-</span>'
    delta = instant.timestamp() - now
    text = _span(abs(delta))
    relative = "now" if abs(delta) < 1 else (f"in {text}" if delta > 0 else f"{text} ago")
    iso = instant.astimezone(timezone.utc).isoformat(timespec="seconds")
    return f'<time datetime="{e(iso)}" title="{e(iso)}">{e(relative)}</time>'


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}" if seconds < 10 * size or unit == "d" \
                else f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


def badge(state: object) -> str:
    """A state as a coloured label."""
    return f'<span class="badge s-{e(state)}">{e(state)}</span>'


def first_line(error: str | None) -> str:
    """The last line of a traceback (the exception) or the first of a message, shortened."""
    if not error:
        return ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    line = lines[-1] if lines and lines[0].startswith("Traceback") else lines[0] if lines else ""
    return line if len(line) <= ERROR_PREVIEW else line[:ERROR_PREVIEW - 1] + "…"


def layout(ctx: Context, heading: str, body: str, *, search: str = "") -> str:
    """A whole page: header with the search box, the refreshed <main>, the script."""
    notice = f'<p class="notice" role="status">{e(ctx.notice)}</p>' if ctx.notice else ""
    mode = '<span class="badge s-readonly">read-only</span>' if ctx.read_only else ""
    read_at = datetime.fromtimestamp(ctx.now, timezone.utc).isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(heading)} · queuetopia_lite</title>"
        '<link rel="stylesheet" href="/static/dashboard.css"></head>'
        f'<body data-refresh="{ctx.refresh:g}">'
        '<header><a class="brand" href="/">queuetopia_lite</a>'
        f'<span class="where">{e(ctx.title)}</span>{mode}'
        '<form class="search" method="get" action="/" role="search">'
        f'<input type="search" name="q" value="{e(search)}" placeholder="search queues" '
        'aria-label="search queue names" maxlength="200">'
        '<button type="submit">Search</button></form>'
        '<label class="auto"><input type="checkbox" id="autorefresh" checked> auto-refresh'
        "</label></header>"
        f'<main id="main">{notice}<h1>{e(heading)}</h1>{body}'
        f'<p class="read-at">read at <span id="read-at">{e(read_at)}</span></p></main>'
        '<script src="/static/dashboard.js"></script></body></html>'
    )


def table(headers: Sequence[str], rows: Iterable[str], *, cls: str = "") -> str:
    """A table from already-rendered row HTML."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="empty">nothing here</td></tr>'
    return f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# -- overview -------------------------------------------------------------------------


def overview(ctx: Context, counts: dict[JobState, int], page: QueuePage, activity: Activity,
             *, search: str, only: str | None, page_number: int, page_size: int) -> str:
    """Counts by state, the throughput chart, and a page of queues, failing first."""
    cells = "".join(
        f'<div class="count s-{e(state)}"><span class="n">{counts.get(state, 0):,}</span>'
        f"<span>{e(state)}</span></div>" for state in JobState)
    chart = (f'<section><h2>Last hour, per minute</h2>{activity_svg(activity)}</section>')
    filters = _filters(page, search, only)
    rows = (_queue_row(status, ctx.now) for status in page.queues)
    queues = table(["queue", "state", "pending", "head job", "attempts", "since", "by",
                    "lease until", "next run", "last error"], rows, cls="queues")
    pages = _pager(page.total if only is None else
                   (page.failing if only == "failing" else page.running),
                   search, only, page_number, page_size)
    return layout(ctx, "Overview", (
        f'<section class="counts" aria-label="jobs by state">{cells}</section>{chart}'
        f"<section><h2>Queues</h2>{filters}{queues}{pages}</section>"), search=search)


def _query(search: str, only: str | None, page: int = 1) -> str:
    args = {k: v for k, v in (("q", search), ("only", only or ""),
                              ("page", str(page) if page > 1 else "")) if v}
    return "/?" + urlencode(args) if args else "/"


def _filters(page: QueuePage, search: str, only: str | None) -> str:
    links = []
    for key, label, n in ((None, "all", page.total), ("failing", "blocked / failing",
                          page.failing), ("running", "running", page.running)):
        current = ' aria-current="page" class="current"' if key == only else ""
        links.append(f'<a href="{e(_query(search, key))}"{current}>{e(label)} '
                     f"({n:,})</a>")
    matching = f' matching "{e(search)}"' if search else ""
    return f'<nav class="filters">{" · ".join(links)}<span>{matching}</span></nav>'


def _pager(total: int, search: str, only: str | None, number: int, size: int) -> str:
    last = max(1, -(-total // size))
    parts = [f"page {number:,} of {last:,}"]
    if number > 1:
        parts.insert(0, f'<a href="{e(_query(search, only, number - 1))}" rel="prev">'
                        "← previous</a>")
    if number < last:
        parts.append(f'<a href="{e(_query(search, only, number + 1))}" rel="next">next →</a>')
    return f'<nav class="pager">{" ".join(parts)}</nav>'


def _queue_row(status: QueueStatus, now: float) -> str:
    head = status.head
    # A head with an error has failed before: blocked, or due to retry, or running again.
    failed = head is not None and head.error is not None
    by = status.locked_by or (head.attempted_by if head is not None and failed else None)
    if status.holder_alive is False:
        by = f"{by} (holder gone)"
    head_cell = (f'<a href="{job_url(head.id)}">#{head.id}</a> {e(head.action)}'
                 if head is not None else '<span class="none">-</span>')
    error = head.error if head is not None else None
    return (
        f'<tr class="q-{e(status.state)}" data-queue="{e(status.queue)}">'
        f'<td><a href="{e(queue_url(status.queue))}">{e(status.queue)}</a></td>'
        f"<td>{badge(status.state)}</td><td>{status.pending:,}</td><td>{head_cell}</td>"
        f"<td>{head.attempts if head is not None else ''}</td>"
        f"<td>{when(status.blocked_since, now) if status.blocked_since else ''}</td>"
        f"<td>{e(by or '')}</td><td>{when(status.locked_until, now) if status.locked_until else ''}"
        f"</td><td>{when(status.next_run_at, now) if status.next_run_at else ''}</td>"
        f'<td class="error">{e(first_line(error))}</td></tr>'
    )


# -- one queue --------------------------------------------------------------------------


def queue_page(ctx: Context, status: QueueStatus, pending: list[Job], history: list[Job],
               *, limit: int) -> str:
    """A queue: its status, its unfinished jobs in run order (head marked), recent ones."""
    head_id = status.head.id if status.head is not None else None
    upcoming = list(pending)
    if status.head is not None and status.head.id not in {j.id for j in pending}:
        upcoming.insert(0, status.head)  # the running head is not pending
    summary = _definitions([
        ("state", badge(status.state)), ("pending", f"{status.pending:,}"),
        ("locked by", e((status.locked_by or "-")
                        + (" (holder gone)" if status.holder_alive is False else ""))),
        ("lease until", when(status.locked_until, ctx.now)),
        ("blocked since", when(status.blocked_since, ctx.now)),
        ("next run", when(status.next_run_at, ctx.now)),
    ])
    more = (f'<p class="more">showing the first {limit:,} of {status.pending:,}</p>'
            if status.pending > len(upcoming) else "")
    up_rows = (_job_row(job, ctx.now, head=job.id == head_id) for job in upcoming)
    done_rows = (_job_row(job, ctx.now) for job in history if job.state in FINISHED_STATES)
    headers = ["", "job", "action", "state", "attempts", "scheduled", "last attempt",
               "error"]
    return layout(ctx, f"Queue {status.queue}", (
        f"{summary}<section><h2>In order (the head runs first)</h2>"
        f"{table(headers, up_rows, cls='jobs')}{more}</section>"
        f"<section><h2>Finished recently (newest first)</h2>"
        f"{table(headers, done_rows, cls='jobs')}</section>"))


def _job_row(job: Job, now: float, *, head: bool = False) -> str:
    mark = '<span class="head" title="the head: runs next">head</span>' if head else ""
    return (
        f'<tr class="{"is-head" if head else ""}" data-job="{job.id}"><td>{mark}</td>'
        f'<td><a href="{job_url(job.id)}">#{job.id}</a></td><td>{e(job.action)}</td>'
        f"<td>{badge(job.state)}</td><td>{job.attempts}/{job.max_attempts}</td>"
        f"<td>{when(job.scheduled_at, now)}</td><td>{when(job.attempted_at, now)}</td>"
        f'<td class="error">{e(first_line(job.error))}</td></tr>'
    )


def _definitions(items: Sequence[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


# -- one job ----------------------------------------------------------------------------


def job_page(ctx: Context, job: Job) -> str:
    """A job: its fields, params, every recorded error with its traceback, its actions."""
    fields = _definitions([
        ("queue", f'<a href="{e(queue_url(job.queue))}">{e(job.queue)}</a>'),
        ("action", e(job.action)), ("state", badge(job.state)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("created", when(job.created_at, ctx.now)),
        ("scheduled", when(job.scheduled_at, ctx.now)),
        ("last attempt", when(job.attempted_at, ctx.now)),
        ("attempted by", e(job.attempted_by or "-")),
        ("next attempt", when(job.next_attempt_at, ctx.now)),
        ("done", when(job.done_at, ctx.now)),
        ("timeout", e("none" if job.timeout is None else f"{job.timeout:g} s")),
        ("max backoff", e(f"{job.max_backoff:g} s")),
    ])
    params = json.dumps(dict(job.params), indent=2, ensure_ascii=False, sort_keys=True)
    return layout(ctx, f"Job #{job.id}", (
        f"{_actions(ctx, job)}{fields}<section><h2>Params</h2>"
        f'<pre class="params">{e(params)}</pre></section>{_errors(ctx, job)}'))


def _errors(ctx: Context, job: Job) -> str:
    # Spec 12.6's job.errors (every failed attempt) where a version has it; else the last.
    attempts = getattr(job, "errors", None)
    if attempts:
        items = "".join(
            f'<li><p>attempt {e(item.get("attempt", "?"))}, '
            f'{when(item.get("at"), ctx.now) if isinstance(item.get("at"), datetime) else ""}'
            f' by {e(item.get("by") or "?")}</p><pre class="error">{e(item.get("error", ""))}'
            "</pre></li>" for item in reversed(list(attempts)))
        return f'<section><h2>Errors, newest first</h2><ol class="errors">{items}</ol></section>'
    if not job.error:
        return ""
    label = "Error" if job.state == JobState.DONE else "Last error"
    return (f"<section><h2>{label} (attempt {job.attempts})</h2>"
            f'<pre class="error">{e(job.error)}</pre></section>')


def _actions(ctx: Context, job: Job) -> str:
    if ctx.read_only:
        return ""
    buttons = []
    if job.state not in (JobState.RUNNING, JobState.DONE):
        buttons.append(_button(ctx, job.id, "retry", "Retry now"))
    if job.state not in FINISHED_STATES:
        buttons.append(_button(ctx, job.id, "cancel", "Cancel"))
    if not buttons:
        return ""
    return f'<div class="actions">{"".join(buttons)}</div>'


def _button(ctx: Context, job_id: int, action: str, label: str) -> str:
    return (f'<form method="post" action="/jobs/{job_id}/{action}" class="action">'
            f'<input type="hidden" name="csrf" value="{e(ctx.csrf)}">'
            f'<button type="submit" id="{action}-button" class="{action}">{e(label)}'
            "</button></form>")


# -- errors -------------------------------------------------------------------------------


def error_page(ctx: Context, status: int, heading: str, message: str) -> str:
    """A readable error: what went wrong, in words, with a way back."""
    return layout(ctx, heading, (f'<p class="problem" data-status="{status}">{e(message)}</p>'
                                 '<p><a href="/">back to the overview</a></p>'))
