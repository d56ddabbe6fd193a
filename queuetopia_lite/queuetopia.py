"""Queuetopia: the public facade. Creates jobs, runs them, answers questions."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import types
from datetime import timedelta
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from . import hostclock
from . import validation as check
from .backend import Backend, NewJob
from .enqueue import Enqueuer
from .errors import InvalidJobError, JobNotFoundError
from .events import Callback, Event, Events
from .job import Job, JobState, QueueStatus, to_datetime
from .performer import BoundPerformer, PerformerArg
from .periodic import Periodic, PeriodicTicker, define
from .scheduler import Scheduler
from .validation import NOT_GIVEN, Duration, NotGiven

DEFAULT_POLL_INTERVAL = 60.0  # seconds
DEFAULT_LEASE = 30.0  # seconds
DEFAULT_JOB_RETENTION = 7 * 86400.0  # seconds


def open_backend(target: str | os.PathLike[str] | Backend, *, durability: str = "full",
                 migrate: bool = True, driver: str | None = None) -> Backend:
    """A backend for a SQLite path, a ``postgresql://`` URL, or a Backend as is."""
    if isinstance(target, Backend):
        if driver is not None:
            raise InvalidJobError("driver", "give it to the backend you pass, not to Queuetopia")
        return target
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        try:
            from .postgres import PostgresBackend
        except ImportError as exc:  # its message names the package to install
            raise InvalidJobError("database", str(exc)) from exc
        if driver is not None:
            raise InvalidJobError("driver", "a SQLite option (Postgres is reached through psycopg)")
        backend: Backend = PostgresBackend(target, migrate=migrate)
        return backend
    if not isinstance(target, (str, os.PathLike)):
        raise InvalidJobError("database", f"expected a path, a postgresql:// URL or a Backend, "
                              f"got {type(target).__name__}")
    from .sqlite import SQLiteBackend

    return SQLiteBackend(target, durability=durability, migrate=migrate,
                         driver="apsw" if driver is None else driver)


