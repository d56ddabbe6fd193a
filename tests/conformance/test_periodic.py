"""Conformance: the periodic compare-and-set (one job per tick) on every backend."""

from __future__ import annotations

from queuetopia_lite import Backend, JobState

from .helpers import SCOPE, T0, new


def test_first_sight_records_the_tick_without_a_job(backend: Backend) -> None:
    assert backend.create_periodic_job(SCOPE, "p", T0, new("q"), T0) is None
    assert backend.list_jobs(SCOPE, T0) == []


def test_a_later_tick_makes_one_job_and_the_same_tick_none(backend: Backend) -> None:
    backend.create_periodic_job(SCOPE, "p", T0, new("q"), T0)
    job = backend.create_periodic_job(SCOPE, "p", T0 + 60, new("q", unique_key="t1"), T0 + 61)
    assert job is not None and job.queue == "q" and job.state == JobState.AVAILABLE
    assert job.created_at.timestamp() == T0 + 61
    assert backend.create_periodic_job(SCOPE, "p", T0 + 60, new("q"), T0 + 62) is None
    assert backend.create_periodic_job(SCOPE, "p", T0, new("q"), T0 + 62) is None  # older
    assert [j.id for j in backend.list_jobs(SCOPE, T0 + 62)] == [job.id]


def test_periodics_are_per_name_and_scope(backend: Backend) -> None:
    for scope, name in [(SCOPE, "a"), (SCOPE, "b"), ("other", "a")]:
        backend.create_periodic_job(scope, name, T0, new("q"), T0)
    made = [backend.create_periodic_job(scope, name, T0 + 60, new("q"), T0 + 60)
            for scope, name in [(SCOPE, "a"), (SCOPE, "b"), ("other", "a")]]
    assert all(job is not None for job in made)
    assert len(backend.list_jobs(SCOPE, T0 + 60)) == 2
