"""Conformance: queue statuses, retry, cancel and pruning (every backend)."""

from __future__ import annotations

import sys

import pytest

from queuetopia_lite import Backend, JobNotFoundError, JobState, JobStateError, QueueState
from queuetopia_lite.backend import Success

from .helpers import OWNER, SCOPE, T0, claim, fail, new, succeed


def statuses(backend: Backend, now: float) -> dict[str, object]:
    return {s.queue: s for s in backend.queue_statuses(SCOPE, now)}


def test_queue_states(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("avail"), new("run"), new("blocked"), new("blocked"),
                                new("later", scheduled_at=T0 + 60), new("idle")], T0)
    claims = {c.job.queue: c for c in claim(backend, T0, n=10)}
    succeed(backend, claims["idle"], T0)
    fail(backend, claims["blocked"], T0, delay=30)
    backend.step(SCOPE, T0, outcomes=[Success(claims["avail"])])
    backend.insert_jobs(SCOPE, [new("avail")], T0)
    by_name = {s.queue: s for s in backend.queue_statuses(SCOPE, T0 + 1)}
    assert sorted(by_name) == ["avail", "blocked", "idle", "later", "run"]
    assert by_name["avail"].state == QueueState.AVAILABLE
    assert by_name["idle"].state == QueueState.IDLE and by_name["idle"].head is None
    assert by_name["idle"].pending == 0
    run = by_name["run"]
    assert run.state == QueueState.RUNNING and run.locked_by == OWNER
    assert run.locked_until is not None and run.locked_until.timestamp() == T0 + 30
    assert run.pending == 1 and run.head is not None and run.head.state == JobState.RUNNING
    blocked = by_name["blocked"]
    assert blocked.state == QueueState.BLOCKED and blocked.pending == 2
    assert blocked.head is not None and blocked.head.attempts == 1
    assert blocked.blocked_since is not None and blocked.blocked_since.timestamp() == T0
    assert blocked.next_run_at is not None and blocked.next_run_at.timestamp() == T0 + 30
    later = by_name["later"]
    assert later.state == QueueState.SCHEDULED
    assert later.next_run_at is not None and later.next_run_at.timestamp() == T0 + 60


def test_blocked_since_is_the_first_failure_of_the_head(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0, delay=5)
    (c,) = claim(backend, T0 + 5)
    fail(backend, c, T0 + 5, delay=5)
    (status,) = backend.queue_statuses(SCOPE, T0 + 6)
    assert status.blocked_since is not None and status.blocked_since.timestamp() == T0


def test_queue_statuses_are_scoped(backend: Backend) -> None:
    backend.insert_jobs("other", [new("theirs")], T0)
    backend.insert_jobs(SCOPE, [new("mine")], T0)
    assert [s.queue for s in backend.queue_statuses(SCOPE, T0)] == ["mine"]


def test_retry_makes_a_blocked_job_runnable_now_keeping_attempts(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0, delay=3600)
    job = backend.retry_job(SCOPE, c.job.id, T0 + 1)
    assert job.state == JobState.AVAILABLE and job.attempts == 1 and job.next_attempt_at is None
    (again,) = claim(backend, T0 + 1)
    assert again.job.id == c.job.id and again.job.attempts == 2


def test_retry_gives_an_exhausted_job_one_more_attempt_in_its_place(backend: Backend) -> None:
    first, _second = backend.insert_jobs(SCOPE, [new(max_attempts=1), new()], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0, delay=1)
    job = backend.retry_job(SCOPE, first.id, T0 + 0.5)
    assert job.state == JobState.AVAILABLE and job.max_attempts == 2
    (again,) = claim(backend, T0 + 0.5)
    assert again.job.id == first.id  # back ahead of the second job


def test_retry_refuses_running_and_done_jobs(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new(), new("other")], T0)
    running, other = claim(backend, T0)
    with pytest.raises(JobStateError):
        backend.retry_job(SCOPE, running.job.id, T0)
    succeed(backend, other, T0)
    with pytest.raises(JobStateError):
        backend.retry_job(SCOPE, other.job.id, T0)


def test_unknown_job_raises_not_found(backend: Backend) -> None:
    with pytest.raises(JobNotFoundError):
        backend.retry_job(SCOPE, 12345, T0)
    with pytest.raises(JobNotFoundError):
        backend.cancel_job(SCOPE, 12345, T0)
    (job,) = backend.insert_jobs("other", [new()], T0)
    with pytest.raises(JobNotFoundError):
        backend.cancel_job(SCOPE, job.id, T0)  # another scope's job is not ours


