"""Unique keys and periodic jobs under concurrent threads and real processes (both backends)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from queuetopia_lite import Job, JobState, Performer, Queuetopia

from .. import pgserver
from ..conftest import wait_until

KEYS = 25
CREATORS = 4


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database shared by processes: a SQLite path or a Postgres URL."""
    if request.param == "sqlite":
        return os.fspath(tmp_path / "jobs.db")
    return pgserver.schema_url(pgserver.fresh_schema(request))


def _create_keyed(database: str, start: Any, results: Any) -> None:
    q = Queuetopia(database, durability="normal")
    start.wait(30)
    ids = [q.create_job("sync", "sync", {"pid": os.getpid()}, unique_key=f"device-{n}").id
           for n in range(KEYS)]
    results.put(ids)
    q.close()


def test_concurrent_processes_creating_one_key_get_one_job(database: str) -> None:
    Queuetopia(database).close()  # the schema exists before the race
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_create_keyed, args=(database, start, results))
             for _ in range(CREATORS)]
    for p in procs:
        p.start()
    start.set()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * CREATORS
    assert all(ids == got[0] for ids in got)  # every creator got the one job of each key
    q = Queuetopia(database)
    assert len(q.list_jobs(limit=1000)) == KEYS
    q.close()


def test_concurrent_threads_creating_one_key_get_one_job(database: str) -> None:
    q = Queuetopia(database, durability="normal")
    barrier = threading.Barrier(CREATORS)
    got: list[list[int]] = []

    def create() -> None:
        barrier.wait(30)
        ids = [q.create_jobs([{"queue": "sync", "action": "sync", "unique_key": f"d{n}"},
                              {"queue": "sync", "action": "sync", "unique_key": f"d{n + 1}"}])
               for n in range(KEYS)]
        got.append([job.id for pair in ids for job in pair])

    threads = [threading.Thread(target=create) for _ in range(CREATORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == CREATORS and all(ids == got[0] for ids in got)
    assert len(q.list_jobs(limit=1000)) == KEYS + 1
    q.close()


def _tick(database: str, stop: Any) -> None:
    performer = Performer()
    performer.register("beat", lambda job: None)
    performer.periodic("heartbeat", 1.0, "health", "beat")
    q = Queuetopia(database, performer, durability="normal", poll_interval=1.0)
    with q:
        stop.wait(60)
    q.close()


def test_two_processes_make_one_job_per_tick(database: str) -> None:
    q = Queuetopia(database, durability="normal")
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_tick, args=(database, stop)) for _ in range(2)]
    for p in procs:
        p.start()

    def beats() -> list[Job]:
        return q.list_jobs(queue="health", limit=1000)

    wait_until(lambda: len(beats()) >= 4, timeout=60, message="4 ticks")
    stop.set()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    jobs = beats()
    keys = [job.unique_key for job in jobs]
    assert len(set(keys)) == len(keys), keys  # never two jobs for one tick
    assert sum(job.state == JobState.DONE for job in jobs) >= 3  # and they ran
    q.close()
