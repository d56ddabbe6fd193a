"""Conformance: heads, claims, outcomes, backoff storage and fencing (every backend)."""

from __future__ import annotations

from queuetopia_lite import Backend, JobState
from queuetopia_lite.backend import Failure, HostInstant, Release, Success

from .helpers import OWNER, SCOPE, T0, claim, fail, new, succeed


def test_only_the_head_of_each_queue_is_claimed(backend: Backend) -> None:
    a1, _a2, b1 = backend.insert_jobs(SCOPE, [new("a"), new("a"), new("b")], T0)
    claims = claim(backend, T0, n=10)
    assert sorted(c.job.id for c in claims) == [a1.id, b1.id]
    assert claim(backend, T0, n=10) == []  # both queues are locked now


def test_claim_counts_the_attempt_and_names_the_worker(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0 + 1)
    assert c.job.attempts == 1
    assert c.job.attempted_at is not None and c.job.attempted_at.timestamp() == T0 + 1
    assert c.job.attempted_by == OWNER
    assert c.job.state == JobState.RUNNING
    assert c.token


def test_tokens_differ_per_claim(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a"), new("b")], T0)
    first, second = claim(backend, T0)
    assert first.token != second.token


def test_order_is_scheduled_at_then_sequence(backend: Backend) -> None:
    late, early, early2 = backend.insert_jobs(
        SCOPE, [new(scheduled_at=T0 - 5), new(scheduled_at=T0 - 10), new(scheduled_at=T0 - 10)], T0)
    order = []
    for step in range(3):
        (c,) = claim(backend, T0 + step)
        order.append(c.job.id)
        succeed(backend, c, T0 + step)
    assert order == [early.id, early2.id, late.id]


def test_success_saves_done_and_moves_the_queue_on(backend: Backend) -> None:
    first, second = backend.insert_jobs(SCOPE, [new(), new()], T0)
    (c,) = claim(backend, T0)
    result = succeed(backend, c, T0 + 1)
    assert result.rejected == []
    done = backend.get_job(SCOPE, first.id, T0 + 1)
    assert done is not None and done.state == JobState.DONE
    assert done.done_at is not None and done.done_at.timestamp() == T0 + 1
    assert done.error is None
    (c2,) = claim(backend, T0 + 1)
    assert c2.job.id == second.id


def test_failure_blocks_the_queue_until_next_attempt(backend: Backend) -> None:
    first, second = backend.insert_jobs(SCOPE, [new("a"), new("a")], T0)
    backend.insert_jobs(SCOPE, [new("b")], T0)
    claims = {c.job.queue: c for c in claim(backend, T0)}
    result = fail(backend, claims["a"], T0, delay=5.0)
    (failed,) = result.failed
    assert failed.id == first.id and failed.state == JobState.RETRYING
    assert failed.error == "RuntimeError: boom"
    assert failed.next_attempt_at is not None and failed.next_attempt_at.timestamp() == T0 + 5
    assert failed.scheduled_at.timestamp() == T0  # unchanged: it stays the head
    assert claim(backend, T0 + 4.9) == []  # a is blocked; b is still locked
    succeed(backend, claims["b"], T0 + 4.9)
    assert claim(backend, T0 + 4.95, n=5) == []  # b is empty, a still blocked
    (retry,) = claim(backend, T0 + 5)
    assert retry.job.id == first.id and retry.job.attempts == 2
    assert second.id not in [retry.job.id]


def test_exhausted_job_fails_and_queue_moves_on_after_last_backoff(backend: Backend) -> None:
    first, second = backend.insert_jobs(SCOPE, [new(max_attempts=2), new()], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0, delay=1)
    (c,) = claim(backend, T0 + 1)
    (last,) = fail(backend, c, T0 + 1, delay=3).failed
    assert last.state == JobState.FAILED and last.attempts == 2
    assert claim(backend, T0 + 3.9) == []  # held until the last backoff has passed
    (c,) = claim(backend, T0 + 4)
    assert c.job.id == second.id
    stored = backend.get_job(SCOPE, first.id, T0 + 4)
    assert stored is not None and stored.state == JobState.FAILED


def test_scheduled_head_makes_queue_wait_but_not_others(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a", scheduled_at=T0 + 60), new("b")], T0)
    (c,) = claim(backend, T0)
    assert c.job.queue == "b"
    assert claim(backend, T0 + 59) == []
    (c,) = claim(backend, T0 + 60)
    assert c.job.queue == "a"


def test_earlier_scheduled_job_created_later_jumps_ahead(backend: Backend) -> None:
    later, = backend.insert_jobs(SCOPE, [new(scheduled_at=T0 + 10)], T0)
    sooner, = backend.insert_jobs(SCOPE, [new(scheduled_at=T0 + 5)], T0)
    (c,) = claim(backend, T0 + 20)
    assert c.job.id == sooner.id
    assert later.id != sooner.id


def test_job_created_while_queue_runs_waits_its_turn(backend: Backend) -> None:
    _first, = backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0)
    second, = backend.insert_jobs(SCOPE, [new()], T0)
    assert claim(backend, T0) == []
    succeed(backend, c, T0 + 1)
    (c2,) = claim(backend, T0 + 1)
    assert c2.job.id == second.id


def test_claims_oldest_waiting_queue_first(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("c")], T0 - 3)
    backend.insert_jobs(SCOPE, [new("a")], T0 - 1)
    backend.insert_jobs(SCOPE, [new("b")], T0 - 2)
    assert [c.job.queue for c in claim(backend, T0, n=1)] == ["c"]
    assert [c.job.queue for c in claim(backend, T0, n=5)] == ["b", "a"]