def test_cancel_a_blocked_head_unblocks_its_queue(backend: Backend) -> None:
    first, second = backend.insert_jobs(SCOPE, [new(), new()], T0)
    (c,) = claim(backend, T0)
    fail(backend, c, T0, delay=3600)
    assert backend.cancel_job(SCOPE, first.id, T0 + 1).state == JobState.CANCELLED
    (next_claim,) = claim(backend, T0 + 1)
    assert next_claim.job.id == second.id


def test_cancel_a_running_job_discards_its_result_and_frees_queue_when_it_ends(
        backend: Backend) -> None:
    first, second = backend.insert_jobs(SCOPE, [new(), new()], T0)
    (c,) = claim(backend, T0)
    assert backend.cancel_job(SCOPE, first.id, T0).state == JobState.CANCELLED
    assert claim(backend, T0) == []  # still locked while the job runs
    assert succeed(backend, c, T0 + 1).rejected == [Success(c)]
    job = backend.get_job(SCOPE, first.id, T0 + 1)
    assert job is not None and job.state == JobState.CANCELLED
    (c2,) = claim(backend, T0 + 1)
    assert c2.job.id == second.id


def test_cancel_refuses_finished_jobs(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0)
    succeed(backend, c, T0)
    with pytest.raises(JobStateError):
        backend.cancel_job(SCOPE, c.job.id, T0)


def test_cancel_a_waiting_job_behind_the_head(backend: Backend) -> None:
    first, second, third = backend.insert_jobs(SCOPE, [new(), new(), new()], T0)
    backend.cancel_job(SCOPE, second.id, T0)
    order = []
    for _ in range(2):
        (c,) = claim(backend, T0)
        order.append(c.job.id)
        succeed(backend, c, T0)
    assert order == [first.id, third.id]


def test_prune_deletes_only_old_done_jobs_of_the_scope(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a"), new("b")], T0)
    backend.insert_jobs("other", [new("a")], T0)
    a, b = claim(backend, T0)
    succeed(backend, a, T0)
    (o,) = claim(backend, T0, scope="other")
    succeed(backend, o, T0, scope="other")
    assert backend.prune(SCOPE, T0 + 1) == 1
    assert backend.get_job(SCOPE, a.job.id, T0) is None
    assert backend.get_job(SCOPE, b.job.id, T0) is not None  # running: kept
    assert backend.get_job("other", o.job.id, T0) is not None
    assert backend.prune(SCOPE, T0 + 1) == 0


def test_prune_keeps_recent_done_jobs(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0)
    succeed(backend, c, T0 + 100)
    assert backend.prune(SCOPE, T0 + 50) == 0


def test_ids_are_never_reused_after_pruning_every_job(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a"), new("b")], T0)
    for c in claim(backend, T0):
        succeed(backend, c, T0)
    assert backend.prune(SCOPE, T0 + 1) == 2  # the newest job of the table too
    assert backend.list_jobs(SCOPE, T0 + 2) == []
    (later,) = backend.insert_jobs(SCOPE, [new("a")], T0 + 2)
    assert later.id == 3


def test_prune_deletes_old_done_jobs_whatever_other_scopes_hold(backend: Backend) -> None:
    (mine,) = backend.insert_jobs(SCOPE, [new("q")], T0)
    (c,) = claim(backend, T0)
    succeed(backend, c, T0)
    (theirs,) = backend.insert_jobs("other", [new("q")], T0 + 5)  # the newest of the table
    assert backend.prune(SCOPE, T0 + 1) == 1
    assert backend.get_job(SCOPE, mine.id, T0 + 2) is None
    assert backend.get_job("other", theirs.id, T0 + 2) is not None
    # The other scope's job is not done: pruning there deletes nothing.
    assert backend.prune("other", T0 + 10) == 0
    (later,) = backend.insert_jobs(SCOPE, [new("q")], T0 + 6)
    assert later.id > theirs.id


def test_prune_deletes_more_than_one_batch(backend: Backend,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    module = sys.modules[type(backend).__module__]
    monkeypatch.setattr(module, "PRUNE_BATCH", 3)  # 10 jobs: batches of 3, 3, 3, 1
    backend.insert_jobs(SCOPE, [new(f"q{i}") for i in range(10)], T0)
    for c in claim(backend, T0, n=10):
        succeed(backend, c, T0)
    assert backend.prune(SCOPE, T0 + 1) == 10
    assert backend.list_jobs(SCOPE, T0 + 1) == []
    assert backend.queue_statuses(SCOPE, T0 + 1) == []  # every idle queue forgotten too


def test_prune_forgets_idle_queues_but_not_busy_ones(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("idle"), new("busy"), new("busy")], T0)
    for c in claim(backend, T0):
        succeed(backend, c, T0)
    backend.prune(SCOPE, T0 + 1)
    assert [s.queue for s in backend.queue_statuses(SCOPE, T0 + 1)] == ["busy"]
