"""Events (SPEC 13.1) with real threads on every backend: each kind, delivered after the save."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from queuetopia_lite import (
    Backend,
    Event,
    GiveUp,
    InvalidJobError,
    Job,
    JobState,
    Performer,
    Queuetopia,
    Snooze,
)
from queuetopia_lite.events import KINDS

from .conftest import MakeQ, wait_until
from .recorder import Recorder


class Seen:
    """Every event of every kind, in delivery order, with what the database said then."""

    def __init__(self, q: Queuetopia) -> None:
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.stored: list[Job | None] = []  # q.get_job at delivery
        self.threads: set[int] = set()
        self._q = q
        for kind in KINDS:
            q.on(kind, self.record)

    def record(self, event: Event) -> None:
        stored = self._q.get_job(event.job.id)
        with self.lock:
            self.events.append(event)
            self.stored.append(stored)
            self.threads.add(threading.get_ident())

    def kinds(self, job: Job) -> list[str]:
        with self.lock:
            return [e.kind for e in self.events if e.job.id == job.id]

    def of(self, job: Job, kind: str) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.job.id == job.id and e.kind == kind]


def actions() -> Performer:
    performer = Recorder(backoff=0.05)

    def snooze_once(job: Job) -> None:
        if not job.errors and job.next_attempt_at is None:
            raise Snooze(0.05)

    def give_up(job: Job) -> None:
        raise GiveUp("no card")

    def slow_once(job: Job) -> None:
        if job.attempts == 1:
            time.sleep(0.5)

    performer.register("snooze_once", snooze_once)
    performer.register("give_up", give_up)
    performer.register("slow_once", slow_once)
    return performer


def test_each_outcome_has_its_event_and_blocking_its_queue_events(make_q: MakeQ) -> None:
    q = make_q(actions())
    seen = Seen(q)
    ok = q.create_job("ok", "ok")
    retried = q.create_job("retried", "fail_until", {"succeed_at": 2})
    exhausted = q.create_job("exhausted", "fail", max_attempts=2)
    gave_up = q.create_job("gave_up", "give_up")
    snoozed = q.create_job("snoozed", "snooze_once")
    timed_out = q.create_job("timed_out", "slow_once", timeout=0.1)
    jobs = [ok, retried, exhausted, gave_up, snoozed, timed_out]
    with q:
        wait_until(lambda: all(seen.kinds(j) and seen.kinds(j)[-1] in (
            "job_succeeded", "queue_unblocked", "job_gave_up") for j in jobs), timeout=30,
            message="every job ended")
    assert seen.kinds(ok) == ["job_started", "job_succeeded"]
    assert seen.kinds(retried) == ["job_started", "job_failed", "queue_blocked",
                                   "job_started", "job_succeeded", "queue_unblocked"]
    assert seen.kinds(exhausted) == ["job_started", "job_failed", "queue_blocked",
                                     "job_started", "job_failed", "queue_unblocked"]
    assert seen.kinds(gave_up) == ["job_started", "job_gave_up"]  # never blocked anything
    assert seen.kinds(snoozed) == ["job_started", "job_snoozed", "job_started",
                                   "job_succeeded"]
    assert seen.kinds(timed_out) == ["job_started", "job_failed", "queue_blocked",
                                     "job_started", "job_succeeded", "queue_unblocked"]
    (timeout,) = seen.of(timed_out, "job_failed")
    assert timeout.job.error is not None and "timeout" in timeout.job.error
    assert timeout.duration is not None and timeout.duration >= 0.1
    (snooze,) = seen.of(snoozed, "job_snoozed")
    assert snooze.job.attempts == 0 and snooze.duration is not None
    (done,) = seen.of(ok, "job_succeeded")
    assert done.job.state == JobState.DONE and done.job.done_at == done.at
    assert done.duration is not None and done.duration >= 0
    assert done.at.tzinfo is not None and done.at.utcoffset() is not None
    assert [e.job.state for e in seen.of(exhausted, "job_failed")][-1] == JobState.FAILED
    assert seen.of(gave_up, "job_gave_up")[0].job.state == JobState.FAILED
    assert all(e.duration is None for e in seen.events
               if e.kind in ("job_started", "queue_blocked", "queue_unblocked"))
    assert seen.of(retried, "queue_blocked")[0].queue == "retried"
    assert threading.get_ident() not in seen.threads  # delivered off the caller's thread


def test_events_are_delivered_after_the_save(make_q: MakeQ) -> None:
    q = make_q(actions())
    seen = Seen(q)
    jobs = [q.create_job(f"q{i % 3}", "fail_until", {"succeed_at": 2}) for i in range(6)]
    with q:
        wait_until(lambda: all("job_succeeded" in seen.kinds(j) for j in jobs), timeout=30,
                   message="every job done")
    with seen.lock:
        pairs = list(zip(seen.events, seen.stored, strict=True))
    for event, stored in pairs:
        assert stored is not None
        if event.kind == "job_succeeded":
            assert stored.state == JobState.DONE
        elif event.kind == "job_failed":
            # saved before delivery: the stored attempt is this one or a later one
            assert stored.attempts >= event.job.attempts and stored.error is not None
        elif event.kind == "job_started":
            assert stored.attempts >= event.job.attempts >= 1


def test_a_lost_attempt_is_job_lost_and_blocks_its_queue(make_q: MakeQ,
                                                         backend: Backend) -> None:
    q = make_q(actions())
    seen = Seen(q)
    job = q.create_job("lost", "ok")
    # Another worker claims it and vanishes: its short lease runs out.
    (claim,) = backend.step(q.scope, time.time(), claim=1, owner="elsewhere:1",
                            lease=0.3).claimed
    assert claim.job.id == job.id
    with q:
        wait_until(lambda: "job_succeeded" in seen.kinds(job), timeout=30,
                   message="the job ran again")
    assert seen.kinds(job) == ["job_lost", "queue_blocked", "job_started", "job_succeeded",
                               "queue_unblocked"]
    (lost,) = seen.of(job, "job_lost")
    assert lost.duration is None and lost.job.error is not None
    assert lost.job.error.startswith("worker lost")


def test_a_raising_callback_is_logged_and_changes_nothing(
        make_q: MakeQ, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    q = make_q(rec)

    def broken(event: Event) -> None:
        raise RuntimeError("callback bug")

    q.on("job_succeeded", broken)
    seen = Seen(q)
    first = q.create_job("a", "ok")
    second = q.create_job("a", "ok")
    with caplog.at_level(logging.ERROR, logger="queuetopia_lite"), q:
        wait_until(lambda: "job_succeeded" in seen.kinds(second), message="both jobs done")
    assert seen.kinds(first) == ["job_started", "job_succeeded"]
    assert q.count_jobs()[JobState.DONE] == 2
    assert sum("a callback for job_succeeded raised" in r.getMessage()
               for r in caplog.records) == 2


def test_failed_job_hooks_still_run_beside_events(make_q: MakeQ) -> None:
    rec = Recorder()
    q = make_q(rec)
    seen = Seen(q)
    job = q.create_job("a", "fail", max_attempts=1)
    with q:
        wait_until(lambda: seen.kinds(job)[-1:] == ["job_failed"], message="failed")
        wait_until(lambda: [j.id for j in rec.failed_hooks] == [job.id], message="hook")


def test_drain_delivers_in_the_callers_thread(make_q: MakeQ) -> None:
    q = make_q(actions())
    seen = Seen(q)
    job = q.create_job("a", "give_up")
    ok = q.create_job("b", "ok")
    assert q.drain() == 2
    assert seen.kinds(job) == ["job_started", "job_gave_up"]  # delivered when drain returns
    assert seen.kinds(ok) == ["job_started", "job_succeeded"]
    assert seen.threads == {threading.get_ident()}


def test_cancelling_a_blocking_job_unblocks_its_queue(make_q: MakeQ) -> None:
    q = make_q(actions())
    seen = Seen(q)
    job = q.create_job("a", "fail")
    assert q.drain() == 1
    assert seen.kinds(job) == ["job_started", "job_failed", "queue_blocked"]
    q.cancel_job(job.id)
    assert seen.kinds(job)[-1] == "queue_unblocked"
    calm = q.create_job("b", "ok")
    q.cancel_job(calm.id)  # never failed: blocked nothing
    assert seen.kinds(calm) == []


def test_unsubscribing_and_unknown_kinds(make_q: MakeQ) -> None:
    q = make_q(actions())
    got: list[str] = []
    unsubscribe = q.on("job_succeeded", lambda e: got.append(e.kind))
    q.create_job("a", "ok")
    q.drain()
    unsubscribe()
    q.create_job("a", "ok")
    q.drain()
    assert got == ["job_succeeded"]
    q.on("job_started", got.append)
    q.off("job_started", got.append)
    q.off("job_started", got.append)  # not registered: nothing
    with pytest.raises(InvalidJobError, match="kind"):
        q.on("job_done", got.append)
    with pytest.raises(InvalidJobError, match="callback"):
        q.on("job_failed", "print")  # type: ignore[arg-type]
