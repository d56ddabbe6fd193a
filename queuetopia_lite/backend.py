"""The storage seam: what the scheduler needs from a database, in our own terms.

A backend takes and returns queuetopia_lite values (never cursors). Every method
that depends on time takes ``now`` (seconds since the epoch), so tests drive the
clock. Every write after a claim is fenced by the claim's token.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Collection, Protocol, Sequence, Union, runtime_checkable

from .errors import InvalidJobError
from .job import Job, JobState, QueueStatus


@dataclasses.dataclass(frozen=True)
class NewJob:
    """A validated job to insert (durations in seconds, instants as epoch seconds)."""

    queue: str
    action: str
    params: str  # a JSON object, serialised
    scheduled_at: float | None  # None: now
    timeout: float | None
    max_backoff: float
    max_attempts: int
    unique_key: str | None = None  # one waiting job per key and scope (SPEC 12.4)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A job claimed by a worker: the job (attempt counted) and its lock's token."""

    job: Job
    token: str


@dataclasses.dataclass(frozen=True)
class Success:
    """The claimed job returned: mark it done and release its queue."""

    claim: Claim


@dataclasses.dataclass(frozen=True)
class Failure:
    """The claimed job failed: save the error and its retry time.

    ``keep_lock`` holds the queue (a timed-out job whose thread still runs).
    ``give_up`` ends the job as failed now (the action raised GiveUp): no retry,
    and its queue moves on without waiting a backoff (``next_attempt_at`` unused).
    """

    claim: Claim
    error: str
    next_attempt_at: float
    keep_lock: bool = False
    give_up: bool = False


@dataclasses.dataclass(frozen=True)
class Snoozed:
    """The claimed job asked to run again at ``until`` (it raised Snooze).

    Not a failure: the job goes back to waiting at its queue's head, its attempt
    uncounted (``attempts - 1``), its ``error`` and ``errors`` unchanged.
    """

    claim: Claim
    until: float


@dataclasses.dataclass(frozen=True)
class Release:
    """A runaway job's thread has ended: release the queue it kept locked."""

    claim: Claim


Outcome = Union[Success, Failure, Release, Snoozed]


@dataclasses.dataclass(frozen=True)
class HostInstant:
    """An instant on a clock that never jumps, comparable only within one host's boot.

    ``key`` names the clock (a boot id and time namespace, see hostclock.py); ``at``
    is its reading in seconds. A lease taken with one is judged by that clock by
    every caller passing the same key, and by the wall clock by the others.
    """

    key: str
    at: float

    def after(self, seconds: float) -> HostInstant:
        """The instant ``seconds`` later on the same clock."""
        return HostInstant(self.key, self.at + seconds)

BackoffFunction = Callable[[Job], float]

PeriodicTick = tuple[str, float, NewJob]  # a periodic's name, a tick (epoch s), its job


@dataclasses.dataclass(frozen=True)
class QueuePage:
    """One page of a scope's queues, for an overview of many.

    Attributes:
        total: queues matching the search (every page).
        failing: of those, unlocked queues whose head has failed (blocked, or due to retry).
        running: of those, queues locked by a worker.
        queues: this page: failing queues first, then running ones, then those with
            jobs waiting, then idle ones, each group by name.
    """

    total: int
    failing: int
    running: int
    queues: list[QueueStatus]


@dataclasses.dataclass(frozen=True)
class Activity:
    """Jobs done and failed per time bucket, from ``since`` on.

    ``done[i]`` and ``failed[i]`` count bucket ``i``, which starts at
    ``since + i * bucket`` (epoch seconds). A failure is a job whose last attempt
    failed, counted once, when that attempt started.
    """

    since: float
    bucket: float  # seconds
    done: list[int]
    failed: list[int]


QUEUE_PAGE_GROUPS = ("failing", "running")  # the groups queue_page(only=...) can select


@dataclasses.dataclass
class StepResult:
    """What one scheduling step did.

    Attributes:
        claimed: heads claimed for this worker, oldest-waiting queue first.
        failed: jobs whose failure was saved (for ``handle_failed_job``), including
            attempts lost with an expired lease.
        rejected: outcomes not saved because their claim was no longer valid (fencing).
    """

    claimed: list[Claim] = dataclasses.field(default_factory=list)
    failed: list[Job] = dataclasses.field(default_factory=list)
    rejected: list[Outcome] = dataclasses.field(default_factory=list)


