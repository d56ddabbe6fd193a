"""Conformance: the periodic compare-and-set (one job per tick) on every backend."""

from __future__ import annotations

from queuetopia_lite import Backend, JobState

from .helpers import SCOPE, T0, new


def test_first_sight_records_the_tick_without_a_job(backend: Backend) -> None:
    assert backend.create_periodic_jobs(SCOPE, [("p", T0, new("q"))], T0) == []
    assert backend.list_jobs(SCOPE, T0) == []


def test_a_later_tick_makes_one_job_and_the_same_tick_none(backend: Backend) -> None:
    backend.create_periodic_jobs(SCOPE, [("p", T0, new("q"))], T0)
    (job,) = backend.create_periodic_jobs(SCOPE, [("p", T0 + 60, new("q", unique_key="t1"))],
                                          T0 + 61)
    assert job.queue == "q" and job.state == JobState.AVAILABLE and job.unique_key == "t1"
    assert job.created_at.timestamp() == T0 + 61
    assert backend.create_periodic_jobs(SCOPE, [("p", T0 + 60, new("q"))], T0 + 62) == []
    assert backend.create_periodic_jobs(SCOPE, [("p", T0, new("q"))], T0 + 62) == []  # older
    assert [j.id for j in backend.list_jobs(SCOPE, T0 + 62)] == [job.id]


def test_periodics_are_per_name_and_scope_and_go_in_one_call(backend: Backend) -> None:
    assert backend.create_periodic_jobs(SCOPE, [("a", T0, new("q")), ("b", T0, new("q"))],
                                        T0) == []
    backend.create_periodic_jobs("other", [("a", T0, new("q"))], T0)
    made = backend.create_periodic_jobs(
        SCOPE, [("a", T0 + 60, new("qa")), ("b", T0 + 60, new("qb")), ("c", T0 + 60, new("qc"))],
        T0 + 60)
    assert [job.queue for job in made] == ["qa", "qb"]  # c: first seen
    (other,) = backend.create_periodic_jobs("other", [("a", T0 + 60, new("q"))], T0 + 60)
    assert other.scope == "other"
    assert len(backend.list_jobs(SCOPE, T0 + 60)) == 2


def test_nothing_to_tick_writes_nothing(backend: Backend) -> None:
    assert backend.create_periodic_jobs(SCOPE, [], T0) == []
