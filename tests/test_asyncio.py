"""Async actions (SPEC 11): awaited on the scheduler's event loop, timeouts cancel them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from queuetopia_lite import (
    GiveUp,
    Job,
    JobState,
    Performer,
    QueueState,
    Queuetopia,
    Snooze,
)

from .conftest import MakeQ, wait_until


def stored(q: Queuetopia, job: Job) -> Job:
    found = q.get_job(job.id)
    assert found is not None
    return found


def ended(q: Queuetopia, *jobs: Job) -> bool:
    return all(stored(q, job).state in (JobState.DONE, JobState.FAILED) for job in jobs)


def test_async_action_is_awaited_and_its_result_is_the_outcome(make_q: MakeQ) -> None:
    p = Performer()
    ran: list[tuple[int, str]] = []

    @p.action("fetch")
    async def fetch(job: Job) -> None:
        await asyncio.sleep(0.01)
        ran.append((job.params["n"], threading.current_thread().name))

    @p.action("broken")
    async def broken(job: Job) -> None:
        await asyncio.sleep(0)
        raise ValueError("bad page")

    q = make_q(p)
    ok = q.create_jobs([("pages", "fetch", {"n": n}) for n in range(3)])
    bad = q.create_job("other", "broken", max_attempts=1)
    with q:
        wait_until(lambda: ended(q, *ok, bad), message="the async jobs ended")
    assert [n for n, _ in ran] == [0, 1, 2]
    assert {name for _, name in ran} == {"queuetopia-asyncio"}  # the loop's thread
    assert all(stored(q, job).state == JobState.DONE for job in ok)
    failed = stored(q, bad)
    # Never taken for a success without having run: the coroutine's exception is the outcome.
    assert failed.state == JobState.FAILED and failed.error is not None
    assert failed.error.startswith("ValueError: bad page")


def test_timeout_cancels_the_coroutine_and_releases_once_it_has_ended(make_q: MakeQ) -> None:
    p = Performer()
    events: list[str] = []

    @p.action("slow", timeout=0.2)
    async def slow(job: Job) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            events.append("cancelled")
            await asyncio.sleep(0.3)  # cleanup while cancelling: the queue stays locked
            events.append("cleaned up")
            raise

    @p.action("next")
    async def next_(job: Job) -> None:
        events.append("next")

    q = make_q(p)
    first = q.create_job("q", "slow", max_attempts=1)
    second = q.create_job("q", "next")
    with q:
        wait_until(lambda: ended(q, first, second), message="both jobs ended")
    assert events == ["cancelled", "cleaned up", "next"]
    job = stored(q, first)
    assert job.state == JobState.FAILED and job.attempts == 1
    assert job.error is not None and job.error.startswith("timeout")


def test_coroutine_ignoring_cancellation_is_a_runaway_holding_no_slot(make_q: MakeQ) -> None:
    p = Performer()
    release = threading.Event()
    events: list[str] = []

    @p.action("stubborn", timeout=0.2)
    async def stubborn(job: Job) -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                events.append("cancel ignored")
        events.append("stubborn ended")

    @p.action("note")
    def note(job: Job) -> None:
        events.append(f"{job.queue} {job.params['n']}")

    q = make_q(p, max_workers=1)
    stuck = q.create_job("q", "stubborn", max_attempts=5)
    behind = q.create_job("q", "note", {"n": 1})
    with q:
        wait_until(lambda: (stored(q, stuck).error or "").startswith("timeout"),
                   message="the timeout recorded")
        # Its one slot is free: another queue runs, while "q" stays locked by the runaway.
        other = q.create_job("other", "note", {"n": 2})
        wait_until(lambda: ended(q, other), message="another queue ran")
        (status,) = q.queues("q")
        assert status.state == QueueState.RUNNING
        assert stored(q, behind).state == JobState.AVAILABLE
        release.set()
        wait_until(lambda: ended(q, behind), message="the queue moved on")
    assert events.index("cancel ignored") < events.index("stubborn ended") < events.index("q 1")
    again = stored(q, stuck)
    assert again.state == JobState.DONE and again.attempts == 2  # retried after the runaway


def test_sync_and_async_jobs_in_many_queues_keep_order(make_q: MakeQ) -> None:
    p = Performer()
    seen: dict[str, list[int]] = {}
    running: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()

    def enter(job: Job) -> None:
        with lock:
            if job.queue in running:
                overlaps.append(job.queue)
            running.add(job.queue)
            seen.setdefault(job.queue, []).append(job.params["n"])

    def leave(job: Job) -> None:
        with lock:
            running.discard(job.queue)

    @p.action("async")
    async def async_(job: Job) -> None:
        enter(job)
        await asyncio.sleep(0.001 * (job.params["n"] % 3))
        leave(job)

    @p.action("sync")
    def sync(job: Job) -> None:
        enter(job)
        leave(job)

    @p.action("returns_awaitable")  # a plain function handing back a coroutine
    def returns_awaitable(job: Job) -> object:
        enter(job)

        async def later() -> None:
            await asyncio.sleep(0)
            leave(job)
        return later()

    kinds = ["async", "sync", "returns_awaitable"]
    q = make_q(p, max_workers=4)
    jobs = q.create_jobs([(f"q{i}", kinds[(i + n) % 3], {"n": n})
                          for n in range(8) for i in range(12)])
    with q:
        wait_until(lambda: q.count_jobs().get(JobState.DONE, 0) == len(jobs), timeout=60,
                   message="every job done")
    assert overlaps == []
    assert seen == {f"q{i}": list(range(8)) for i in range(12)}


def test_give_up_and_snooze_from_an_async_action(make_q: MakeQ) -> None:
    p = Performer()
    runs: list[int] = []

    @p.action("charge", max_attempts=5)
    async def charge(job: Job) -> None:
        runs.append(job.id)
        await asyncio.sleep(0)
        if job.params.get("expired"):
            raise GiveUp("card expired")
        raise Snooze(3600)

    q = make_q(p)
    gave_up = q.create_job("a", "charge", {"expired": True})
    snoozed = q.create_job("b", "charge")
    with q:
        wait_until(lambda: stored(q, gave_up).state == JobState.FAILED, message="gave up")
        wait_until(lambda: stored(q, snoozed).next_attempt_at is not None, message="snoozed")
    job = stored(q, gave_up)
    assert job.error == "card expired" and job.attempts == 1
    later = stored(q, snoozed)
    assert later.error is None and later.state != JobState.FAILED
    assert later.attempts == 0  # a snooze is not an attempt
    assert runs == [gave_up.id, snoozed.id] or runs == [snoozed.id, gave_up.id]


def test_async_jobs_hold_no_worker_thread(make_q: MakeQ) -> None:
    p = Performer()
    started = threading.Semaphore(0)
    go = threading.Event()

    @p.action("wait")
    async def wait(job: Job) -> None:
        started.release()
        while not go.is_set():
            await asyncio.sleep(0.005)

    q = make_q(p, max_workers=20)
    jobs = q.create_jobs([(f"q{i}", "wait") for i in range(20)])
    with q:
        for _ in jobs:
            assert started.acquire(timeout=20)
        names = [t.name for t in threading.enumerate()]
        assert names.count("queuetopia-worker") == 0  # 20 jobs in flight, no worker thread
        assert names.count("queuetopia-asyncio") == 1
        go.set()
        wait_until(lambda: ended(q, *jobs), message="every job done")


def test_max_workers_bounds_async_jobs_too(make_q: MakeQ) -> None:
    p = Performer()
    in_flight: list[int] = []
    peak = [0]

    @p.action("wait")
    async def wait(job: Job) -> None:
        in_flight.append(job.id)  # the loop's thread only: no lock needed
        peak[0] = max(peak[0], len(in_flight))
        await asyncio.sleep(0.02)
        in_flight.remove(job.id)

    q = make_q(p, max_workers=3)
    jobs = q.create_jobs([(f"q{i}", "wait") for i in range(12)])
    with q:
        wait_until(lambda: ended(q, *jobs), message="every job done")
    assert peak[0] == 3


def test_drain_awaits_async_actions(make_q: MakeQ) -> None:
    p = Performer()
    ran: list[int] = []

    @p.action("fetch")
    async def fetch(job: Job) -> None:
        await asyncio.sleep(0)
        ran.append(job.params["n"])

    @p.action("broken")
    async def broken(job: Job) -> None:
        raise ValueError("nope")

    q = make_q(p)
    q.create_jobs([("q", "fetch", {"n": n}) for n in range(3)])
    bad = q.create_job("b", "broken", max_attempts=1)
    assert q.drain() == 4
    assert ran == [0, 1, 2]
    assert (stored(q, bad).error or "").startswith("ValueError: nope")


def test_awaitable_from_a_plain_function_is_cancelled_at_its_timeout(make_q: MakeQ) -> None:
    p = Performer()
    events: list[str] = []

    async def waiting() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    @p.action("slow", timeout=0.2)
    def slow(job: Job) -> object:
        return waiting()  # its worker thread is freed once the loop has the coroutine

    q = make_q(p)
    job = q.create_job("q", "slow", max_attempts=1)
    with q:
        wait_until(lambda: ended(q, job), message="the timeout recorded")
    assert events == ["cancelled"]
    assert (stored(q, job).error or "").startswith("timeout")


def test_cli_worker_logs_an_async_job_once_it_has_run(
        make_q: MakeQ, caplog: pytest.LogCaptureFixture) -> None:
    from queuetopia_lite.cli.worker import LoggingPerformer

    p = Performer()
    events: list[str] = []

    @p.action("fetch")
    async def fetch(job: Job) -> None:
        await asyncio.sleep(0.01)
        events.append("ran")

    logging_performer = LoggingPerformer(p)
    assert logging_performer.is_async("fetch")  # straight to the loop
    q = make_q(logging_performer)
    job = q.create_job("q", "fetch")
    with caplog.at_level("INFO", logger="queuetopia_lite"), q:
        wait_until(lambda: ended(q, job), message="the job ran")
    assert events == ["ran"]
    assert any(f"job {job.id} done" in r.getMessage() for r in caplog.records)


def test_stop_does_not_wait_for_a_runaway_coroutine(make_q: MakeQ) -> None:
    p = Performer()
    release = threading.Event()
    ended_at: list[str] = []

    @p.action("stubborn", timeout=0.1)
    async def stubborn(job: Job) -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass
        ended_at.append("ended")

    q = make_q(p)
    job = q.create_job("q", "stubborn", max_attempts=1)
    q.start()
    wait_until(lambda: stored(q, job).state == JobState.FAILED, message="the timeout recorded")
    q.stop(timeout=20)  # returns with the runaway still awaiting on the loop thread
    assert ended_at == []
    assert any(t.name == "queuetopia-asyncio" for t in threading.enumerate())
    release.set()
    wait_until(lambda: not any(t.name == "queuetopia-asyncio" for t in threading.enumerate()),
               message="the loop thread ends with its last coroutine")
    assert ended_at == ["ended"]


def test_drain_enforces_no_timeout_on_async_actions(make_q: MakeQ) -> None:
    p = Performer()

    @p.action("slow", timeout=0.05)
    async def slow(job: Job) -> str:
        await asyncio.sleep(0.2)
        return "finished"

    q = make_q(p)
    job = q.create_job("q", "slow")
    assert q.drain() == 1
    assert stored(q, job).state == JobState.DONE
