"""SQLite leases on the host clock (hostclock.py): wall-clock jumps do not end them.

A lease taken with a host clock is judged by that clock by every caller with the same
key (the same boot and time namespace), whatever the wall clock says; by the wall
clock by everyone else (covered for every backend in the conformance suite).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from queuetopia_lite import JobState, hostclock
from queuetopia_lite.backend import HostInstant
from queuetopia_lite.sqlite import SQLiteBackend

from .conformance.helpers import OWNER, SCOPE, T0, claim, new, succeed

HOST = HostInstant("boot-a.1", 500.0)


@pytest.fixture
def sqlite(tmp_path: Path, sqlite_driver: str) -> SQLiteBackend:
    return SQLiteBackend(tmp_path / "jobs.db", durability="normal", driver=sqlite_driver)


def test_a_forward_wall_jump_past_the_lease_ends_nothing(sqlite: SQLiteBackend) -> None:
    (job, second) = sqlite.insert_jobs(SCOPE, [new(), new()], T0)
    (c,) = claim(sqlite, T0, lease=10, host=HOST)
    jumped = T0 + 3600  # the wall clock jumped an hour; 1 s passed on the host clock
    assert not sqlite.has_runnable(SCOPE, jumped, HOST.after(1))
    result = sqlite.step(SCOPE, jumped, claim=5, owner=OWNER, host=HOST.after(1))
    assert result.failed == [] and result.claimed == []
    # The lease ends 9 s later on the host clock: that is when it is due, on the wall clock.
    assert sqlite.next_due(SCOPE, jumped, HOST.after(1)) == jumped + 9
    assert succeed(sqlite, c, jumped + 2).rejected == []
    assert [r.job.id for r in claim(sqlite, jumped + 2, host=HOST.after(2))] == [second.id]
    assert sqlite.get_job(SCOPE, job.id, jumped).state is JobState.DONE  # type: ignore[union-attr]


def test_the_lease_ends_on_the_host_clock_even_when_the_wall_clock_went_back(
        sqlite: SQLiteBackend) -> None:
    (job,) = sqlite.insert_jobs(SCOPE, [new()], T0)
    claim(sqlite, T0, lease=10, host=HOST)
    back = T0 - 3600  # the wall clock went back an hour; 11 s passed on the host clock
    assert sqlite.has_runnable(SCOPE, back, HOST.after(11))
    result = sqlite.step(SCOPE, back, host=HOST.after(11))
    assert [j.id for j in result.failed] == [job.id]


def test_renewal_extends_the_lease_on_the_host_clock(sqlite: SQLiteBackend) -> None:
    sqlite.insert_jobs(SCOPE, [new()], T0)
    (c,) = claim(sqlite, T0, lease=10, host=HOST)
    assert sqlite.renew(SCOPE, [c], T0 + 18, HOST.after(18)) == []
    assert sqlite.step(SCOPE, T0, host=HOST.after(17)).failed == []
    assert [j.id for j in sqlite.step(SCOPE, T0, host=HOST.after(18)).failed] == [c.job.id]


def test_a_caller_without_a_host_clock_judges_by_the_wall_clock(sqlite: SQLiteBackend) -> None:
    (job,) = sqlite.insert_jobs(SCOPE, [new()], T0)
    claim(sqlite, T0, lease=10, host=HOST)
    assert sqlite.next_due(SCOPE) == T0 + 10
    assert sqlite.step(SCOPE, T0 + 9).failed == []
    assert [j.id for j in sqlite.step(SCOPE, T0 + 10).failed] == [job.id]


def test_this_hosts_clock_has_a_key_and_never_goes_back() -> None:
    first = hostclock.now()
    if first is None:
        pytest.skip("no CLOCK_BOOTTIME or /proc here: leases follow the wall clock")
    second = hostclock.now()
    assert second is not None and second.key == first.key and second.at >= first.at
    boot, namespace = first.key.split(".")
    assert boot.isalnum() and namespace.isdigit()


def test_only_the_real_wall_clock_comes_with_the_host_clock() -> None:
    assert hostclock.for_wall_clock(time.time) is hostclock.now
    assert hostclock.for_wall_clock(lambda: T0)() is None