def test_a_back_dated_job_does_not_jump_ahead_of_waiting_queues(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("waiting")], T0 - 5)
    backend.insert_jobs(SCOPE, [new("late", scheduled_at=T0 - 3600)], T0)
    assert [c.job.queue for c in claim(backend, T0, n=1)] == ["waiting"]


def test_released_queue_goes_behind_queues_already_waiting(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a"), new("a"), new("b", scheduled_at=T0 + 1)], T0)
    (a,) = claim(backend, T0, n=1)
    # b became runnable at T0+1 while a ran; a's next head waits behind it.
    succeed(backend, a, T0 + 2)
    assert [c.job.queue for c in claim(backend, T0 + 2, n=1)] == ["b"]


def test_scopes_never_see_each_other(backend: Backend) -> None:
    backend.insert_jobs("one", [new("q")], T0)
    backend.insert_jobs("two", [new("q")], T0)
    (c1,) = claim(backend, T0, scope="one")
    (c2,) = claim(backend, T0, scope="two")
    assert (c1.job.scope, c2.job.scope) == ("one", "two")
    assert backend.list_jobs("one", T0)[0].scope == "one"


def test_outcome_with_a_stale_token_is_rejected(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0, lease=10)
    # The lease expires; a later step recovers the job and another worker claims it.
    (again,) = claim(backend, T0 + 11, lease=10, backoff=lambda job: 0.0)
    assert again.job.id == c.job.id and again.job.attempts == 2
    late = succeed(backend, c, T0 + 12)
    assert late.rejected == [Success(c)]
    job = backend.get_job(SCOPE, c.job.id, T0 + 12)
    assert job is not None and job.state == JobState.RUNNING  # the new claim still runs it
    assert succeed(backend, again, T0 + 13).rejected == []


def test_expired_lease_counts_a_failed_attempt_and_frees_the_queue(backend: Backend) -> None:
    first, _second = backend.insert_jobs(SCOPE, [new(), new()], T0)
    claim(backend, T0, lease=10)
    result = backend.step(SCOPE, T0 + 10, claim=0, backoff=lambda job: 7.0)
    (lost,) = result.failed
    assert lost.id == first.id and lost.state == JobState.RETRYING
    assert lost.error is not None and "worker lost" in lost.error and OWNER in lost.error
    assert lost.next_attempt_at is not None and lost.next_attempt_at.timestamp() == T0 + 17
    assert claim(backend, T0 + 16) == []  # still blocked by the lost attempt's backoff
    (c,) = claim(backend, T0 + 17)
    assert c.job.id == first.id and c.job.attempts == 2


def test_renewed_lease_does_not_expire(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0, lease=10)
    assert backend.renew(SCOPE, [c], T0 + 25) == []
    assert backend.step(SCOPE, T0 + 20, claim=5).failed == []
    assert succeed(backend, c, T0 + 21).rejected == []


def test_renew_reports_lost_claims(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0, lease=10)
    backend.step(SCOPE, T0 + 11)  # recovery takes the lock away
    assert backend.renew(SCOPE, [c], T0 + 30) == [c]


def test_timeout_failure_keeps_queue_locked_until_release(backend: Backend) -> None:
    first, _second = backend.insert_jobs(SCOPE, [new(), new()], T0)
    (c,) = claim(backend, T0)
    (failed,) = fail(backend, c, T0 + 1, delay=0, error="timeout", keep_lock=True).failed
    assert failed.state in (JobState.AVAILABLE, JobState.RETRYING) and failed.error == "timeout"
    assert claim(backend, T0 + 2) == []  # the runaway still holds the queue
    # ...then the runaway thread ends:
    assert backend.step(SCOPE, T0 + 4, outcomes=[Release(c)]).rejected == []
    (again,) = claim(backend, T0 + 4)
    assert again.job.id == first.id and again.job.attempts == 2


def test_release_before_its_timeout_failure_is_refused(backend: Backend) -> None:
    """A runaway's release is valid only after its timeout failure: never the reverse."""
    first, _second = backend.insert_jobs(SCOPE, [new(), new()], T0)
    (c,) = claim(backend, T0)
    assert backend.step(SCOPE, T0 + 1, outcomes=[Release(c)]).rejected == [Release(c)]
    job = backend.get_job(SCOPE, first.id, T0 + 1)
    assert job is not None and job.state == JobState.RUNNING
    assert claim(backend, T0 + 2) == []  # the queue is still locked: the next job waits
    fail(backend, c, T0 + 3, delay=0, error="timeout", keep_lock=True)
    assert backend.step(SCOPE, T0 + 4, outcomes=[Release(c)]).rejected == []
    (again,) = claim(backend, T0 + 4)
    assert again.job.id == first.id  # the head is still the timed-out job, not the next


def test_late_result_of_timed_out_job_is_discarded_but_frees_the_queue(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0 + 1, delay=0, error="timeout", keep_lock=True)
    assert backend.step(SCOPE, T0 + 3, outcomes=[Success(c)]).rejected == [Success(c)]
    job = backend.get_job(SCOPE, c.job.id, T0 + 3)
    assert job is not None and job.state == JobState.AVAILABLE and job.error == "timeout"
    (again,) = claim(backend, T0 + 3)
    assert again.job.id == c.job.id


def test_release_with_stale_token_is_rejected(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0, lease=5)
    backend.step(SCOPE, T0 + 6)
    assert backend.step(SCOPE, T0 + 7, outcomes=[Release(c)]).rejected == [Release(c)]


def test_several_outcomes_and_claims_in_one_step(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new(q) for q in "abc" for _ in range(2)], T0)
    claims = claim(backend, T0, n=3)
    outcomes = [Success(claims[0]), Failure(claims[1], "x", T0 + 100), Success(claims[2])]
    result = backend.step(SCOPE, T0 + 1, outcomes=outcomes, claim=3, owner=OWNER)
    assert result.rejected == []
    assert len(result.failed) == 1
    assert sorted(c.job.queue for c in result.claimed) == [claims[0].job.queue,
                                                          claims[2].job.queue]


