"""Postgres claims: row locks that skip, and leases on the database's clock."""

from __future__ import annotations

import time
from typing import Any, Callable

from queuetopia_lite.backend import Success
from queuetopia_lite.postgres.clock import DatabaseClock

from ..conformance.helpers import OWNER, SCOPE, claim, new


def test_a_queue_row_held_by_another_transaction_is_skipped_not_waited_for(
        backends: Callable[..., Any], raw: Any, schema: str) -> None:
    backend = backends()
    now = time.time()
    backend.insert_jobs(SCOPE, [new("a"), new("b")], now)
    with raw.transaction():  # another node in the middle of claiming queue "a"
        raw.execute(f'SELECT 1 FROM "{schema}".qt_queues WHERE queue = %s FOR UPDATE', ("a",))
        claims = claim(backend, now)
        assert [c.job.queue for c in claims] == ["b"]
    assert [c.job.queue for c in claim(backend, now)] == ["a"]


def test_two_nodes_claiming_at_once_never_take_the_same_queue(
        backends: Callable[..., Any]) -> None:
    first, second = backends(), backends()
    now = time.time()
    first.insert_jobs(SCOPE, [new(f"q{i}") for i in range(40) for _ in range(2)], now)
    taken: list[str] = []
    for _ in range(30):
        a = claim(first, now, n=3)
        b = claim(second, now, n=3)
        held = [c.job.queue for c in a + b]
        assert len(held) == len(set(held))
        taken += held
        for c in a:
            first.step(SCOPE, now, outcomes=[Success(c)])
        for c in b:
            second.step(SCOPE, now, outcomes=[Success(c)])
    assert sorted(taken) == sorted(f"q{i}" for i in range(40) for _ in range(2))


def test_lease_ends_are_stored_on_the_database_clock(backends: Callable[..., Any]) -> None:
    """A host whose clock runs 2 minutes ahead stores the database's time, not its own."""
    skew = 120.0
    ahead = backends()
    ahead._clock = DatabaseClock(ahead._database_time, host_clock=lambda: time.time() + skew)
    host_now = time.time() + skew  # what the skewed host's scheduler passes
    ahead.insert_jobs(SCOPE, [new()], host_now)
    (c,) = claim(ahead, host_now, lease=30.0)
    (status,) = ahead.queue_statuses(SCOPE, host_now)
    assert status.locked_until is not None
    assert abs(status.locked_until.timestamp() - (time.time() + 30.0)) < 10.0
    # A host with a correct clock sees the lease running, not expired, and the
    # skewed host's own next_due comes back on its own clock.
    honest = backends()
    assert not honest.has_runnable(SCOPE, time.time())
    due = ahead.next_due(SCOPE)
    assert due is not None and abs(due - (host_now + 30.0)) < 10.0
    assert c.job.attempted_by == OWNER


def test_a_host_clock_far_behind_does_not_steal_a_lease(backends: Callable[..., Any]) -> None:
    holder, behind = backends(), backends()
    skew = -300.0
    behind._clock = DatabaseClock(behind._database_time, host_clock=lambda: time.time() + skew)
    now = time.time()
    holder.insert_jobs(SCOPE, [new()], now)
    (c,) = claim(holder, now, lease=30.0)
    # 40 s later by the real clock the lease has expired; the slow host's clock
    # says it is 260 s earlier, yet it must see the expiry on the database's clock.
    result = behind.step(SCOPE, now + 40 + skew, claim=1, owner="slow:1")
    assert [j.id for j in result.failed] == [c.job.id]


def test_clock_offsets_within_the_tolerance_count_as_zero() -> None:
    assert DatabaseClock(lambda: time.time() + 0.3).offset() == 0.0
    far = DatabaseClock(lambda: time.time() + 42.0).offset()
    assert 41.0 < far < 43.0
