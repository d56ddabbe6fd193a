"""The scheduler: claims queue heads, runs them on worker threads, records outcomes.

A worker that finishes a job records its outcome and claims its next head in one
step, itself: no hand-off to another thread between two jobs. Steps go through a
combining lock: whoever holds it serves every request waiting at that moment in
one transaction (group commit), so concurrent workers share commits instead of
queueing for SQLite's lock. The scheduler thread claims work for idle workers,
enforces timeouts, retries outcomes a database error left unsaved, and sleeps
until the next due time. A heartbeat thread renews the leases of running jobs; a
watcher thread wakes the scheduler when another process commits.
"""

from __future__ import annotations

import logging
import math
import queue as queues
import random
import threading
import time
from typing import Callable

from .backend import Backend, Claim, Failure, Outcome, Release, StepResult
from .errors import DatabaseError
from .job import Job
from .performer import BoundPerformer
from .running import Request, Task, TaskState, owner_name, perform

log = logging.getLogger("queuetopia_lite")

WATCH_INTERVAL = 0.005  # seconds between looks for other processes' commits
# After a job was written in an application's transaction, its commit is near: look
# more often for a while (a look is one PRAGMA data_version, a few microseconds).
EXPECT_INTERVAL = 0.0002  # seconds between looks while a commit is expected
EXPECT_TIME = 2.0  # seconds the closer watch lasts after such a write
ERROR_PAUSE_MAX = 30.0  # seconds: the longest pause after a database error
DRAIN_SAVE_TRIES = 5  # drain() tries to save a job's result this often before raising


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
        self._expect_until = 0.0  # time.monotonic() until which commits are watched closely
        self._stopping = threading.Event()  # stop claiming, finish what runs
        self._halt = threading.Event()  # the helper threads end
        self._lock = threading.Lock()  # guards the fields below it
        self._tasks: dict[str, Task] = {}  # by claim token, runaways included
        self._reclaiming = 0  # workers between a job's end and their next claim
        self._requests: list[Request] = []  # steps waiting for the combining lock
        self._unsaved: list[Outcome] = []  # outcomes a failed step left for a retry
        self._combining = threading.Lock()  # held while one step serves all requests
        self._work: queues.SimpleQueue[Task | None] = queues.SimpleQueue()
        self._callbacks: queues.SimpleQueue[Job | None] = queues.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._workers: list[threading.Thread] = []
        self.failure: DatabaseError | None = None  # why the scheduler stopped on its own
        self.iterations = 0  # scheduler loop turns, for tests that check it does not spin
        self._wake_at = 0.0  # time.monotonic() the sleeping scheduler wakes at (0: awake)

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
        self.failure = None
        self._spawn(self._loop, "scheduler")
        self._spawn(lambda: self._heartbeat(self._halt), "heartbeat")
        self._spawn(self._watch, "watcher")
        self._spawn(self._run_callbacks, "callbacks")
        for _ in range(self._max_workers):
            self._add_worker()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, let running jobs end and save their results, then stop.

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

    def expect_commit(self) -> None:
        """A job was written in an application's open transaction: watch for its commit."""
        self._expect_until = time.monotonic() + EXPECT_TIME

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"queuetopia-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _add_worker(self) -> None:
        thread = threading.Thread(target=self._worker, name="queuetopia-worker", daemon=True)
        thread.start()
        self._workers.append(thread)

    # -- steps through the combining lock ----------------------------------------

    def _submit(self, outcomes: list[Outcome], want: int) -> Request:
        """Save outcomes and claim up to ``want`` heads, sharing a step with other requests."""
        request = Request(outcomes, want)
        with self._lock:
            self._requests.append(request)
        with self._combining:
            if not request.done:  # nobody served it while we waited: serve everyone
                with self._lock:
                    batch, self._requests = self._requests, []
                self._serve(batch)
        return request

    def _serve(self, batch: list[Request]) -> None:
        with self._lock:  # outcomes an earlier step failed to save go first
            outcomes, self._unsaved = self._unsaved, []
        outcomes += [outcome for request in batch for outcome in request.outcomes]
        # A runaway's Release must follow its timeout Failure, or its queue would be
        # released while the job still looks running (and the next job overtake it).
        outcomes.sort(key=lambda outcome: isinstance(outcome, Release))
        want = sum(request.want for request in batch)
        try:
            result = self._step(self._clock(), outcomes, want)
        except Exception as exc:  # the scheduler thread retries the outcomes, with backoff
            with self._lock:
                self._unsaved.extend(outcomes)
            for request in batch:
                request.error, request.done = exc, True
            self._wake.set()
            return
        self._report(result)
        tasks = self._register(result.claimed)
        for request in batch:
            request.tasks, tasks = tasks[:request.want], tasks[request.want:]
            request.done = True
        for task in tasks:  # cannot happen (at most `want` claims), but never drop one
            self._work.put(task)

    def _step(self, now: float, outcomes: list[Outcome], free: int) -> StepResult:
        with self._lock:
            alive = set(self._tasks)  # our own running jobs, runaways included
        return self._backend.step(self._scope, now, outcomes=outcomes, claim=max(free, 0),
                                  owner=owner_name(), lease=self._lease,
                                  backoff=self._performer.backoff, alive=alive)

    def _register(self, claims: list[Claim]) -> list[Task]:
        tasks = [Task(claim) for claim in claims]
        with self._lock:
            for task in tasks:
                self._tasks[task.claim.token] = task
        return tasks

    def _report(self, result: StepResult) -> None:
        for outcome in result.rejected:
            log.warning("queuetopia_lite: the result of job %s was discarded: its claim was "
                        "lost (lease expired, job cancelled or taken over)", outcome.claim.job.id)
        for job in result.failed:
            self._callbacks.put(job)

    # -- the scheduler thread ---------------------------------------------------

    def _loop(self) -> None:
        error_pause = 0.0
        next_cleanup = None
        if self._cleanup_interval is not None:
            next_cleanup = time.monotonic() + random.uniform(0, min(self._cleanup_interval, 1.0))
        while True:
            self._wake.clear()
            self.iterations += 1
            outcomes = self._expire_timeouts()
            with self._lock:
                unsaved = bool(self._unsaved)  # the next step (any thread's) takes them
                free = 0 if self._stopping.is_set() else self._free_slots()
            try:
                if outcomes or unsaved or (free > 0 and self._backend.has_runnable(
                        self._scope, self._clock())):
                    request = self._submit(outcomes, free)
                    if request.error is not None:
                        raise request.error
                    for task in request.tasks:
                        self._work.put(task)
                if next_cleanup is not None and time.monotonic() >= next_cleanup:
                    assert self._cleanup_interval is not None
                    self._backend.prune(self._scope, self._clock() - self._job_retention)
                    next_cleanup = time.monotonic() + self._cleanup_interval
                # Any deadline set from here on wakes us: _sleep_time may not see it.
                self._wake_at = math.inf
                pause = None if self._wake.is_set() else self._sleep_time(next_cleanup, free)
                error_pause = 0.0
            except Exception as exc:  # the scheduler thread must never die silently
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
            if self._stopping.is_set() and self._settled():
                return
            if pause is not None and error_pause:
                # A failed step sets _wake (to get its outcomes retried): waking on it
                # would retry at once, a hot loop on a full disk. Only stop() cuts it short.
                deadline = time.monotonic() + pause
                while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
                    self._wake.clear()
                    self._wake.wait(left)
            elif pause is not None:
                self._wake_at = time.monotonic() + pause
                self._wake.wait(pause)
            self._wake_at = 0.0

    def _free_slots(self) -> int:
        """Workers neither running a job nor about to claim their next one (lock held)."""
        running = sum(1 for task in self._tasks.values() if task.state is TaskState.RUNNING)
        return self._max_workers - running - self._reclaiming

    def _settled(self) -> bool:
        """Nothing runs (runaways aside) and nothing waits to be saved."""
        with self._lock:
            return (not self._unsaved and not self._requests and self._reclaiming == 0
                    and all(t.state is not TaskState.RUNNING for t in self._tasks.values()))

    def _expire_timeouts(self) -> list[Outcome]:
        """Record jobs past their timeout as failed; their queue stays locked."""
        mono = time.monotonic()
        expired = []
        with self._lock:
            for task in self._tasks.values():
                if task.state is TaskState.RUNNING and task.deadline is not None \
                        and task.deadline <= mono:
                    task.state = TaskState.TIMED_OUT
                    expired.append(task)
        outcomes: list[Outcome] = []
        for task in expired:
            job = task.claim.job
            log.warning("queuetopia_lite: job %s in queue %r passed its %s s timeout",
                        job.id, job.queue, job.timeout)
            outcomes.append(Failure(task.claim, f"timeout: the job ran longer than {job.timeout} s",
                                    self._clock() + self._performer.safe_backoff(job),
                                    keep_lock=True))
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
                         if t.state is TaskState.RUNNING and t.deadline is not None]
        if deadlines:
            wait = min(wait, min(deadlines) - mono)
        if next_cleanup is not None:
            wait = min(wait, next_cleanup - mono)
        return max(wait, 0.0)

    # -- worker threads ---------------------------------------------------------

    def _worker(self) -> None:
        task = self._work.get()
        while task is not None:
            job = task.claim.job
            if job.timeout is not None:
                deadline = time.monotonic() + job.timeout
                with self._lock:
                    task.deadline = deadline
                if deadline < self._wake_at:  # the scheduler would sleep past it
                    self._wake.set()
            outcome = perform(self._performer, task.claim, self._clock)
            with self._lock:
                runaway = task.state is TaskState.TIMED_OUT
                task.state = TaskState.DONE
                del self._tasks[task.claim.token]
                if not runaway:
                    self._reclaiming += 1
                others_running = any(t.state is TaskState.RUNNING for t in self._tasks.values())
            if runaway:  # a replacement worker took this thread's place at the timeout
                self._submit([Release(task.claim)], 0)
                return
            if others_running:
                # Let the other workers post their outcomes first, to share one step.
                time.sleep(0)
            try:
                request = self._submit([outcome], 0 if self._stopping.is_set() else 1)
            finally:
                with self._lock:
                    self._reclaiming -= 1
            if not request.tasks:
                self._wake.set()  # a free worker: the scheduler may have work for it
            task = request.tasks[0] if request.tasks else self._work.get()

    # -- helper threads -----------------------------------------------------------

    def _heartbeat(self, halt: threading.Event, linger: bool = True) -> None:
        """Renew the leases of every job in flight, every third of a lease.

        With ``linger``, it goes on after ``halt`` while runaway jobs (past their
        timeout) still run: their queues must stay locked until their threads end.
        """
        interval = self._lease / 3
        while True:
            if halt.is_set():
                time.sleep(interval)
            else:
                halt.wait(interval)
            with self._lock:
                claims = [t.claim for t in self._tasks.values()]
            if halt.is_set() and (not claims or not linger):
                return
            try:
                lost = self._backend.renew(self._scope, claims, self._clock() + self._lease)
            except Exception as exc:  # the heartbeat must outlive a bad moment
                log.error("queuetopia_lite: cannot renew leases: %s", exc)
                continue
            for claim in lost:
                log.warning("queuetopia_lite: lost the lock of queue %r (job %s): its result "
                            "will be discarded", claim.job.queue, claim.job.id)

    def _watch(self) -> None:
        """Wake the scheduler when another connection commits (PRAGMA data_version)."""
        last = None
        while not self._halt.wait(EXPECT_INTERVAL if time.monotonic() < self._expect_until
                                  else WATCH_INTERVAL):
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
        except BaseException:  # SystemExit too: one hook must not end the others
            log.exception("queuetopia_lite: handle_failed_job raised for job %s", job.id)

    # -- drain: run due jobs in the caller's thread ------------------------------

    def drain(self) -> int:
        """Run due jobs in this thread until none is due; return how many ran.

        Ctrl-C (KeyboardInterrupt) during a job saves it as a failed attempt and
        then stops the drain by raising.
        """
        ran = 0
        outcomes: list[Outcome] = []
        halt = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(halt, False), daemon=True,
                                     name="queuetopia-drain-heartbeat")
        heartbeat.start()
        try:
            while True:
                result = self._drain_step(outcomes, 1)
                if not result.claimed:
                    return ran
                (task,) = self._register(result.claimed)
                interrupts: list[BaseException] = []
                try:
                    outcomes = [perform(self._performer, task.claim, self._clock, interrupts)]
                finally:
                    with self._lock:
                        del self._tasks[task.claim.token]
                ran += 1
                if interrupts:
                    self._drain_step(outcomes, 0)
                    raise interrupts[0]
        finally:
            halt.set()

    def _drain_step(self, outcomes: list[Outcome], claim: int) -> StepResult:
        """A step for drain(); outcomes get a few more tries before an error is raised."""
        pause = 0.1
        with self._lock:  # results an earlier drain could not save
            outcomes = self._unsaved + outcomes
            self._unsaved = []
        for attempt in range(DRAIN_SAVE_TRIES):
            try:
                result = self._step(self._clock(), outcomes, claim)
                break
            except DatabaseError as exc:
                if not outcomes or not exc.retryable or attempt == DRAIN_SAVE_TRIES - 1:
                    with self._lock:  # kept for the next step, never dropped
                        self._unsaved[:0] = outcomes
                    raise
                log.error("queuetopia_lite: %s (saving the result again in %.1f s)", exc, pause)
                time.sleep(pause)
                pause *= 2
        for job in result.failed:
            self.call_failed_hook(job)
        return result


__all__ = ["Scheduler", "owner_name"]
