"""Conformance: tokens name their holder; expire_claims ends gone holders' leases (SPEC 13.2)."""

from __future__ import annotations

from queuetopia_lite import Backend, JobState
from queuetopia_lite.holders import holder_alive, host_prefix

from .helpers import SCOPE, T0, claim, new, succeed


def test_a_claims_token_names_this_process_as_its_holder(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(backend, T0)
    assert c.token.startswith(host_prefix())
    assert holder_alive(c.token) is True


def test_lock_tokens_lists_this_scopes_locks_with_the_prefix(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a"), new("b"), new("c")], T0)
    backend.insert_jobs("other", [new("a")], T0)
    a, b, c = sorted(claim(backend, T0), key=lambda x: x.job.queue)
    claim(backend, T0, scope="other")
    succeed(backend, c, T0)
    assert sorted(backend.lock_tokens(SCOPE, host_prefix())) == sorted([a.token, b.token])
    assert backend.lock_tokens(SCOPE, "no such prefix") == []


def test_expire_claims_ends_the_lease_and_the_next_step_recovers_it(backend: Backend) -> None:
    first, second = backend.insert_jobs(SCOPE, [new("a"), new("b")], T0)
    a, b = sorted(claim(backend, T0, lease=30.0), key=lambda x: x.job.queue)
    assert backend.expire_claims(SCOPE, [a.token], T0 + 1) == 1
    result = backend.step(SCOPE, T0 + 1)  # long before the 30 s lease would have ended
    assert [job.id for job in result.failed] == [first.id]
    lost = backend.get_job(SCOPE, first.id, T0 + 1)
    assert lost is not None and lost.state == JobState.RETRYING and lost.attempts == 1
    assert lost.error is not None and lost.error.startswith("worker lost")
    running = backend.get_job(SCOPE, second.id, T0 + 1)
    assert running is not None and running.state == JobState.RUNNING  # b's lease untouched
    assert backend.lock_tokens(SCOPE, host_prefix()) == [b.token]


def test_expire_claims_is_fenced_by_the_token(backend: Backend) -> None:
    backend.insert_jobs(SCOPE, [new("a"), new("a")], T0)
    (old,) = claim(backend, T0)
    succeed(backend, old, T0 + 1)
    (fresh,) = claim(backend, T0 + 1)  # the queue is relocked by another claim
    assert backend.expire_claims(SCOPE, [old.token, "unknown"], T0 + 2) == 0
    assert backend.step(SCOPE, T0 + 2).failed == []
    assert backend.expire_claims(SCOPE, [fresh.token], T0 + 2) == 1
    assert backend.expire_claims(SCOPE, [fresh.token], T0 + 2) == 0  # already ended
    assert backend.expire_claims(SCOPE, [], T0 + 2) == 0