class Queuetopia:
    """A persistent blocking job queue: many named queues, each one job at a time, in order.

    Args:
        database: a SQLite file path, a ``postgresql://`` URL, or a Backend instance.
        performer: runs jobs: a ``Performer``, an object with ``perform(job)``, or a
            callable(job). A return is success, a raise is failure. Optional
            ``backoff(job)`` and ``handle_failed_job(job)`` are used when present.
            Not needed to create or inspect jobs.
        scope: isolates this Queuetopia's jobs from others in the same database.
        poll_interval: seconds between periodic polls (wake-ups make most needless).
        max_workers: how many queues this process runs at once, whatever their jobs
            are: sync jobs take a worker thread each (started as needed), async jobs
            (``async def`` actions) are awaited together on one event loop thread.
        lease: seconds a queue lock lasts unless renewed (renewed every lease/3).
        durability: "full" (a returned create_job survives power loss) or "normal"
            (faster; a power loss may undo the last commits, a crash never does).
            SQLite only.
        cleanup_interval: seconds between deletions of old done jobs; None: never.
        job_retention: seconds a done job is kept before the cleaner deletes it.
        migrate: create or upgrade the schema on open.
        driver: the SQLite library: "apsw" (the default) or "sqlite3" (Python's
            module: choose it when the application opens the same file through
            sqlite3, SQLAlchemy or Django; one process must never open one file
            through two SQLite libraries). SQLite only.
        clock: the wall clock, seconds since the epoch (tests inject a fake one).
    """

    def __init__(self, database: str | os.PathLike[str] | Backend,
                 performer: PerformerArg | None = None, *, scope: str = "default",
                 poll_interval: Duration = DEFAULT_POLL_INTERVAL, max_workers: int = 8,
                 lease: Duration = DEFAULT_LEASE, durability: str = "full",
                 cleanup_interval: Duration | None = None,
                 job_retention: Duration = DEFAULT_JOB_RETENTION, migrate: bool = True,
                 driver: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.scope = check.name("scope", scope)
        self.poll_interval = check.duration("poll_interval", poll_interval, allow_zero=False)
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidJobError("max_workers", f"expected an integer >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self.lease = check.duration("lease", lease, allow_zero=False)
        self.cleanup_interval = check.optional_duration("cleanup_interval", cleanup_interval,
                                                        allow_zero=False)
        self.job_retention = check.duration("job_retention", job_retention)
        if durability not in ("full", "normal"):
            raise InvalidJobError("durability", f"expected 'full' or 'normal', got {durability!r}")
        self._performer = None if performer is None else BoundPerformer(performer)
        self._defaults = check.no_defaults if self._performer is None else self._performer.defaults
        self._clock = clock
        # Leases of this host's processes follow a clock that never jumps; an injected
        # wall clock (tests) drives leases itself.
        self._host_clock = hostclock.for_wall_clock(clock)
        self.backend = open_backend(database, durability=durability, migrate=migrate,
                                    driver=driver)
        self._scheduler: Scheduler | None = None
        self._scheduler_lock = threading.Lock()
        self._enqueuer = Enqueuer(self.backend, self.scope, self._clock)
        self._events = Events()
        self._periodics: list[Periodic] = []
        self._ticker = PeriodicTicker(self.backend, self.scope, self._periodics, self._clock,
                                      lambda jobs: self.notify())
        for definition in [] if self._performer is None else self._performer.periodics:
            self.periodic(*definition)

    # -- creating jobs ------------------------------------------------------------

    def create_job(self, queue: str, action: str, params: Mapping[str, Any] | None = None, *,
                   scheduled_at: Any = None,
                   timeout: Duration | NotGiven | None = NOT_GIVEN,
                   max_backoff: Duration | NotGiven = NOT_GIVEN,
                   max_attempts: int | NotGiven = NOT_GIVEN,
                   unique_key: str | None = None, connection: Any = None) -> Job:
        """Store a job at the end of ``queue`` and wake the scheduler.

        Returns the stored job. A call that returns has stored it (durably with
        durability="full"); one that raises has stored nothing. Options not given
        take the action's defaults (``Performer.action``), else ``timeout=60.0``,
        ``max_backoff=86400.0``, ``max_attempts=20``. With a ``unique_key`` that a
        waiting job of this scope holds (scheduled, available or retrying), that job
        is returned and nothing is stored.

        With ``connection`` (an ``apsw.Connection`` or ``sqlite3.Connection`` on the
        same file, or a psycopg ``Connection`` on the same database, inside a
        transaction the application opened), the job is written in that
        transaction: stored if and only if it commits, and started within
        milliseconds of the commit. The application commits or rolls back.

        Raises:
            InvalidJobError: a bad argument (the message names it), including a
                ``connection`` that cannot be joined (nothing is written then).
            DatabaseError: the database cannot be written.
        """
        new = self._new_job(queue, action, params, scheduled_at=scheduled_at, timeout=timeout,
                            max_backoff=max_backoff, max_attempts=max_attempts,
                            unique_key=unique_key)
        (job,) = self._insert([new], connection)
        return job

    def _new_job(self, queue: str, action: str, params: Mapping[str, Any] | None,
                 **options: Any) -> NewJob:
        """create_job's arguments checked, with the action's defaults (AsyncQueuetopia too)."""
        return check.new_job(queue, action, params, defaults=self._defaults, **options)

    def _new_jobs(self, jobs: Iterable[Any], options: dict[str, Any]) -> list[NewJob]:
        """create_jobs' arguments checked, with the actions' defaults (AsyncQueuetopia too)."""
        unknown = set(options) - {"scheduled_at", "timeout", "max_backoff", "max_attempts"}
        if unknown:
            raise InvalidJobError(sorted(unknown)[0], "not an option of create_jobs")
        return [check.batch_item(index, item, options, self._defaults)
                for index, item in enumerate(jobs)]

    def create_jobs(self, jobs: Iterable[Any], *, connection: Any = None,
                    **options: Any) -> list[Job]:
        """Store many jobs in one transaction (all or none), in the order given.

        Items are ``(queue, action[, params])`` tuples or dicts of create_job's
        arguments; keyword ``options`` (timeout, max_attempts...) apply to all. An
        item whose ``unique_key`` is held (by a waiting job, or an earlier item of
        this batch) is not stored: that job stands in its place in the result.
        ``connection``: as in create_job.
        """
        new = self._new_jobs(jobs, options)
        if not new:
            return []
        return self._insert(new, connection)

    def _insert(self, new: Sequence[NewJob], connection: Any) -> list[Job]:
        if connection is None:
            check_writer = getattr(self.backend, "check_writer", None)
            if check_writer is not None:  # inside q.transaction(): refused here, at once
                check_writer()
            created = self._enqueuer.insert(new)
            self.notify()
            return created
        insert_in = getattr(self.backend, "insert_jobs_in", None)
        if insert_in is None:
            raise InvalidJobError("connection", f"{type(self.backend).__name__} cannot write "
                                  "in an application's transaction")
        # No notify(): the job exists only once the application commits. The
        # scheduler sees that commit itself (data_version on SQLite, NOTIFY on Postgres),
        # looking closely for a while since it is near.
        jobs: list[Job] = insert_in(connection, self.scope, new, self._clock())
        if self._scheduler is not None:
            self._scheduler.expect_commit()
        return jobs

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """The library's own connection in one write transaction, for the application's writes.

        Yields an ``apsw.Connection`` (a ``sqlite3.Connection`` with driver="sqlite3",
        a psycopg ``Connection`` on Postgres). Create jobs in it with
        ``connection=conn``. Commits when the block ends; rolls back and re-raises
        when it raises. The scheduler is woken after the commit. On SQLite the
        transaction holds the file's write lock (BEGIN IMMEDIATE): keep it short.

        Example:
            with q.transaction() as conn:
                conn.execute("INSERT INTO orders(id) VALUES (7)")
                q.create_job("payments_7", "charge", {"order": 7}, connection=conn)
        """
        transaction = getattr(self.backend, "transaction", None)
        if transaction is None:
            raise InvalidJobError("database", f"{type(self.backend).__name__} has no "
                                  "transaction()")
        with transaction() as conn:
            yield conn
        self.notify()

    def periodic(self, name: str, schedule: str | Duration, queue: str, action: str,
                 params: Mapping[str, Any] | None = None) -> None:
        """Create a job in ``queue`` at every tick of ``schedule`` while this Queuetopia runs.

        ``schedule`` is a 5-field cron line, in UTC (``"0 3 * * *"``), or an interval
        in seconds or a timedelta (ticks at multiples of it since the epoch). One job
        per tick however many processes run schedulers on the database; a tick missed
        while none ran is created once at the next start, older missed ticks are not.
        The first start after a definition waits for its next tick. The jobs take the
        action's defaults; ``start``, ``run`` and ``drain`` tick (a definition added
        while running is ticked from then on).

        Raises:
            InvalidJobError: a bad argument, or ``name`` already defined here.
        """
        definition = define(name, schedule, queue, action, params, self._defaults)
        if any(p.name == definition.name for p in self._periodics):
            raise InvalidJobError("name", f"periodic {definition.name!r} is already defined")
        self._periodics.append(definition)
        if self._scheduler is not None and self._scheduler.running:
            self._ticker.start()  # defined while running: tick it from now on

    # -- running ------------------------------------------------------------------

    def _get_scheduler(self) -> Scheduler:
        with self._scheduler_lock:
            if self._scheduler is None:
                if self._performer is None:
                    raise InvalidJobError(
                        "performer", "this Queuetopia has no performer to run jobs")
                self._scheduler = Scheduler(
                    self.backend, self._performer, scope=self.scope,
                    max_workers=self.max_workers, lease=self.lease,
                    poll_interval=self.poll_interval, cleanup_interval=self.cleanup_interval,
                    job_retention=self.job_retention, clock=self._clock,
                    host_clock=self._host_clock, events=self._events)
            return self._scheduler

    def start(self) -> None:
        """Run jobs (and create periodic ones) in background threads until stop()."""
        self._get_scheduler().start()
        self._ticker.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming jobs, wait for running ones and save their results."""
        self._ticker.stop(timeout)
        if self._scheduler is not None:
            self._scheduler.stop(timeout)

    def __enter__(self) -> Queuetopia:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self) -> None:
        """Run jobs in the foreground until SIGINT or SIGTERM, then stop gracefully.

        Raises:
            DatabaseError: the database became unusable in a way waiting cannot
                cure (read-only, corrupt...); running jobs were left to their leases.
        """
        stop = threading.Event()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            def on_signal(signum: int, frame: types.FrameType | None) -> None:
                stop.set()
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        scheduler = self._get_scheduler()
        scheduler.start()
        self._ticker.start()
        try:
            while scheduler.running and not stop.wait(0.2):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if scheduler.failure is not None:
            raise scheduler.failure

    def drain(self) -> int:
        """Run due jobs in the calling thread until none is due; return how many ran.

        For scripts and tests. Job timeouts are not enforced here: a job runs
        until it returns.
        """
        scheduler = self._get_scheduler()
        if self._periodics:
            self._ticker.tick()
        return scheduler.drain()

    def on(self, kind: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` for each event of ``kind`` this process saves.

        Kinds: job_started, job_succeeded, job_failed, job_gave_up, job_snoozed,
        job_lost, queue_blocked, queue_unblocked (see queuetopia_lite.events.KINDS).
        ``event.kind``, ``event.job`` (the job as saved), ``event.at`` (UTC datetime),
        ``event.duration`` (seconds the attempt ran, or None). Delivered after the
        save, on one thread of their own (the caller's during drain()); a callback
        that raises is logged and changes nothing. Returns a function that
        unsubscribes it (as ``off`` does).
        """
        return self._events.on(kind, callback)

    def off(self, kind: str, callback: Callback) -> None:
        """Stop calling ``callback`` for ``kind``."""
        self._events.off(kind, callback)

    def notify(self) -> None:
        """Wake the scheduler (create_job does it itself)."""
        if self._scheduler is not None:
            self._scheduler.notify()

    # -- reading and operating ----------------------------------------------------

    def get_job(self, job_id: int) -> Job | None:
        """The job with this id in this scope, or None."""
        try:
            return self.backend.get_job(self.scope, _job_id(job_id), self._clock())
        except JobNotFoundError:
            return None

    def list_jobs(self, *, queue: str | None = None, state: JobState | str | None = None,
                  action: str | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        """This scope's jobs, newest first, optionally filtered by queue, state and action."""
        if state is not None:
            try:
                state = JobState(state)
            except ValueError:
                names = ", ".join(s.value for s in JobState)
                raise InvalidJobError("state", f"expected one of {names}, got {state!r}") from None
        return self.backend.list_jobs(self.scope, self._clock(), queue=queue, state=state,
                                      action=action, limit=check.count("limit", limit),
                                      offset=check.count("offset", offset))

    def count_jobs(self) -> dict[JobState, int]:
        """How many jobs of this scope are in each state."""
        return self.backend.count_jobs(self.scope, self._clock())

    def queues(self, queue: str | None = None) -> list[QueueStatus]:
        """Every queue of this scope with its state, by name (or just ``queue``)."""
        return self.backend.queue_statuses(self.scope, self._clock(), queue=queue)

    def retry_job(self, job_id: int) -> Job:
        """Make a job runnable now, attempts kept; an exhausted job gets one more attempt."""
        job = self.backend.retry_job(self.scope, _job_id(job_id), self._clock())
        self.notify()
        return job

    def cancel_job(self, job_id: int) -> Job:
        """Cancel an unfinished job; its queue moves on (a running job's result is discarded)."""
        now = self._clock()
        job = self.backend.cancel_job(self.scope, _job_id(job_id), now)
        self.notify()
        if job.error is not None and self._events.active:  # it was blocking its queue
            at = to_datetime(now)
            assert at is not None
            self._events.deliver(Event("queue_unblocked", job, at))
        return job

    def prune(self, older_than: Duration | timedelta) -> int:
        """Delete done jobs finished more than ``older_than`` seconds ago; return how many."""
        age = check.duration("older_than", older_than)
        return self.backend.prune(self.scope, self._clock() - age)

    def backup(self, destination: str | os.PathLike[str]) -> None:
        """Copy the live database to ``destination`` (SQLite's online backup API).

        Safe while workers run: the copy is one consistent snapshot. This is the
        right way to copy a live database; copying the files is not.
        """
        backup = getattr(self.backend, "backup", None)
        if backup is None:
            raise InvalidJobError("database", "this backend has no backup(); use the "
                                  "database's own tools (pg_dump for Postgres)")
        backup(destination)

    def close(self) -> None:
        """Stop the scheduler and close the database connections."""
        self.stop()
        self.backend.close()


def _job_id(job_id: object) -> int:
    """An integer job id; one no database could hold is simply not found."""
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise InvalidJobError("job_id", f"expected an integer, got {job_id!r}")
    if not 0 < job_id <= check.MAX_INT:
        raise JobNotFoundError(job_id)
    return job_id


__all__ = ["Queuetopia", "open_backend", "JobNotFoundError"]