def test_a_queue_is_claimed_by_one_of_two_concurrent_workers(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("only"), new("only")], T0)
    first = backend.step(SCOPE, T0, claim=1, owner="w1").claimed
    second = backend.step(SCOPE, T0, claim=1, owner="w2").claimed
    assert len(first) == 1 and second == []


def test_claims_the_caller_still_runs_are_never_recovered(backend: Backend) -> None:
    first, _second = backend.insert_jobs(SCOPE, [new(), new()], T0)
    (c,) = claim(backend, T0, lease=10)
    # The clock jumped past the lease, but this worker knows its job still runs.
    result = backend.step(SCOPE, T0 + 100, claim=5, owner=OWNER, alive={c.token})
    assert result.failed == [] and result.claimed == []
    assert succeed(backend, c, T0 + 101).rejected == []
    (c2,) = claim(backend, T0 + 101)
    assert c2.job.id == _second.id
    assert first.id == c.job.id


def test_one_step_saves_outcomes_recovers_leases_and_claims_in_that_order(
        backend: Backend) -> None:
    # The Postgres step records recoveries in a second call (the backoff is Python):
    # the order must still be outcomes, recoveries, then claims in the same step.
    lost, done, _next, _other = backend.insert_jobs(
        SCOPE, [new("lost"), new("done"), new("done"), new("other")], T0)
    held = {c.job.queue: c for c in claim(backend, T0, lease=10)}
    assert set(held) == {"lost", "done", "other"}
    result = backend.step(SCOPE, T0 + 10, outcomes=[Success(held["done"])], claim=10,
                          owner=OWNER, backoff=lambda job: 0.0, alive=[held["other"].token])
    assert [job.id for job in result.failed] == [lost.id]  # "other" is still ours: alive
    assert result.rejected == []
    # Both released queues are claimable again at once: the recovered job (no backoff)
    # and the next job of the queue whose outcome was saved.
    assert sorted(c.job.queue for c in result.claimed) == ["done", "lost"]
    again = {c.job.queue: c for c in result.claimed}
    assert again["lost"].job.id == lost.id and again["lost"].job.attempts == 2
    assert again["done"].job.id != done.id
    assert backend.get_job(SCOPE, done.id, T0 + 10).state == JobState.DONE  # type: ignore[union-attr]


