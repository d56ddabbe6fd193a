"""The scheduler: claims queue heads, runs them on worker threads, records outcomes.

One scheduler thread talks to the database for claims and outcomes, so several
outcomes and the next claims share one transaction (group commit). Worker
threads only run jobs. A heartbeat thread renews the leases of running jobs; a
watcher thread wakes the scheduler when another process commits.
"""

from __future__ import annotations

import logging
import os
import queue as queues
import random
import socket
import threading
import time
from typing import Callable

from .backend import Backend, Claim, Failure, Outcome, Release, StepResult, Success
from .errors import DatabaseError
from .errortext import error_text
from .job import Job
from .performer import BoundPerformer

log = logging.getLogger("queuetopia_lite")

WATCH_INTERVAL = 0.005  # seconds between looks for other processes' commits
ERROR_PAUSE_MAX = 30.0  # seconds: the longest pause after a database error

_RUNNING, _DONE, _TIMED_OUT = "running", "done", "timed out"


_owner: tuple[int, str] = (0, "")  # (pid, name): gethostname() is a system call per step


def owner_name() -> str:
    """host:pid, the worker's name in attempted_by and locked_by."""
    global _owner
    pid = os.getpid()
    if _owner[0] != pid:  # computed again in a forked child
        _owner = (pid, f"{socket.gethostname()}:{pid}")
    return _owner[1]


class _Task:
    """A claimed job handed to a worker thread."""

    __slots__ = ("claim", "deadline", "state")

    def __init__(self, claim: Claim, deadline: float | None) -> None:
        self.claim = claim
        self.deadline = deadline  # time.monotonic() value, None: no timeout
        self.state = _RUNNING