@runtime_checkable
class Backend(Protocol):
    """Every query the scheduler and the facade need, for one database."""

    @property
    def location(self) -> str:
        """The database's name for messages (a path or a URL without password)."""
        ...

    def migrate(self) -> int:
        """Create or upgrade the schema; return its version."""
        ...

    def insert_jobs(self, scope: str, jobs: Sequence[NewJob], now: float) -> list[Job]:
        """Store all jobs in one transaction (all or none) and return them in order."""
        ...

    def create_periodic_jobs(self, scope: str, ticks: Sequence[PeriodicTick],
                             now: float) -> list[Job]:
        """In one transaction, for each (name, tick, job): store the job if the periodic
        ``name``'s last tick is before ``tick``, and make ``tick`` its last (a
        compare-and-set: one job per tick, however many processes try). A name seen for
        the first time records its tick and stores no job. Returns the stored jobs.
        """
        ...

    def get_job(self, scope: str, job_id: int, now: float) -> Job | None:
        """The job with this id in this scope, or None."""
        ...

    def list_jobs(
        self,
        scope: str,
        now: float,
        *,
        queue: str | None = None,
        state: JobState | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        """This scope's jobs, newest first, optionally filtered."""
        ...

    def step(
        self,
        scope: str,
        now: float,
        *,
        outcomes: Sequence[Outcome] = (),
        claim: int = 0,
        owner: str = "",
        lease: float = 30.0,
        backoff: BackoffFunction | None = None,
        alive: Collection[str] = (),
        host: HostInstant | None = None,
    ) -> StepResult:
        """In one transaction: save outcomes, recover expired leases, claim up to ``claim`` heads.

        Recovered attempts count as failed, with ``backoff`` (default formula if None).
        Claims whose token is in ``alive`` are the caller's own running jobs: never
        recovered, even if their lease looks expired (a clock jump on this host).
        ``host``: the caller's host clock now, if it has one. Claims made here then
        end ``lease`` seconds later on that clock too, and a lease taken with the
        same host key is judged by it rather than by ``now`` (a backend whose leases
        already follow one clock of its own, as Postgres's, may ignore it).
        """
        ...

    def renew(self, scope: str, claims: Sequence[Claim], until: float,
              host_until: HostInstant | None = None) -> list[Claim]:
        """Extend the leases of these claims' queues to ``until``; return the claims lost.

        ``host_until``: the same end on the caller's host clock, if it has one.
        """
        ...

    def lock_tokens(self, scope: str, prefix: str) -> list[str]:
        """The tokens of this scope's locked queues that start with ``prefix`` (a cheap read)."""
        ...

    def expire_claims(self, scope: str, tokens: Sequence[str], now: float) -> int:
        """End the leases of these claims at ``now`` (their holder is gone); return how many.

        Ended leases are judged by the wall clock from then on, whatever host clock
        they were taken with. A compare-and-set on each token: a queue unlocked or
        relocked since is left alone. The next step recovers them as it recovers any
        expired lease.
        """
        ...

    def next_due(self, scope: str, now: float | None = None,
                 host: HostInstant | None = None) -> float | None:
        """The earliest instant a queue of this scope becomes runnable or a lease expires.

        With ``now`` and ``host`` (read together), a lease judged by that host clock
        ends at ``now`` plus what is left of it on that clock.
        """
        ...

    def has_runnable(self, scope: str, now: float, host: HostInstant | None = None) -> bool:
        """Whether a claim now would find a head or an expired lease (a cheap read).

        ``host`` as in ``step``: leases of that host key are judged by it.
        """
        ...

    def change_counter(self) -> int:
        """A number that moves when the database may hold news for the scheduler.

        It must move on every other process's commit (cross-process wake-ups) and may
        move on this process's own commits (a spurious wake-up costs one cheap read).
        """
        ...

    def count_jobs(self, scope: str, now: float) -> dict[JobState, int]:
        """How many jobs of this scope are in each state (every state present, 0 included)."""
        ...

    def queue_statuses(self, scope: str, now: float, queue: str | None = None) -> list[QueueStatus]:
        """Every queue of this scope with its state, sorted by name."""
        ...

    def retry_job(self, scope: str, job_id: int, now: float) -> Job:
        """Make the job runnable now, attempts kept (one more if exhausted)."""
        ...

    def cancel_job(self, scope: str, job_id: int, now: float) -> Job:
        """Mark an unfinished job cancelled; its queue moves on."""
        ...

    def prune(self, scope: str, done_before: float) -> int:
        """Delete this scope's done jobs finished before ``done_before``; return how many."""
        ...

    # -- dashboard reads: bounded reads for looking at a large scope ------------

    def queue_page(self, scope: str, now: float, *, search: str | None = None,
                   only: str | None = None, limit: int = 50, offset: int = 0) -> QueuePage:
        """A page of this scope's queues whose name contains ``search`` (any case), failing
        first; ``only`` ("failing" or "running") keeps one group."""
        ...

    def pending_jobs(self, scope: str, queue: str, now: float, *, limit: int = 100,
                     offset: int = 0) -> list[Job]:
        """A queue's pending jobs (not the running one) in the order they will run."""
        ...

    def job_activity(self, scope: str, now: float, *, since: float,
                     bucket: float) -> Activity:
        """Jobs done and failed per ``bucket`` seconds from ``since`` up to ``now``."""
        ...

    def close(self) -> None:
        """Close this thread's connection (other threads close theirs at exit)."""
        ...


MAX_DURATION = 100 * 365 * 86400.0  # seconds: longer waits are refused or capped


def default_backoff(job: Job) -> float:
    """2, 3, 5, 9, 17... seconds for attempts 1, 2, 3, 4, 5..., capped by max_backoff."""
    exponent = min(max(job.attempts - 1, 0), 62)
    return float(min(2**exponent + 1, job.max_backoff, MAX_DURATION))


def safe_delay(backoff: BackoffFunction, job: Job) -> float:
    """``backoff(job)``, or the default formula when it raises (recovery must go on)."""
    try:
        return backoff(job)
    except Exception:
        return default_backoff(job)
def queue_page_rank(only: str | None) -> int | None:
    """The rank of queue_page's ``only`` group in its queries (None: every queue)."""
    if only is None:
        return None
    if only not in QUEUE_PAGE_GROUPS:
        raise InvalidJobError("only", f"expected one of {', '.join(QUEUE_PAGE_GROUPS)}, "
                              f"got {only!r}")
    return QUEUE_PAGE_GROUPS.index(only)


def activity(since: float, now: float, bucket: float, done: list[tuple[int, int]],
             failed: list[tuple[int, int]]) -> Activity:
    """An Activity from (bucket index, count) rows, the buckets up to ``now`` all present."""
    size = max(1, int((now - since) // bucket) + 1)
    counts = ([0] * size, [0] * size)
    for column, rows in zip(counts, (done, failed), strict=True):
        for index, n in rows:
            if 0 <= index < size:
                column[index] += int(n)
    return Activity(since=since, bucket=bucket, done=counts[0], failed=counts[1])