def test_a_stale_and_a_fresh_success_of_one_job_in_one_step(backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new()], T0)
    (old,) = claim(backend, T0, lease=10)
    (fresh,) = claim(backend, T0 + 11, lease=10, backoff=lambda j: 0.0)  # recovered, reclaimed
    assert fresh.job.id == old.job.id == job.id
    result = backend.step(SCOPE, T0 + 12, outcomes=[Success(old), Success(fresh)])
    assert result.rejected == [Success(old)]
    stored = backend.get_job(SCOPE, job.id, T0 + 12)
    assert stored is not None and stored.state == JobState.DONE


def test_renew_tells_a_stale_claim_from_a_fresh_one_on_the_same_queue(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (old,) = claim(backend, T0, lease=10)
    (fresh,) = claim(backend, T0 + 11, lease=10, backoff=lambda j: 0.0)
    assert backend.renew(SCOPE, [old, fresh], T0 + 40) == [old]
    assert backend.step(SCOPE, T0 + 30).failed == []  # the fresh lease was extended


def test_timeout_of_a_last_attempt_and_its_release_in_one_step_hold_the_queue(
        backend: Backend) -> None:
    first, second = backend.insert_jobs(SCOPE, [new(max_attempts=1), new()], T0)
    (c,) = claim(backend, T0)
    result = backend.step(SCOPE, T0 + 1, outcomes=[
        Failure(c, "timeout", T0 + 50, keep_lock=True), Release(c)])
    assert result.rejected == []
    assert claim(backend, T0 + 49) == []  # held for the last backoff
    (status,) = backend.queue_statuses(SCOPE, T0 + 2)
    assert status.state.value == "blocked"
    (c2,) = claim(backend, T0 + 50)
    assert c2.job.id == second.id and first.id == c.job.id


# -- host clocks (hostclock.py): a lease of another clock follows the wall clock ---------

HOST_A = HostInstant("boot-a.1", 500.0)


def test_a_lease_taken_with_another_host_clock_is_judged_by_the_wall_clock(
        backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0, lease=10, host=HOST_A)
    # Another host (or a later boot): the clock the lease was taken with means nothing here.
    other = HostInstant("boot-b.1", 500.0)
    assert not backend.has_runnable(SCOPE, T0 + 9, other)
    assert backend.next_due(SCOPE, T0 + 9, other) == T0 + 10
    result = backend.step(SCOPE, T0 + 11, claim=1, owner=OWNER, host=other,
                          backoff=lambda j: 0.0)
    assert [j.id for j in result.failed] == [job.id]
    assert [r.job.id for r in result.claimed] == [job.id]
    assert c.token != result.claimed[0].token


def test_an_ended_claim_is_recovered_at_once_whatever_clock_it_was_taken_with(
        backend: Backend) -> None:
    (job,) = backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0, lease=10, host=HOST_A)
    assert backend.renew(SCOPE, [c], T0 + 20, HOST_A.after(20)) == []
    assert backend.expire_claims(SCOPE, [c.token], T0 + 1) == 1  # its holder is gone
    assert backend.has_runnable(SCOPE, T0 + 1, HOST_A.after(1))
    result = backend.step(SCOPE, T0 + 1, host=HOST_A.after(1))
    assert [j.id for j in result.failed] == [job.id]