class Scheduler:
    """Runs one scope's jobs in this process. Made and driven by Queuetopia."""

    def __init__(self, backend: Backend, performer: BoundPerformer, *, scope: str,
                 max_workers: int, lease: float, poll_interval: float,
                 cleanup_interval: float | None, job_retention: float,
                 clock: Callable[[], float]) -> None:
        self._backend = backend
        self._performer = performer
        self._scope = scope
        self._max_workers = max_workers
        self._lease = lease
        self._poll_interval = poll_interval
        self._cleanup_interval = cleanup_interval
        self._job_retention = job_retention
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()  # stop claiming, finish what runs
        self._halt = threading.Event()  # the helper threads end
        self._lock = threading.Lock()  # guards _outcomes and _tasks
        self._outcomes: list[Outcome] = []
        self._tasks: dict[str, _Task] = {}  # by claim token, runaways included
        self._work: queues.SimpleQueue[_Task | None] = queues.SimpleQueue()
        self._callbacks: queues.SimpleQueue[Job | None] = queues.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._workers: list[threading.Thread] = []
        self.failure: DatabaseError | None = None  # why the scheduler stopped on its own
        self.iterations = 0  # scheduler loop turns, for tests that check it does not spin

    # -- lifecycle --------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the scheduler thread is alive."""
        return bool(self._threads) and self._threads[0].is_alive()

    def start(self) -> None:
        """Start the scheduler, heartbeat, watcher, callback and worker threads."""
        if self.running:
            return
        # Fresh queues: stop() left None sentinels for workers that may have exited.
        self._work = queues.SimpleQueue()
        self._callbacks = queues.SimpleQueue()
        self._stopping.clear()
        self._halt.clear()
        self._spawn(self._loop, "scheduler")
        self._spawn(lambda: self._heartbeat(self._halt), "heartbeat")
        self._spawn(self._watch, "watcher")
        self._spawn(self._run_callbacks, "callbacks")
        for _ in range(self._max_workers):
            self._add_worker()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, let running jobs end and save their outcomes, then stop.

        A job that outlived its timeout keeps running in its thread: its queue
        stays locked until its lease expires, and its late result is discarded.
        """
        if not self._threads:
            return
        self._stopping.set()
        self._wake.set()
        loop, *others = self._threads
        loop.join(timeout)
        self._halt.set()
        for _ in self._workers:
            self._work.put(None)
        self._callbacks.put(None)
        for thread in others:
            thread.join(timeout)
        self._threads = []
        self._workers = []

    def notify(self) -> None:
        """Wake the scheduler: something may be runnable."""
        self._wake.set()

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"queuetopia-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _add_worker(self) -> None:
        thread = threading.Thread(target=self._worker, name="queuetopia-worker", daemon=True)
        thread.start()
        self._workers.append(thread)

    # -- the scheduler thread ---------------------------------------------------

    def _loop(self) -> None:
        error_pause = 0.0
        next_cleanup = None
        if self._cleanup_interval is not None:
            next_cleanup = time.monotonic() + random.uniform(0, min(self._cleanup_interval, 1.0))
        while True:
            self._wake.clear()
            with self._lock:
                outcomes, self._outcomes = self._outcomes, []
                busy = sum(1 for t in self._tasks.values() if t.state == _RUNNING)
            outcomes += self._expire_timeouts()
            stopping = self._stopping.is_set()
            free = 0 if stopping else self._max_workers - busy
            self.iterations += 1
            try:
                self._tick(outcomes, free)
                if next_cleanup is not None and time.monotonic() >= next_cleanup:
                    assert self._cleanup_interval is not None
                    self._backend.prune(self._scope, self._clock() - self._job_retention)
                    next_cleanup = time.monotonic() + self._cleanup_interval
                pause = None if self._wake.is_set() else self._sleep_time(next_cleanup, free)
                error_pause = 0.0
            except Exception as exc:  # the scheduler thread must never die silently
                with self._lock:  # keep the outcomes for the next try
                    self._outcomes[:0] = outcomes
                if isinstance(exc, DatabaseError) and not exc.retryable:
                    log.critical("queuetopia_lite: %s: the scheduler stops", exc)
                    self.failure = exc
                    self._stopping.set()
                    return
                error_pause = min(max(error_pause * 2, 0.1), ERROR_PAUSE_MAX)
                if isinstance(exc, DatabaseError):
                    log.error("queuetopia_lite: %s (retrying in %.1f s)", exc, error_pause)
                else:
                    log.exception("queuetopia_lite: scheduler error (retrying in %.1f s)",
                                  error_pause)
                pause = error_pause
            if stopping:
                with self._lock:
                    if not self._outcomes and all(t.state != _RUNNING
                                                  for t in self._tasks.values()):
                        return
            if pause is not None:
                self._wake.wait(pause)

    def _tick(self, outcomes: list[Outcome], free: int) -> None:
        """Save outcomes and claim heads when there is anything to save or claim."""
        now = self._clock()
        if outcomes or (free > 0 and self._backend.has_runnable(self._scope, now)):
            self._dispatch(self._step(now, outcomes, free))

    def _step(self, now: float, outcomes: list[Outcome], free: int) -> StepResult:
        with self._lock:
            alive = set(self._tasks)  # our own running jobs, runaways included
        return self._backend.step(self._scope, now, outcomes=outcomes, claim=max(free, 0),
                                  owner=owner_name(), lease=self._lease,
                                  backoff=self._performer.backoff, alive=alive)

    def _dispatch(self, result: StepResult) -> None:
        for outcome in result.rejected:
            log.warning("queuetopia_lite: the result of job %s was discarded: its claim was "
                        "lost (lease expired, job cancelled or taken over)", outcome.claim.job.id)
        for job in result.failed:
            self._callbacks.put(job)
        mono = time.monotonic()
        with self._lock:
            for claim in result.claimed:
                timeout = claim.job.timeout
                task = _Task(claim, None if timeout is None else mono + timeout)
                self._tasks[claim.token] = task
                self._work.put(task)

    def _expire_timeouts(self) -> list[Outcome]:
        """Record jobs past their timeout as failed; their queue stays locked."""
        mono = time.monotonic()
        expired = []
        with self._lock:
            for task in self._tasks.values():
                if task.state == _RUNNING and task.deadline is not None and task.deadline <= mono:
                    task.state = _TIMED_OUT
                    expired.append(task)
        outcomes: list[Outcome] = []
        for task in expired:
            job = task.claim.job
            log.warning("queuetopia_lite: job %s in queue %r passed its %s s timeout",
                        job.id, job.queue, job.timeout)
            outcomes.append(Failure(task.claim, f"timeout: the job ran longer than {job.timeout} s",
                                    self._clock() + self._backoff(job), keep_lock=True))
            self._add_worker()  # the runaway thread must not take a slot from other queues
        return outcomes

    def _sleep_time(self, next_cleanup: float | None, free: int) -> float:
        wait = self._poll_interval
        # With every worker busy, a due queue cannot be claimed: wait for a worker
        # (its outcome wakes us) rather than spin on a due time already past.
        due = self._backend.next_due(self._scope) if free > 0 else None
        if due is not None:
            wait = min(wait, due - self._clock())
        mono = time.monotonic()
        with self._lock:
            deadlines = [t.deadline for t in self._tasks.values()
                         if t.state == _RUNNING and t.deadline is not None]
        if deadlines:
            wait = min(wait, min(deadlines) - mono)
        if next_cleanup is not None:
            wait = min(wait, next_cleanup - mono)
        return max(wait, 0.0)

    # -- worker threads ---------------------------------------------------------

    def _worker(self) -> None:
        while True:
            task = self._work.get()
            if task is None:
                return
            try:
                outcome = self._perform(task.claim)
            except BaseException as exc:  # never leave a task without an outcome
                outcome = Failure(task.claim, f"queuetopia_lite internal error: {exc!r}",
                                  self._clock() + 1.0)
            with self._lock:
                runaway = task.state == _TIMED_OUT
                task.state = _DONE
                del self._tasks[task.claim.token]
                self._outcomes.append(Release(task.claim) if runaway else outcome)
            self._wake.set()
            if runaway:
                return  # a replacement worker took this thread's place at the timeout

    def _perform(self, claim: Claim) -> Outcome:
        """Run the job; its return is success, its raise (any exception) failure."""
        try:
            self._performer.perform(claim.job)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt too: a failed attempt
            return Failure(claim, error_text(exc), self._clock() + self._backoff(claim.job))
        return Success(claim)

    def _backoff(self, job: Job) -> float:
        try:
            return self._performer.backoff(job)
        except Exception:
            log.exception("queuetopia_lite: the performer's backoff() raised; using the default")
            from .backend import default_backoff

            return default_backoff(job)

    # -- helper threads -----------------------------------------------------------

    def _heartbeat(self, halt: threading.Event) -> None:
        """Renew the leases of every job in flight, every third of a lease, until halted."""
        while not halt.wait(self._lease / 3):
            with self._lock:
                claims = [t.claim for t in self._tasks.values()]
            try:
                lost = self._backend.renew(self._scope, claims, self._clock() + self._lease)
            except DatabaseError as exc:
                log.error("queuetopia_lite: cannot renew leases: %s", exc)
                continue
            for claim in lost:
                log.warning("queuetopia_lite: lost the lock of queue %r (job %s): its result "
                            "will be discarded", claim.job.queue, claim.job.id)

    def _watch(self) -> None:
        """Wake the scheduler when another connection commits (PRAGMA data_version)."""
        last = None
        while not self._halt.wait(WATCH_INTERVAL):
            try:
                counter = self._backend.change_counter()
            except DatabaseError:
                continue
            if counter != last:
                # The first reading wakes the scheduler too: a commit that landed
                # after the scheduler's first look but before this baseline would
                # otherwise wait for the next poll.
                self._wake.set()
                last = counter

    def _run_callbacks(self) -> None:
        while (job := self._callbacks.get()) is not None:
            self.call_failed_hook(job)

    def call_failed_hook(self, job: Job) -> None:
        """The performer's handle_failed_job(job); its errors are logged, never raised."""
        try:
            self._performer.handle_failed_job(job)
        except Exception:
            log.exception("queuetopia_lite: handle_failed_job raised for job %s", job.id)

    # -- drain: run due jobs in the caller's thread ------------------------------

    def drain(self) -> int:
        """Run due jobs in this thread until none is due; return how many ran."""
        ran = 0
        outcomes: list[Outcome] = []
        halt = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(halt,), daemon=True,
                                     name="queuetopia-drain-heartbeat")
        heartbeat.start()
        try:
            while True:
                result = self._step(self._clock(), outcomes, 1)
                for job in result.failed:
                    self.call_failed_hook(job)
                if not result.claimed:
                    return ran
                claim = result.claimed[0]
                with self._lock:
                    self._tasks[claim.token] = _Task(claim, None)
                try:
                    outcomes = [self._perform(claim)]
                finally:
                    with self._lock:
                        del self._tasks[claim.token]
                ran += 1
        finally:
            halt.set()
