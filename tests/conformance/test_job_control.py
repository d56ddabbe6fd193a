"""Conformance: GiveUp and Snooze outcomes, each failed attempt in errors, unique keys."""

from __future__ import annotations

from queuetopia_lite import Backend, JobState, QueueState
from queuetopia_lite.backend import Failure, Snoozed

from .helpers import OWNER, SCOPE, T0, claim, fail, new, succeed


def test_give_up_fails_the_job_at_once_and_the_queue_moves_on(backend: Backend) -> None:
    first, second = backend.insert_jobs(SCOPE, [new("a"), new("a")], T0)
    (c,) = claim(backend, T0)
    result = backend.step(SCOPE, T0 + 1, outcomes=[Failure(c, "card expired", T0 + 1,
                                                           give_up=True)])
    assert [job.id for job in result.failed] == [first.id]  # handle_failed_job gets it
    job = backend.get_job(SCOPE, first.id, T0 + 1)
    assert job is not None and job.state == JobState.FAILED
    assert job.error == "card expired" and job.attempts == 1
    assert job.next_attempt_at is None
    (status,) = backend.queue_statuses(SCOPE, T0 + 1)
    assert status.state == QueueState.AVAILABLE and status.blocked_since is None
    (c2,) = claim(backend, T0 + 1)  # no backoff wait, no hold
    assert c2.job.id == second.id


def test_give_up_on_the_last_job_leaves_the_queue_idle(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a")], T0)
    (c,) = claim(backend, T0)
    backend.step(SCOPE, T0, outcomes=[Failure(c, "no", T0, give_up=True)])
    (status,) = backend.queue_statuses(SCOPE, T0)
    assert status.state == QueueState.IDLE and status.next_run_at is None
    assert backend.next_due(SCOPE) is None


def test_snooze_keeps_the_head_waits_and_does_not_count_the_attempt(backend: Backend) -> None:
    first, _second = backend.insert_jobs(SCOPE, [new("a", max_attempts=1), new("a")], T0)
    (c,) = claim(backend, T0)
    result = backend.step(SCOPE, T0 + 1, outcomes=[Snoozed(c, T0 + 61)])
    assert result.failed == [] and result.rejected == []
    job = backend.get_job(SCOPE, first.id, T0 + 1)
    assert job is not None and job.attempts == 0 and job.error is None and job.errors == []
    assert job.next_attempt_at is not None and job.next_attempt_at.timestamp() == T0 + 61
    assert job.state == JobState.RETRYING  # waiting for next_attempt_at
    (status,) = backend.queue_statuses(SCOPE, T0 + 1)
    assert status.state == QueueState.SCHEDULED  # waiting for a time, not blocked
    assert status.blocked_since is None and status.head is not None
    assert status.head.id == first.id
    assert status.next_run_at is not None and status.next_run_at.timestamp() == T0 + 61
    assert claim(backend, T0 + 60) == []  # the head waits; the next job does not overtake
    assert backend.next_due(SCOPE) == T0 + 61
    (again,) = claim(backend, T0 + 61)
    assert again.job.id == first.id and again.job.attempts == 1  # max_attempts=1: still runs
    succeed(backend, again, T0 + 62)


def test_snooze_after_a_failure_keeps_the_error_and_unblocks(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new("a")], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0, delay=2.0, error="RuntimeError: down")
    (c,) = claim(backend, T0 + 2)
    backend.step(SCOPE, T0 + 3, outcomes=[Snoozed(c, T0 + 30)])
    stored = backend.get_job(SCOPE, job.id, T0 + 3)
    assert stored is not None and stored.attempts == 1 and stored.error == "RuntimeError: down"
    assert [e["attempt"] for e in stored.errors] == [1]
    (status,) = backend.queue_statuses(SCOPE, T0 + 3)
    assert status.state == QueueState.SCHEDULED and status.blocked_since is None


def test_a_stale_snooze_is_rejected(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a")], T0)
    (c,) = claim(backend, T0, lease=5)
    claim(backend, T0 + 10)  # recovers the expired lease
    result = backend.step(SCOPE, T0 + 11, outcomes=[Snoozed(c, T0 + 100)])
    assert result.rejected == [Snoozed(c, T0 + 100)]


def test_errors_keep_each_failed_attempt_with_its_worker(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new("a")], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0 + 1, delay=2.0, error="RuntimeError: one")
    (c,) = claim(backend, T0 + 3)
    result = fail(backend, c, T0 + 4, delay=2.0, error="RuntimeError: two")
    stored = backend.get_job(SCOPE, job.id, T0 + 4)
    assert stored is not None and stored.error == "RuntimeError: two"
    assert [(e["attempt"], e["at"].timestamp(), e["error"], e["by"]) for e in stored.errors] == [
        (1, T0 + 1, "RuntimeError: one", OWNER), (2, T0 + 4, "RuntimeError: two", OWNER)]
    assert result.failed[0].errors == stored.errors  # the job handed to handle_failed_job
    (c,) = claim(backend, T0 + 6)
    succeed(backend, c, T0 + 7)
    done = backend.get_job(SCOPE, job.id, T0 + 7)
    assert done is not None and done.error is None and len(done.errors) == 2


