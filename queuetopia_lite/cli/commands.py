"""The CLI's commands: each takes the parsed arguments and prints its result.

JSON output (``--json``) uses the records' own field names (see ``Job.to_dict``
and ``QueueStatus.to_dict``), with instants as absolute ISO 8601 strings in UTC.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from .. import validation
from ..errors import DatabaseError, InvalidJobError, JobNotFoundError
from ..job import Job, JobState, QueueState, QueueStatus
from ..performer import BoundPerformer
from ..queuetopia import Queuetopia, open_backend
from . import queues_view, render
from .worker import LoggingPerformer, StderrLogging, load_performer, log

Command = Callable[[argparse.Namespace], int]


def _is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


@contextlib.contextmanager
def open_queue(args: argparse.Namespace, *, create: bool = False,
               performer: Any = None, **options: Any) -> Iterator[Queuetopia]:
    """The Queuetopia of --db and --scope, closed when the block ends.

    Only commands that store jobs (``create``) may create a missing SQLite file,
    and only they migrate: a look at a mistyped path must not leave an empty
    database behind, and reading must not write.
    """
    target: str = args.db
    if not _is_url(target) and not create and not os.path.exists(target):
        raise DatabaseError(target, "no such database file (`migrate` or `enqueue` creates one)")
    q = Queuetopia(target, performer, scope=args.scope, migrate=create, **options)
    try:
        yield q
    finally:
        q.close()


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON (UTF-8 kept readable)."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


def now_utc() -> datetime:
    """The current instant, aware UTC."""
    return datetime.now(timezone.utc)


# -- writing ----------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the schema; print its version."""
    backend = open_backend(args.db, migrate=True)
    try:
        print(f"schema version {backend.migrate()} ({backend.location})")
    finally:
        backend.close()
    return 0


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Store one job; print its id (alone, so scripts can capture it)."""
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise InvalidJobError("PARAMS_JSON", f"not valid JSON ({exc})") from None
    scheduled_at = args.at
    if args.delay is not None:
        delay = validation.duration("--in", args.delay)  # bounded: the date stays in range
        scheduled_at = now_utc() + timedelta(seconds=delay)
    options = {"scheduled_at": scheduled_at, "timeout": args.timeout,
               "max_backoff": args.max_backoff, "max_attempts": args.max_attempts,
               "unique_key": args.unique_key}
    performer = None if args.performer is None else load_performer(args.performer)
    defaults = (validation.no_defaults if performer is None
                else BoundPerformer(performer).defaults)
    # Check everything before opening: bad input must not even create the file.
    validation.new_job(args.queue, args.action, params, **options, defaults=defaults)
    with open_queue(args, create=True, performer=performer) as q:
        job = q.create_job(args.queue, args.action, params, **options)
    print(job.id)
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Make a job runnable now."""
    with open_queue(args) as q:
        job = q.retry_job(args.id)
    print(f"job {job.id} is {job.state.value} (attempts so far: {job.attempts}/"
          f"{job.max_attempts})")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a job; its queue moves on."""
    with open_queue(args) as q:
        job = q.cancel_job(args.id)
        status = next(iter(q.queues(queue=job.queue)), None)
    note = f"queue {job.queue!r} moves on"
    if status is not None and status.state == QueueState.RUNNING:
        note = f"queue {job.queue!r} stays locked until its running job ends"
    print(f"job {job.id} cancelled; {note}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete old done jobs."""
    with open_queue(args) as q:
        deleted = q.prune(args.older_than)
    print(f"deleted {deleted} done job{'s' if deleted != 1 else ''} finished more than "
          f"{render.span(args.older_than)} ago")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the live database with SQLite's online backup (safe while workers run)."""
    with open_queue(args) as q:
        q.backup(args.path)
    print(f"backed up {args.db} to {args.path}")
    return 0


# -- reading ----------------------------------------------------------------------


def cmd_jobs(args: argparse.Namespace) -> int:
    """List jobs, newest first.

    JSON: a list of job objects with the keys id, scope, queue, action, params,
    scheduled_at, timeout, max_backoff, max_attempts, attempts, attempted_at,
    attempted_by, next_attempt_at, done_at, error, state, created_at.
    """
    with open_queue(args) as q:
        jobs = q.list_jobs(queue=args.queue, state=args.state, action=args.action,
                           limit=args.limit)
    if args.json:
        emit_json([job.to_dict() for job in jobs])
    elif not jobs:
        print("no jobs")
    else:
        print(render.jobs_table(jobs, now_utc(), render.terminal_width()))
        if len(jobs) == args.limit:
            print(f"(the {args.limit} newest; --limit N shows more)")
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    """Show one job. JSON: one job object (keys as in ``jobs``)."""
    with open_queue(args) as q:
        job = q.get_job(args.id)
        status = None
        if job is not None and job.state == JobState.RUNNING:
            status = next(iter(q.queues(queue=job.queue)), None)
    if job is None:
        raise JobNotFoundError(args.id)
    if args.json:
        emit_json(job.to_dict())
    else:
        gone = status is not None and status.holder_alive is False
        print(render.job_detail(job, now_utc(), render.terminal_width(), holder_gone=gone))
    return 0


