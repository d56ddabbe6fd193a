"""AsyncQueuetopia: Queuetopia for asyncio applications; no call blocks the event loop.

It wraps a Queuetopia and runs each database call on a small thread pool of its
own, so a locked or slow database delays the awaiting caller only. Async
actions are awaited on the scheduler's own event loop (scheduler/aioloop.py),
not on the application's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from .backend import Backend, NewJob
from .errors import InvalidJobError
from .job import Job, JobState, QueueStatus
from .performer import PerformerArg
from .queuetopia import DEFAULT_JOB_RETENTION, DEFAULT_LEASE, DEFAULT_POLL_INTERVAL, Queuetopia
from .validation import NOT_GIVEN, Duration, NotGiven

T = TypeVar("T")

# Threads that carry database calls. SQLite writes are one at a time anyway and
# each thread holds a connection; a pool of our own leaves the loop's default
# executor (asyncio.to_thread) to the application while the database is locked.
DB_THREADS = 4
RUN_CHECK = 0.2  # seconds between run()'s looks at whether the scheduler stopped on its own


class AsyncQueuetopia:
    """Queuetopia for asyncio: the same arguments, and awaitable methods.

    Every call that touches the database runs in a thread, so the event loop
    never waits for it. Async actions (``async def``) are awaited on the
    scheduler's own event loop thread; sync actions run on worker threads.

    Made outside a running event loop it opens the database at once (as
    Queuetopia does, raising its errors there); made inside one, it opens it at
    the first awaited call, in a thread.

    Example:
        aq = AsyncQueuetopia("jobs.db", performer)
        async with aq:                      # the scheduler runs while the block runs
            job = await aq.create_job("mails", "send_mail", {"to": "a@b.c"})
    """

    def __init__(self, database: str | os.PathLike[str] | Backend,
                 performer: PerformerArg | None = None, *, scope: str = "default",
                 poll_interval: Duration = DEFAULT_POLL_INTERVAL, max_workers: int = 8,
                 lease: Duration = DEFAULT_LEASE, durability: str = "full",
                 cleanup_interval: Duration | None = None,
                 job_retention: Duration = DEFAULT_JOB_RETENTION, migrate: bool = True,
                 driver: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self._open_args = functools.partial(
            Queuetopia, database, performer, scope=scope, poll_interval=poll_interval,
            max_workers=max_workers, lease=lease, durability=durability,
            cleanup_interval=cleanup_interval, job_retention=job_retention, migrate=migrate,
            driver=driver, clock=clock)
        self._queuetopia: Queuetopia | None = None
        self._lock = threading.Lock()  # opening, and the thread pool
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._open()

    # -- the wrapped Queuetopia -------------------------------------------------------

    @property
    def queuetopia(self) -> Queuetopia:
        """The synchronous Queuetopia underneath (opened now if it was not: that may wait
        for the database, so call it from a thread when a loop runs here)."""
        return self._open()

    def _open(self) -> Queuetopia:
        with self._lock:
            if self._queuetopia is None:
                self._queuetopia = self._open_args()
            return self._queuetopia

    async def _call(self, fn: Callable[[Queuetopia], T]) -> T:
        """``fn(queuetopia)`` in one of our threads; the caller awaits, the loop runs on."""
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    DB_THREADS, thread_name_prefix="queuetopia-db")
            pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(
            pool, lambda: fn(self._open()))

    # -- creating jobs ----------------------------------------------------------------

    async def create_job(self, queue: str, action: str, params: Mapping[str, Any] | None = None,
                         *, scheduled_at: Any = None,
                         timeout: Duration | NotGiven | None = NOT_GIVEN,
                         max_backoff: Duration | NotGiven = NOT_GIVEN,
                         max_attempts: int | NotGiven = NOT_GIVEN,
                         unique_key: str | None = None, connection: Any = None) -> Job:
        """Queuetopia.create_job, awaited.

        ``connection`` may also be a psycopg ``AsyncConnection`` inside a
        transaction on the same Postgres database: the job is written in that
        transaction with ``await``, stored if and only if it commits. A
        ``sqlite3.Connection`` is used in the calling thread (sqlite3 refuses
        other threads by default); an ``apsw.Connection`` in a thread.
        """
        options = dict(scheduled_at=scheduled_at, timeout=timeout, max_backoff=max_backoff,
                       max_attempts=max_attempts, unique_key=unique_key)
        if connection is None:
            return await self._call(lambda q: q.create_job(queue, action, params, **options))
        q = await self._call(lambda q: q)
        (job,) = await self._insert_in(q, [q._new_job(queue, action, params, **options)],
                                       connection)
        return job

    async def create_jobs(self, jobs: Iterable[Any], *, connection: Any = None,
                          **options: Any) -> list[Job]:
        """Queuetopia.create_jobs, awaited (``connection``: as in create_job)."""
        items = list(jobs)
        if connection is None:
            return await self._call(lambda q: q.create_jobs(items, **options))
        q = await self._call(lambda q: q)
        new = q._new_jobs(items, options)
        return await self._insert_in(q, new, connection) if new else []

    async def _insert_in(self, q: Queuetopia, new: Sequence[NewJob],
                         connection: Any) -> list[Job]:
        # sqlite3 is looked up, not imported: importing it would turn on the per-write
        # check for two SQLite libraries in this process.
        sqlite3 = sys.modules.get("sqlite3")
        if sqlite3 is not None and isinstance(connection, sqlite3.Connection):
            return q._insert(new, connection)  # its own thread only; its transaction is open
        if type(connection).__name__ == "AsyncConnection":
            insert = getattr(q.backend, "insert_jobs_in_async", None)
            if insert is None:
                raise InvalidJobError("connection", "an async psycopg connection needs a "
                                      "postgresql:// database")
            jobs: list[Job] = await insert(connection, q.scope, new, q._clock())
            return jobs
        return await self._call(lambda q: q._insert(new, connection))

    # -- running ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the scheduler's threads (Queuetopia.start, off the loop)."""
        await self._call(lambda q: q.start())

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, let running jobs end and save their results (off the loop)."""
        await self._call(lambda q: q.stop(timeout))

    async def __aenter__(self) -> AsyncQueuetopia:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Run jobs until this call is cancelled, or until SIGINT or SIGTERM when awaited in
        the main thread; stop gracefully either way (a cancelled run() then re-raises
        CancelledError).

        Raises:
            DatabaseError: the database became unusable in a way waiting cannot cure.
        """
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        handled: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, stop.set)
                    handled.append(sig)
                except (NotImplementedError, RuntimeError):  # e.g. Windows' loops
                    pass
        q = await self._call(lambda q: q)
        await self.start()
        scheduler = q._scheduler
        try:
            while scheduler is not None and scheduler.running and not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), RUN_CHECK)
                except asyncio.TimeoutError:
                    pass
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await asyncio.shield(self.stop())
        if scheduler is not None and scheduler.failure is not None:
            raise scheduler.failure

    async def drain(self) -> int:
        """Run due jobs (async ones too) in a thread until none is due; return how many ran.

        As Queuetopia.drain: no timeout is enforced.
        """
        return await self._call(lambda q: q.drain())

    def notify(self) -> None:
        """Wake the scheduler (never waits)."""
        if self._queuetopia is not None:
            self._queuetopia.notify()

    def periodic(self, name: str, schedule: str | Duration, queue: str, action: str,
                 params: Mapping[str, Any] | None = None) -> None:
        """Queuetopia.periodic. No database work once opened (an AsyncQueuetopia made in a
        running loop and not used yet opens here); ``performer.periodic`` avoids that."""
        self.queuetopia.periodic(name, schedule, queue, action, params)

    async def close(self) -> None:
        """Stop the scheduler, close the database connections and our threads."""
        if self._queuetopia is not None:
            await self._call(lambda q: q.close())
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    # -- reading and operating --------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        """The job with this id in this scope, or None."""
        return await self._call(lambda q: q.get_job(job_id))

    async def list_jobs(self, *, queue: str | None = None, state: JobState | str | None = None,
                        action: str | None = None, limit: int = 100,
                        offset: int = 0) -> list[Job]:
        """This scope's jobs, newest first (Queuetopia.list_jobs)."""
        return await self._call(lambda q: q.list_jobs(queue=queue, state=state, action=action,
                                                      limit=limit, offset=offset))

    async def count_jobs(self) -> dict[JobState, int]:
        """How many jobs of this scope are in each state."""
        return await self._call(lambda q: q.count_jobs())

    async def queues(self, queue: str | None = None) -> list[QueueStatus]:
        """Every queue of this scope with its state, by name (or just ``queue``)."""
        return await self._call(lambda q: q.queues(queue))

    async def retry_job(self, job_id: int) -> Job:
        """Make a job runnable now, attempts kept (Queuetopia.retry_job)."""
        return await self._call(lambda q: q.retry_job(job_id))

    async def cancel_job(self, job_id: int) -> Job:
        """Cancel an unfinished job; its queue moves on (Queuetopia.cancel_job)."""
        return await self._call(lambda q: q.cancel_job(job_id))

    async def prune(self, older_than: Duration | timedelta) -> int:
        """Delete done jobs finished more than ``older_than`` ago; return how many."""
        return await self._call(lambda q: q.prune(older_than))


__all__ = ["AsyncQueuetopia"]