def test_errors_are_bounded_to_the_last_20_each_bounded_in_size(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new("a", max_attempts=25)], T0)
    now = T0
    for n in range(1, 24):
        (c,) = claim(backend, now)
        fail(backend, c, now, delay=1.0, error=f"E{n}:" + "x" * 10_000)
        now += 1
    stored = backend.get_job(SCOPE, job.id, now)
    assert stored is not None
    assert [e["attempt"] for e in stored.errors] == list(range(4, 24))
    assert all(len(e["error"]) == 4000 for e in stored.errors)
    assert stored.errors[-1]["error"].startswith("E23:")
    assert stored.error is not None and len(stored.error) == 10_004  # error itself: whole


def test_a_lost_worker_and_a_give_up_are_entries_too(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new("a")], T0)
    (c,) = claim(backend, T0, lease=5)
    claim(backend, T0 + 10)  # the lease expired: recovered as a failed attempt
    (c,) = claim(backend, T0 + 100)
    backend.step(SCOPE, T0 + 101, outcomes=[Failure(c, "card expired", T0 + 101, give_up=True)])
    stored = backend.get_job(SCOPE, job.id, T0 + 101)
    assert stored is not None
    assert [e["attempt"] for e in stored.errors] == [1, 2]
    assert stored.errors[0]["error"].startswith("worker lost")
    assert stored.errors[1]["error"] == "card expired"


def test_a_timed_out_attempt_is_an_entry(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new("a")], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0 + 60, error="timeout: the job ran longer than 60.0 s", keep_lock=True)
    stored = backend.get_job(SCOPE, job.id, T0 + 60)
    assert stored is not None and stored.errors[0]["error"].startswith("timeout")


def test_unique_key_returns_the_waiting_job_and_stores_nothing(backend: Backend) -> None:
    (first,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0)
    (again,) = backend.insert_jobs(SCOPE, [new("b", params={"other": 1}, unique_key="k")], T0 + 1)
    assert again.id == first.id and again.queue == "a" and again.unique_key == "k"
    assert len(backend.list_jobs(SCOPE, T0 + 1)) == 1
    other_scope = backend.insert_jobs("other", [new("a", unique_key="k")], T0)
    assert other_scope[0].id != first.id  # keys are per scope


def test_unique_key_duplicates_in_one_batch_return_the_first(backend: Backend) -> None:
    jobs = backend.insert_jobs(SCOPE, [new("a", unique_key="k"), new("a"),
                                       new("b", unique_key="k"), new("c", unique_key="m")], T0)
    assert jobs[2].id == jobs[0].id
    assert len({jobs[0].id, jobs[1].id, jobs[3].id}) == 3
    assert len(backend.list_jobs(SCOPE, T0)) == 3
    assert [j.queue for j in jobs] == ["a", "a", "a", "c"]


def test_unique_key_is_free_again_once_its_job_runs_or_ends(backend: Backend) -> None:
    (first,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0)
    (c,) = claim(backend, T0)
    (second,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0 + 1)  # first runs
    assert second.id != first.id
    (third,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0 + 1)
    assert third.id == second.id  # second waits
    succeed(backend, c, T0 + 2)
    (c2,) = claim(backend, T0 + 2)
    succeed(backend, c2, T0 + 3)
    (fourth,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0 + 4)
    assert fourth.id not in (first.id, second.id)


def test_a_retrying_job_holds_its_key(backend: Backend) -> None:
    (first,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0, delay=10.0)
    (again,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0 + 1)
    assert again.id == first.id and again.state == JobState.RETRYING


def test_a_failing_job_gives_its_key_to_one_created_while_it_ran(backend: Backend) -> None:
    (first,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0)
    (c,) = claim(backend, T0)
    (second,) = backend.insert_jobs(SCOPE, [new("b", unique_key="k")], T0 + 1)
    result = fail(backend, c, T0 + 2, delay=10.0)  # back to waiting: no constraint error
    assert result.rejected == []
    retrying = backend.get_job(SCOPE, first.id, T0 + 2)
    assert retrying is not None and retrying.state == JobState.RETRYING
    assert retrying.unique_key is None
    (third,) = backend.insert_jobs(SCOPE, [new("b", unique_key="k")], T0 + 3)
    assert third.id == second.id


def test_a_snoozed_job_gives_its_key_to_one_created_while_it_ran(backend: Backend) -> None:
    (_first,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k")], T0)
    (c,) = claim(backend, T0)
    (second,) = backend.insert_jobs(SCOPE, [new("b", unique_key="k")], T0 + 1)
    result = backend.step(SCOPE, T0 + 2, outcomes=[Snoozed(c, T0 + 30)])
    assert result.rejected == []
    (third,) = backend.insert_jobs(SCOPE, [new("b", unique_key="k")], T0 + 3)
    assert third.id == second.id


def test_retry_of_a_failed_job_keeps_its_key_unless_taken(backend: Backend) -> None:
    (first,) = backend.insert_jobs(SCOPE, [new("a", unique_key="k", max_attempts=1)], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0)
    (second,) = backend.insert_jobs(SCOPE, [new("b", unique_key="k")], T0 + 1)
    assert second.id != first.id  # a failed job holds no key
    retried = backend.retry_job(SCOPE, first.id, T0 + 2)
    assert retried.state == JobState.AVAILABLE and retried.unique_key is None
    (third,) = backend.insert_jobs(SCOPE, [new("b", unique_key="k")], T0 + 3)
    assert third.id == second.id
