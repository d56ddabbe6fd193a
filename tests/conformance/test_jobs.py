"""Conformance: storing, reading and listing jobs (every backend)."""

from __future__ import annotations

from datetime import datetime, timezone

from queuetopia_lite import Backend, JobState

from .helpers import SCOPE, T0, claim, fail, new, succeed


def test_insert_returns_stored_jobs_with_every_field(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new("mails", "send", {"to": "a@b.c"}, timeout=5.0,
                                             max_backoff=60.0, max_attempts=3)], T0)
    assert job.id > 0
    assert (job.scope, job.queue, job.action, dict(job.params)) == (SCOPE, "mails", "send",
                                                                    {"to": "a@b.c"})
    assert job.scheduled_at == datetime.fromtimestamp(T0, timezone.utc)
    assert job.created_at == job.scheduled_at
    assert (job.timeout, job.max_backoff, job.max_attempts) == (5.0, 60.0, 3)
    assert (job.attempts, job.attempted_at, job.attempted_by) == (0, None, None)
    assert (job.next_attempt_at, job.done_at, job.error) == (None, None, None)
    assert job.state == JobState.AVAILABLE
    assert backend.get_job(SCOPE, job.id, T0) == job


def test_ids_grow_with_every_created_job(backend: Backend) -> None:
    jobs = backend.insert_jobs(SCOPE, [new("a"), new("b"), new("a")], T0)
    more = backend.insert_jobs("other", [new("a")], T0)
    ids = [j.id for j in jobs + more]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_times_keep_sub_second_precision(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new(scheduled_at=T0 + 0.125)], T0)
    assert job.scheduled_at.timestamp() == T0 + 0.125


def test_future_job_is_scheduled_then_available(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new(scheduled_at=T0 + 10)], T0)
    assert job.state == JobState.SCHEDULED
    later = backend.get_job(SCOPE, job.id, T0 + 10)
    assert later is not None and later.state == JobState.AVAILABLE


def test_no_limit_timeout_is_stored_as_none(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new(timeout=None)], T0)
    assert backend.get_job(SCOPE, job.id, T0).timeout is None  # type: ignore[union-attr]


def test_max_attempts_zero_is_failed_at_once_and_does_not_block(backend: Backend) -> None:
    dead, alive = backend.insert_jobs(SCOPE, [new(max_attempts=0), new()], T0)
    assert dead.state == JobState.FAILED
    claims = backend.step(SCOPE, T0, claim=5, owner="w").claimed
    assert [c.job.id for c in claims] == [alive.id]


def test_get_job_is_scoped(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new()], T0)
    assert backend.get_job("other", job.id, T0) is None
    assert backend.get_job(SCOPE, job.id + 1000, T0) is None


def test_list_jobs_newest_first_scoped_and_filtered(backend: Backend) -> None:
    a1, b1, a2 = backend.insert_jobs(SCOPE, [new("a", "x"), new("b", "y"), new("a", "y")], T0)
    backend.insert_jobs("other", [new("a")], T0)
    assert [j.id for j in backend.list_jobs(SCOPE, T0)] == [a2.id, b1.id, a1.id]
    assert [j.id for j in backend.list_jobs(SCOPE, T0, queue="a")] == [a2.id, a1.id]
    assert [j.id for j in backend.list_jobs(SCOPE, T0, action="y")] == [a2.id, b1.id]
    assert [j.id for j in backend.list_jobs(SCOPE, T0, limit=1, offset=1)] == [b1.id]


def test_list_jobs_by_state(backend: Backend) -> None:
    now_job, later_job = backend.insert_jobs(SCOPE, [new("a"), new("b", scheduled_at=T0 + 60)], T0)
    assert [j.id for j in backend.list_jobs(SCOPE, T0, state=JobState.AVAILABLE)] == [now_job.id]
    assert [j.id for j in backend.list_jobs(SCOPE, T0, state=JobState.SCHEDULED)] == [later_job.id]
    assert backend.list_jobs(SCOPE, T0, state=JobState.DONE) == []


def test_count_jobs_by_state(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a"), new("b", scheduled_at=T0 + 60), new(max_attempts=0)], T0)
    backend.insert_jobs("other", [new("a")], T0)
    counts = backend.count_jobs(SCOPE, T0)
    assert set(counts) == set(JobState)
    assert counts[JobState.AVAILABLE] == 1
    assert counts[JobState.SCHEDULED] == 1
    assert counts[JobState.FAILED] == 1
    assert sum(counts.values()) == 3


def test_count_jobs_agrees_with_list_jobs_in_every_state(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("done"), new("run"), new("retry"), new("cancel"),
                                new("cancel"), new("avail"), new(max_attempts=0),
                                new("later", scheduled_at=T0 + 60),
                                new("skew", scheduled_at=T0 + 5)], T0)
    claims = {c.job.queue: c for c in claim(backend, T0, n=10, lease=1000.0)}
    succeed(backend, claims["done"], T0)
    fail(backend, claims["retry"], T0, delay=100)
    backend.cancel_job(SCOPE, claims["cancel"].job.id, T0)
    (skew,) = claim(backend, T0 + 5, lease=1000.0)
    fail(backend, skew, T0 + 5, delay=100)  # retrying, seen at T0 + 1 before its scheduled_at
    for now in (T0 + 1, T0 + 10, T0 + 200):
        counts = backend.count_jobs(SCOPE, now)
        listed = {s: len(backend.list_jobs(SCOPE, now, state=s)) for s in JobState}
        assert counts == listed, now
    assert backend.count_jobs(SCOPE, T0 + 1) == {
        JobState.DONE: 1, JobState.RUNNING: 2, JobState.RETRYING: 2, JobState.CANCELLED: 1,
        JobState.AVAILABLE: 1, JobState.FAILED: 1, JobState.SCHEDULED: 1}


def test_batch_insert_is_all_in_order(backend: Backend) -> None:
    jobs = backend.insert_jobs(SCOPE, [new("q", params={"n": i}) for i in range(50)], T0)
    assert [j.params["n"] for j in jobs] == list(range(50))
    assert len(backend.list_jobs(SCOPE, T0, limit=100)) == 50


def test_params_round_trip_nested_json(backend: Backend) -> None:
    params = {"s": "é✓", "n": 1.5, "list": [1, None, True], "obj": {"k": []}}
    (job,) = backend.insert_jobs(SCOPE, [new(params=params)], T0)
    stored = backend.get_job(SCOPE, job.id, T0)
    assert stored is not None and dict(stored.params) == params
