"""Test helpers: a fake clock, running one action as the scheduler would, job assertions.

Example:
    from queuetopia_lite.testing import FakeClock, assert_job_created, perform_job

    clock = FakeClock()
    q = Queuetopia(path, performer, clock=clock)
    clock.advance(30)
    assert perform_job(performer, "charge", {"order": 7}) == "charged"
    assert_job_created(q, queue="mails", action="send_mail", params={"to": "a@b.c"})
    # in a coroutine, with an AsyncQueuetopia (or a Queuetopia): the same, awaited
    await assert_job_created_async(aq, queue="mails", action="send_mail")

The pytest plugin (``queuetopia_lite.pytest_plugin``) offers the first two as
fixtures: ``queuetopia_clock`` and ``perform_job``, with ``queuetopia_db``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, TypeVar

from . import validation as check
from .backend import Claim, Failure
from .errors import InvalidJobError
from .job import Job, JobState, to_datetime
from .performer import BoundPerformer
from .queuetopia import Queuetopia
from .running import owner_name, perform

if TYPE_CHECKING:
    from .aio import AsyncQueuetopia
from .scheduler.drain import LazyLoop

T = TypeVar("T")
_SCAN_LIMIT = 100_000  # jobs read per check; a test never creates more
_SHOWN = 10  # jobs a failure message lists
DEFAULT_START = 1_800_000_000.0  # seconds since the epoch: 2027-01-15 08:00:00 UTC


# -- the clock --------------------------------------------------------------------


class FakeClock:
    """A wall clock that moves only when told: pass it as ``Queuetopia(clock=...)``.

    Calling it returns seconds since the epoch, like ``time.time``, which is
    all ``clock=`` expects. It starts at ``start`` (a float or an aware
    datetime), by default a fixed instant so that tests are repeatable.
    """

    def __init__(self, start: float | datetime = DEFAULT_START) -> None:
        self.now = _epoch(start)

    def __call__(self) -> float:
        """The current fake instant, seconds since the epoch."""
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (a negative value moves back); return the new time."""
        self.now += float(seconds)
        return self.now

    def set(self, instant: float | datetime) -> float:
        """Jump to ``instant`` (epoch seconds or an aware datetime); return it."""
        self.now = _epoch(instant)
        return self.now

    @property
    def instant(self) -> datetime:
        """The current fake instant as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now, tz=timezone.utc)

    def __repr__(self) -> str:
        return f"FakeClock({self.instant.isoformat()})"


def _epoch(value: float | datetime) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidJobError("start", "a datetime needs a timezone (e.g. timezone.utc)")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidJobError("start", f"expected epoch seconds or a datetime, got {value!r}")
    return float(value)


# -- running one action -----------------------------------------------------------


def perform_job(performer: Any, action: str, params: Mapping[str, Any] | None = None, *,
                queue: str = "test", attempts: int = 1, clock: Callable[[], float] = time.time,
                **job_fields: Any) -> Any:
    """Run one action the way the scheduler does; return its result or raise its exception.

    The action gets a complete ``Job`` as a worker would see it on its
    ``attempts``-th attempt: state running, params after their JSON round trip
    (a tuple arrives as a list), times from ``clock``. Any other field of
    ``Job`` may be given (``id=7``, ``scope="shop"``, ``max_attempts=3``...).
    The performer is used through the scheduler's own path, so an unknown action
    raises ``UnknownActionError`` and a callable performer gets the job. Unlike a
    worker, it runs in the calling thread with no timeout, and it does not call
    ``handle_failed_job`` (call it yourself to test it). An async action is
    awaited to completion on a private event loop and its result returned (in a
    coroutine, ``await perform_job_async(...)`` awaits it on the caller's loop).

    Raises:
        InvalidJobError: a bad argument or an unknown Job field.
        Exception: whatever the action raised.
    """
    job = make_job(action, params, queue=queue, attempts=attempts, clock=clock, **job_fields)
    bound = BoundPerformer(performer)
    calls: list[tuple[bool, Any]] = []  # (raised, result or exception)
    action_fn = bound.perform

    def recording(job: Job) -> object:
        try:
            result = action_fn(job)
        except BaseException as exc:
            calls.append((True, exc))
            raise
        calls.append((False, result))
        return result

    loop = LazyLoop()

    def waiting(awaitable: Awaitable[object]) -> object:  # an async action's real outcome
        try:
            result = loop.run(awaitable)
        except BaseException as exc:
            calls.append((True, exc))
            raise
        calls.append((False, result))
        return result

    bound.perform = recording
    try:
        outcome = perform(bound, Claim(job, "perform_job"), clock, wait=waiting)
    finally:
        loop.close()
    raised, value = calls[-1]
    if isinstance(outcome, Failure) and raised:
        raise value
    return value


async def perform_job_async(performer: Any, action: str,
                            params: Mapping[str, Any] | None = None, *, queue: str = "test",
                            attempts: int = 1, clock: Callable[[], float] = time.time,
                            **job_fields: Any) -> Any:
    """perform_job for a coroutine: an async action is awaited on the caller's loop.

    So the action may use objects bound to the test's event loop. A sync action
    runs in the calling thread, as in perform_job.
    """
    job = make_job(action, params, queue=queue, attempts=attempts, clock=clock, **job_fields)
    result = BoundPerformer(performer).perform(job)
    if inspect.isawaitable(result):
        result = await result
    return result


def make_job(action: str, params: Mapping[str, Any] | None = None, *, queue: str = "test",
             attempts: int = 1, clock: Callable[[], float] = time.time,
             **job_fields: Any) -> Job:
    """A complete running ``Job`` as perform_job hands it to the action."""
    unknown = set(job_fields) - {f.name for f in dataclasses.fields(Job)}
    if unknown:
        raise InvalidJobError(sorted(unknown)[0], "not a field of Job")
    new = check.new_job(queue, action, params, **{
        k: job_fields.pop(k) for k in ("timeout", "max_backoff", "max_attempts")
        if k in job_fields})
    now = to_datetime(clock())
    values: dict[str, Any] = {
        "id": 1, "scope": "default", "queue": new.queue, "action": new.action,
        "params": json.loads(new.params), "scheduled_at": now, "timeout": new.timeout,
        "max_backoff": new.max_backoff, "max_attempts": new.max_attempts,
        "attempts": check.count("attempts", attempts), "attempted_at": now,
        "attempted_by": owner_name(), "next_attempt_at": None, "done_at": None,
        "error": None, "state": JobState.RUNNING, "created_at": now, "errors": [],
        "unique_key": None,
    }
    values.update(job_fields)
    for field in dataclasses.fields(Job):
        # A field added to Job later: its own default, else empty (e.g. an error history).
        if field.name not in values and field.default is dataclasses.MISSING \
                and field.default_factory is dataclasses.MISSING:
            values[field.name] = None
    return Job(**values)


# -- job assertions ---------------------------------------------------------------


def jobs_created(q: Queuetopia, *, queue: str | None = None, action: str | None = None,
                 params: Mapping[str, Any] | None = None) -> list[Job]:
    """This Queuetopia's jobs (its scope only) matching queue, action and a params subset."""
    jobs = q.list_jobs(queue=queue, action=action, limit=_SCAN_LIMIT)
    if params:
        jobs = [job for job in jobs if _contains(job.params, params)]
    return list(reversed(jobs))  # oldest first


def assert_job_created(q: Queuetopia, count: int = 1, *, queue: str | None = None,
                       action: str | None = None,
                       params: Mapping[str, Any] | None = None) -> list[Job]:
    """Assert that exactly ``count`` matching jobs exist; return them, oldest first.

    A failure message lists the jobs that do exist (up to 10): the matching ones,
    or when there are none, the queue's (else the action's, else the scope's).
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    jobs = jobs_created(q, queue=queue, action=action, params=params)
    if len(jobs) != count:
        raise AssertionError(_message(q, count, jobs, queue, action, params))
    return jobs


def refute_job_created(q: Queuetopia, *, queue: str | None = None, action: str | None = None,
                       params: Mapping[str, Any] | None = None) -> None:
    """Assert that no matching job exists."""
    __tracebackhide__ = True
    assert_job_created(q, 0, queue=queue, action=action, params=params)


async def jobs_created_async(q: Queuetopia | AsyncQueuetopia, *, queue: str | None = None,
                             action: str | None = None,
                             params: Mapping[str, Any] | None = None) -> list[Job]:
    """jobs_created, awaited: the database is read in a thread while the loop runs on."""
    return await _off_loop(q, lambda sync: jobs_created(sync, queue=queue, action=action,
                                                        params=params))


async def assert_job_created_async(q: Queuetopia | AsyncQueuetopia, count: int = 1, *,
                                   queue: str | None = None, action: str | None = None,
                                   params: Mapping[str, Any] | None = None) -> list[Job]:
    """assert_job_created, awaited (for an AsyncQueuetopia or a Queuetopia)."""
    __tracebackhide__ = True
    return await _off_loop(q, lambda sync: assert_job_created(
        sync, count, queue=queue, action=action, params=params))


async def refute_job_created_async(q: Queuetopia | AsyncQueuetopia, *, queue: str | None = None,
                                   action: str | None = None,
                                   params: Mapping[str, Any] | None = None) -> None:
    """refute_job_created, awaited."""
    __tracebackhide__ = True
    await assert_job_created_async(q, 0, queue=queue, action=action, params=params)


async def _off_loop(q: Queuetopia | AsyncQueuetopia, check: Callable[[Queuetopia], T]) -> T:
    import asyncio  # here: this module is imported by the pytest plugin of every run

    if isinstance(q, Queuetopia):
        return await asyncio.to_thread(check, q)
    return await q._call(check)


def _contains(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    return all(key in actual and actual[key] == value for key, value in expected.items())


def _message(q: Queuetopia, expected: int, found: list[Job], queue: str | None,
             action: str | None, params: Mapping[str, Any] | None) -> str:
    noun = "jobs" if expected > 1 else "job"
    attrs = {k: v for k, v in (("action", action), ("params", params)) if v}
    shown = " with " + ", ".join(f"{k}={v!r}" for k, v in attrs.items()) if attrs else ""
    where = f"in scope {q.scope!r}"
    if queue:
        where = f"in queue {queue!r}" + (f" of scope {q.scope!r}" if q.scope != "default" else "")
    head = f"Expected {expected} {noun}{shown} {where}, got {len(found)}"
    label, jobs, one_queue = _nearby(q, found, queue, action)
    return f"{head}; {label}: {_listing(jobs, one_queue=one_queue)}" if jobs else head


def _nearby(q: Queuetopia, found: list[Job], queue: str | None,
            action: str | None) -> tuple[str, list[Job], bool]:
    """The jobs worth showing next to a failed count (newest first), what they are, and
    whether they are all of the queue asked for."""
    if found:
        return "matching jobs", list(reversed(found)), queue is not None
    if queue:
        jobs = q.list_jobs(queue=queue, limit=_SHOWN + 1)
        if jobs:
            return f"jobs in queue {queue!r}", jobs, True
    if action:
        jobs = q.list_jobs(action=action, limit=_SHOWN + 1)
        if jobs:
            return f"jobs with action={action!r}", jobs, False
    return f"jobs in scope {q.scope!r}", q.list_jobs(limit=_SHOWN + 1), False


def _listing(jobs: list[Job], *, one_queue: bool) -> str:
    def one(job: Job) -> str:
        where = "" if one_queue else f" in {job.queue!r}"
        params = json.dumps(dict(job.params), ensure_ascii=False, sort_keys=True)
        return f"#{job.id} {job.action}{where} {params} ({job.state.value})"

    text = ", ".join(one(job) for job in jobs[:_SHOWN])
    return text + (", ..." if len(jobs) > _SHOWN else "")


__all__ = ["DEFAULT_START", "FakeClock", "assert_job_created", "assert_job_created_async",
           "jobs_created", "jobs_created_async", "make_job", "perform_job", "perform_job_async",
           "refute_job_created", "refute_job_created_async"]
