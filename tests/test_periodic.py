"""Periodic jobs through the facade: ticks, missed ticks, definitions (fake clock, drain)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import pytest

from queuetopia_lite import (
    Backend,
    DatabaseError,
    InvalidJobError,
    Job,
    Performer,
    Queuetopia,
    periodic,
)
from queuetopia_lite.backend import PeriodicTick
from queuetopia_lite.periodic import Interval
from queuetopia_lite.sqlite import SQLiteBackend

from .conftest import FakeClock, wait_until

START = datetime(2027, 1, 15, 2, 58, 30, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def performer() -> Performer:
    performer = Performer()

    @performer.action("build_report", max_attempts=3)
    def build_report(job: Job) -> None:
        pass

    performer.register("ping", lambda job: None)
    return performer


def reports(q: Queuetopia) -> list[Job]:
    return q.list_jobs(queue="reports")


def test_a_cron_periodic_makes_one_job_at_its_tick(backend: Backend, performer: Performer,
                                                   clock: FakeClock) -> None:
    q = Queuetopia(backend, performer, clock=clock)
    q.periodic("nightly-report", "0 3 * * *", "reports", "build_report", {"kind": "daily"})
    assert q.drain() == 0 and reports(q) == []  # defined at 02:58: waits for 03:00
    clock.advance(60)
    assert q.drain() == 0
    clock.advance(30)  # 03:00:00
    assert q.drain() == 1
    (job,) = reports(q)
    assert job.params == {"kind": "daily"} and job.max_attempts == 3  # the action's default
    assert job.unique_key == "periodic:nightly-report@2027-01-15T03:00:00+00:00"
    clock.advance(3600)
    assert q.drain() == 0 and len(reports(q)) == 1  # one a day


def test_missed_ticks_make_one_job_at_the_next_start(backend: Backend, performer: Performer,
                                                     clock: FakeClock) -> None:
    q = Queuetopia(backend, performer, clock=clock)
    q.periodic("heartbeat", 30.0, "reports", "ping")
    q.drain()
    clock.advance(30)
    assert q.drain() == 1
    clock.advance(30 * 10)  # ten ticks while nothing ran
    later = Queuetopia(backend, performer, clock=clock)  # a fresh start
    later.periodic("heartbeat", timedelta(seconds=30), "reports", "ping")
    assert later.drain() == 1
    assert q.drain() == 0  # the other process sees the tick taken
    assert len(reports(q)) == 2


def test_two_queuetopias_on_one_database_make_one_job_per_tick(
        backend: Backend, performer: Performer, clock: FakeClock) -> None:
    first = Queuetopia(backend, performer, clock=clock)
    second = Queuetopia(backend, performer, clock=clock)
    for q in (first, second):
        q.periodic("heartbeat", 60, "reports", "ping")
        q.drain()
    for _ in range(3):
        clock.advance(60)
        assert first.drain() + second.drain() == 1
    assert len(reports(first)) == 3


def test_performer_periodics_are_adopted_by_its_queuetopias(
        backend: Backend, performer: Performer, clock: FakeClock) -> None:
    performer.periodic("heartbeat", 60, "reports", "ping")
    q = Queuetopia(backend, performer, clock=clock)
    q.drain()
    clock.advance(60)
    assert q.drain() == 1


def test_bad_periodic_definitions_are_refused(backend: Backend, performer: Performer) -> None:
    q = Queuetopia(backend, performer)
    q.periodic("p", 60, "reports", "ping")
    cases: list[tuple[dict[str, object], str]] = [
        ({"name": "p"}, "name"), ({"name": ""}, "name"),
        ({"schedule": "0 3 * *"}, "schedule"), ({"schedule": 0.5}, "schedule"),
        ({"schedule": -5}, "schedule"), ({"schedule": None}, "schedule"),
        ({"action": "pnig"}, "action"), ({"queue": ""}, "queue"), ({"params": [1]}, "params"),
    ]
    for change, field in cases:
        args: dict[str, object] = {"name": "x", "schedule": 60, "queue": "reports",
                                   "action": "ping", **change}
        with pytest.raises(InvalidJobError) as info:
            q.periodic(**args)  # type: ignore[arg-type]
        assert info.value.field == field, change
    performer.periodic("y", "nope", "reports", "ping")
    with pytest.raises(InvalidJobError, match="schedule"):
        Queuetopia(backend, performer)


def test_interval_ticks_are_multiples_of_the_interval() -> None:
    every = Interval(60.0)
    assert every.previous(START) == START - 30 and every.next(START) == START + 30
    assert every.previous(START - 30) == START - 30


def test_start_and_stop_run_the_ticker_thread(backend: Backend, performer: Performer) -> None:
    q = Queuetopia(backend, performer)
    with q:  # started without definitions: one added while running is ticked too
        q.periodic("heartbeat", 1.0, "reports", "ping")
        wait_until(lambda: reports(q), timeout=20, message="a heartbeat")
        q.periodic("other", 1.0, "others", "ping")
        wait_until(lambda: q.list_jobs(queue="others"), timeout=20, message="another beat")
    assert q._ticker._thread is None  # stopped with the scheduler


class FlakyBackend(SQLiteBackend):
    """Its first create_periodic_jobs raises, as a locked or unreachable database would."""

    failures = 1

    def create_periodic_jobs(self, scope: str, ticks: Sequence[PeriodicTick],
                             now: float) -> list[Job]:
        if self.failures:
            self.failures -= 1
            raise DatabaseError(self.path, "database is locked")
        return super().create_periodic_jobs(scope, ticks, now)


def test_the_ticker_thread_survives_a_database_error(
        tmp_path: Path, performer: Performer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(periodic, "ERROR_PAUSE", 0.05)
    backend = FlakyBackend(tmp_path / "jobs.db", durability="normal")
    q = Queuetopia(backend, performer)
    q.periodic("heartbeat", 1.0, "reports", "ping")
    with q:
        wait_until(lambda: reports(q), timeout=20, message="a heartbeat after the error")
    assert "periodic jobs could not be created" in caplog.text
    q.close()