def cmd_queues(args: argparse.Namespace) -> int:
    """Show the queues: a summary, then blocked, running and the others, up to --limit.

    JSON: a list of queue status objects, by name, with the keys queue, state,
    pending, head (a job object or null), locked_by, locked_until,
    blocked_since, next_run_at, holder_alive (false: the lock's process of this
    host is gone). It lists every queue (only blocked ones with
    --blocked) unless --limit is given.
    """
    with open_queue(args) as q:
        statuses = q.queues()
    if args.json:
        shown = [s for s in statuses if not args.blocked or s.state == QueueState.BLOCKED]
        emit_json([s.to_dict() for s in shown[:args.limit or None]])
        return 0
    limit = queues_view.DEFAULT_LIMIT if args.limit is None else args.limit
    print(queues_view.queues_text(statuses, now_utc(), blocked_only=args.blocked, limit=limit,
                                  total=render.terminal_width()))
    return 0


def oldest_pending(statuses: list[QueueStatus]) -> Job | None:
    """The unfinished job due earliest: the one that has waited longest.

    A queue runs in (scheduled_at, id) order, so the earliest scheduled_at of
    all unfinished jobs is always some queue's head.
    """
    heads = [s.head for s in statuses if s.head is not None]
    return min(heads, key=lambda job: (job.scheduled_at, job.id), default=None)


def cmd_stats(args: argparse.Namespace) -> int:
    """Counts by state, the oldest pending job, the blocked queues.

    JSON: {"counts": {state: n for every state}, "total": n, "queues": n,
    "oldest_pending": a job object or null, "blocked_queues": a list of queue
    status objects (as in ``queues``)}.
    """
    with open_queue(args) as q:
        counts = q.count_jobs()
        statuses = q.queues()
    head = oldest_pending(statuses)
    blocked = [s for s in statuses if s.state == QueueState.BLOCKED]
    if args.json:
        emit_json({"counts": {state.value: n for state, n in counts.items()},
                   "total": sum(counts.values()), "queues": len(statuses),
                   "oldest_pending": None if head is None else head.to_dict(),
                   "blocked_queues": [s.to_dict() for s in blocked]})
        return 0
    print(_stats_text(counts, statuses, head, blocked, now_utc(), render.terminal_width()))
    return 0


def _stats_text(counts: dict[JobState, int], statuses: list[QueueStatus], head: Job | None,
                blocked: list[QueueStatus], now: datetime, total: int) -> str:
    rows = [[state.value, str(n)] for state, n in counts.items()]
    rows.append(["total", str(sum(counts.values()))])
    lines = render.table([render.Column("STATE"), render.Column("JOBS", right=True)], rows,
                         total)
    by_state = ", ".join(f"{n} {state}" for state in QueueState
                         if (n := sum(1 for s in statuses if s.state == state)))
    lines.append(f"queues:          {len(statuses)}" + (f" ({by_state})" if by_state else ""))
    if head is None:
        lines.append("oldest pending:  -")
    else:
        lines.append(render.fit(render.clean(
            f"oldest pending:  job {head.id} in {head.queue} ({head.state.value}), "
            f"due {render.ago(head.scheduled_at, now)}"), total))
    names = ", ".join(s.queue for s in blocked) or "-"
    lines.append(render.fit(render.clean(f"blocked queues:  {names}"), total))
    return "\n".join(lines)


# -- running ----------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    """Run jobs until SIGINT or SIGTERM (or, with --drain, until none is due)."""
    # Load the performer first: a typo in its name must not create a database.
    performer = LoggingPerformer(load_performer(args.performer))
    opened = open_queue(args, create=True, performer=performer, max_workers=args.max_workers,
                        poll_interval=args.poll_interval, driver=args.driver)
    with opened as q, StderrLogging(args.log_level):
        where = f"{q.backend.location} scope {q.scope!r}"
        if args.drain:
            ran = q.drain()
            log.info("drained %s: %s job%s ran", where, ran, "" if ran == 1 else "s")
            return 0
        log.info("worker started on %s: performer %s, %s workers (pid %s)", where,
                 args.performer, args.max_workers, os.getpid())
        start = time.monotonic()
        q.run()
        log.info("worker stopped after %s", render.span(time.monotonic() - start))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the web dashboard until SIGINT or SIGTERM; print its address first."""
    from .. import dashboard

    with open_queue(args) as q:
        server = dashboard.make_server(q, host=args.host, port=args.port,
                                       read_only=args.read_only, token=args.token,
                                       refresh=args.refresh)
        mode = " (read-only)" if args.read_only else ""
        hint = "?token=..." if args.token else ""
        print(f"dashboard of {q.backend.location} scope {q.scope!r}{mode} at "
              f"{server.url}{hint} (Ctrl-C stops it)", flush=True)
        dashboard.serve_until_signal(server)
    return 0


COMMANDS: dict[str, Command] = {
    "migrate": cmd_migrate, "enqueue": cmd_enqueue, "worker": cmd_worker,
    "jobs": cmd_jobs, "job": cmd_job, "queues": cmd_queues, "stats": cmd_stats,
    "retry": cmd_retry, "cancel": cmd_cancel, "prune": cmd_prune, "backup": cmd_backup,
    "dashboard": cmd_dashboard,
}
