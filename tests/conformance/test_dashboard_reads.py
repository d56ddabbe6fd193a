"""Conformance: the dashboard's bounded reads (queue_page, pending_jobs, job_activity)."""

from __future__ import annotations

import pytest

from queuetopia_lite import Backend, InvalidJobError, JobState, QueueState

from .helpers import SCOPE, T0, claim, fail, new, succeed


def test_queue_page_puts_failing_queues_first_then_running(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a-avail"), new("b-blocked"), new("b-blocked"),
                                new("r-running"), new("z-idle")], T0)
    claims = {c.job.queue: c for c in claim(backend, T0, n=10)}
    fail(backend, claims["b-blocked"], T0, delay=60)
    succeed(backend, claims["a-avail"], T0)
    succeed(backend, claims["z-idle"], T0 + 1)
    backend.insert_jobs(SCOPE, [new("a-avail")], T0 + 1)
    page = backend.queue_page(SCOPE, T0 + 2)
    assert [s.queue for s in page.queues] == ["b-blocked", "r-running", "a-avail", "z-idle"]
    assert (page.total, page.failing, page.running) == (4, 1, 1)
    blocked, running, avail, idle = page.queues
    assert blocked.state == QueueState.BLOCKED and blocked.pending == 2
    assert blocked.head is not None and blocked.head.error == "RuntimeError: boom"
    assert blocked.blocked_since is not None and blocked.blocked_since.timestamp() == T0
    assert running.state == QueueState.RUNNING and running.locked_by is not None
    assert avail.state == QueueState.AVAILABLE and avail.pending == 1
    assert idle.state == QueueState.IDLE and idle.head is None
    # the same records as queue_statuses gives
    assert {s.queue: s for s in backend.queue_statuses(SCOPE, T0 + 2)} == {
        s.queue: s for s in page.queues}


def test_queue_page_searches_pages_and_filters(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new(f"mail-{i:02}") for i in range(12)]
                        + [new("Other-MAIL"), new("sms-1")], T0)
    page = backend.queue_page(SCOPE, T0, search="mail", limit=5, offset=0)
    assert page.total == 13
    assert [s.queue for s in page.queues] == ["Other-MAIL", "mail-00", "mail-01", "mail-02",
                                              "mail-03"]
    last = backend.queue_page(SCOPE, T0, search="MAIL", limit=5, offset=10)
    assert [s.queue for s in last.queues] == ["mail-09", "mail-10", "mail-11"]
    assert backend.queue_page(SCOPE, T0, search="nothing").queues == []
    assert backend.queue_page(SCOPE, T0, search="nothing").total == 0
    # characters special to LIKE are plain text
    assert backend.queue_page(SCOPE, T0, search="%").total == 0
    assert backend.queue_page(SCOPE, T0, search="_").total == 0
    claim(backend, T0, n=20)
    running = backend.queue_page(SCOPE, T0, only="running", limit=5)
    assert running.total == 14 and running.running == 14
    assert [s.queue for s in running.queues] == ["Other-MAIL", "mail-00", "mail-01",
                                                 "mail-02", "mail-03"]
    assert all(s.state == QueueState.RUNNING for s in running.queues)
    assert backend.queue_page(SCOPE, T0, only="failing").queues == []
    with pytest.raises(InvalidJobError, match="only"):
        backend.queue_page(SCOPE, T0, only="bogus")


def test_queue_page_is_scoped(backend: Backend) -> None:
    backend.insert_jobs("other", [new("theirs")], T0)
    backend.insert_jobs(SCOPE, [new("mine")], T0)
    page = backend.queue_page(SCOPE, T0)
    assert [s.queue for s in page.queues] == ["mine"] and page.total == 1


def test_pending_jobs_are_in_run_order(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("q", params={"n": 1}),
                                new("q", params={"n": 2}, scheduled_at=T0 + 100),
                                new("q", params={"n": 3}),
                                new("other", params={"n": 4})], T0)
    assert [j.params["n"] for j in backend.pending_jobs(SCOPE, "q", T0)] == [1, 3, 2]
    (c,) = [c for c in claim(backend, T0, n=5) if c.job.queue == "q"]
    # the running head is not pending
    assert [j.params["n"] for j in backend.pending_jobs(SCOPE, "q", T0)] == [3, 2]
    assert [j.params["n"] for j in backend.pending_jobs(SCOPE, "q", T0, limit=1,
                                                        offset=1)] == [2]
    fail(backend, c, T0, delay=30)
    jobs = backend.pending_jobs(SCOPE, "q", T0 + 1)
    assert [j.params["n"] for j in jobs] == [1, 3, 2]
    assert jobs[0].state == JobState.RETRYING
    assert backend.pending_jobs("other-scope", "q", T0) == []


def test_job_activity_counts_done_and_failed_per_bucket(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new(f"q{i}") for i in range(4)], T0)
    claims = claim(backend, T0 + 10, n=4, lease=1000.0)
    succeed(backend, claims[0], T0 + 10)
    succeed(backend, claims[1], T0 + 70)
    fail(backend, claims[2], T0 + 75)  # attempted at T0 + 10
    activity = backend.job_activity(SCOPE, T0 + 130, since=T0, bucket=60.0)
    assert activity.since == T0 and activity.bucket == 60.0
    assert activity.done == [1, 1, 0]
    assert activity.failed == [1, 0, 0]
    # before the window: not counted
    later = backend.job_activity(SCOPE, T0 + 130, since=T0 + 60, bucket=60.0)
    assert later.done == [1, 0] and later.failed == [0, 0]
    assert backend.job_activity("other", T0 + 130, since=T0, bucket=60.0).done == [0, 0, 0]
