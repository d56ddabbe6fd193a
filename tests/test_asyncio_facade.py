"""AsyncQueuetopia (SPEC 11): awaitable methods that never block the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Awaitable, Callable

import pytest

from queuetopia_lite import AsyncQueuetopia, Backend, InvalidJobError, Job, JobState, Performer
from queuetopia_lite.testing import (
    assert_job_created_async,
    perform_job,
    perform_job_async,
    refute_job_created_async,
)

from . import pgserver


async def until(condition: Callable[[], Awaitable[object]], timeout: float = 20.0,
                message: str = "condition") -> None:
    """Await ``condition()`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        await asyncio.sleep(0.01)


def performer(log: list[Any]) -> Performer:
    p = Performer()

    @p.action("fetch")
    async def fetch(job: Job) -> None:
        await asyncio.sleep(0.01)
        log.append(("fetch", job.params.get("n")))

    @p.action("note")
    def note(job: Job) -> None:
        log.append(("note", job.params.get("n")))

    @p.action("broken")
    async def broken(job: Job) -> None:
        raise ValueError("broken")

    return p


def state(job: Job | None) -> JobState | None:
    return None if job is None else job.state


def test_every_method_awaited_on_each_backend(backend: Backend) -> None:
    log: list[Any] = []

    async def main() -> None:
        aq = AsyncQueuetopia(backend, performer(log))  # in a running loop: opened when first used
        first = await aq.create_job("q", "fetch", {"n": 1})
        more = await aq.create_jobs([("q", "note", {"n": 2}), ("r", "fetch", {"n": 3}),
                                     ("s", "note", {"n": 4})])
        bad = await aq.create_job("b", "broken", max_attempts=1)
        assert state(await aq.get_job(first.id)) == JobState.AVAILABLE
        assert await aq.get_job(10**9) is None
        assert [j.id for j in await aq.list_jobs(queue="q")] == [more[0].id, first.id]
        assert [s.queue for s in await aq.queues()] == ["b", "q", "r", "s"]
        assert (await aq.cancel_job(more[2].id)).state == JobState.CANCELLED
        assert await aq.drain() == 4  # async actions too
        assert sorted(log) == [("fetch", 1), ("fetch", 3), ("note", 2)]
        assert (await aq.count_jobs())[JobState.DONE] == 3
        assert (await aq.get_job(bad.id) or bad).state == JobState.FAILED
        assert (await aq.retry_job(bad.id)).state == JobState.AVAILABLE
        await assert_job_created_async(aq, queue="q", action="fetch", params={"n": 1})
        await refute_job_created_async(aq, queue="nowhere")
        with pytest.raises(InvalidJobError) as err:
            await aq.create_job("", "fetch")
        assert err.value.field == "queue"
        await aq.stop()

    asyncio.run(main())


def test_async_with_runs_async_and_sync_jobs(backend: Backend) -> None:
    log: list[Any] = []

    async def main() -> None:
        aq = AsyncQueuetopia(backend, performer(log), poll_interval=60.0)
        async with aq:
            jobs = await aq.create_jobs([("q", "fetch" if n % 2 else "note", {"n": n})
                                         for n in range(6)])

            async def all_done() -> bool:
                return all([state(await aq.get_job(j.id)) == JobState.DONE for j in jobs])
            await until(all_done, message="the jobs ran while the block ran")
        assert log == [("note", 0), ("fetch", 1), ("note", 2), ("fetch", 3), ("note", 4),
                       ("fetch", 5)]

    asyncio.run(main())


def test_made_outside_a_loop_it_checks_and_opens_at_once(db_path: str) -> None:
    with pytest.raises(InvalidJobError) as err:
        AsyncQueuetopia(db_path, Performer(), max_workers=0)
    assert err.value.field == "max_workers"
    assert os.path.exists(db_path) is False

    async def inside() -> None:
        aq = AsyncQueuetopia(db_path, Performer(), max_workers=0)  # checked at first use
        with pytest.raises(InvalidJobError):
            await aq.count_jobs()

    asyncio.run(inside())
    aq = AsyncQueuetopia(db_path, Performer())
    assert os.path.exists(db_path)
    asyncio.run(aq.close())


def test_cancelling_run_stops_gracefully_and_saves_the_running_job(db_path: str) -> None:
    started = threading.Event()

    p = Performer()

    @p.action("slow")
    async def slow(job: Job) -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "done"

    async def main() -> None:
        aq = AsyncQueuetopia(db_path, p, durability="normal")
        job = await aq.create_job("q", "slow")
        runner = asyncio.create_task(aq.run())
        await until(lambda: asyncio.to_thread(started.wait, 0.01), message="the job started")
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        # run() returned only after the running job ended and its result was saved.
        assert state(await aq.get_job(job.id)) == JobState.DONE
        scheduler = aq.queuetopia._scheduler
        assert scheduler is not None and not scheduler.running
        await aq.close()

    asyncio.run(main())


def test_sigterm_ends_run(db_path: str) -> None:
    assert threading.current_thread() is threading.main_thread()
    log: list[Any] = []

    async def main() -> None:
        aq = AsyncQueuetopia(db_path, performer(log), durability="normal")
        job = await aq.create_job("q", "fetch", {"n": 1})

        async def then_terminate() -> None:
            await until(lambda: aq.get_job(job.id), message="job stored")
            await until(lambda: _done(aq, job), message="the job ran")
            os.kill(os.getpid(), signal.SIGTERM)
        terminator = asyncio.create_task(then_terminate())
        await aq.run()  # returns (no exception) on SIGTERM
        await terminator
        await aq.close()

    asyncio.run(main())
    assert log == [("fetch", 1)]


async def _done(aq: AsyncQueuetopia, job: Job) -> bool:
    return state(await aq.get_job(job.id)) == JobState.DONE


HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def test_loop_stays_responsive_while_create_job_waits_for_another_process(
        db_path: str) -> None:
    async def main() -> None:
        aq = AsyncQueuetopia(db_path, performer([]), durability="normal")
        await aq.count_jobs()  # the file exists, migrated, before the other process locks it
        child = subprocess.Popen([sys.executable, "-c", HOLDER, db_path], text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline() == "locked\n"
            gaps: list[float] = []

            async def ticker() -> None:
                last = time.monotonic()
                while True:
                    await asyncio.sleep(0.005)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            tick = asyncio.create_task(ticker())
            create = asyncio.create_task(aq.create_job("q", "fetch"))
            await asyncio.sleep(1.5)
            assert not create.done()  # waiting for the other process's write lock...
            assert len(gaps) > 20  # ...while the loop went on ticking
            child.stdin.write("\n")
            child.stdin.flush()
            job = await create
            tick.cancel()
        finally:
            child.stdin.close()
            child.wait(timeout=20)
        assert job.state == JobState.AVAILABLE
        # Loose bound (speed lives in benchmarks/): a loop blocked by the wait would show
        # one gap of about 1.5 s.
        assert max(gaps) < 0.5
        await aq.close()

    asyncio.run(main())


def test_perform_job_runs_async_actions() -> None:
    log: list[Any] = []
    p = performer(log)
    assert perform_job(p, "fetch", {"n": 7}) is None
    with pytest.raises(ValueError, match="broken"):
        perform_job(p, "broken")

    async def inside() -> None:
        assert await perform_job_async(p, "fetch", {"n": 8}) is None
        assert perform_job(p, "fetch", {"n": 9}) is None  # a sync call from a coroutine too
        with pytest.raises(ValueError, match="broken"):
            await perform_job_async(p, "broken")

    asyncio.run(inside())
    assert log == [("fetch", 7), ("fetch", 8), ("fetch", 9)]


# -- Postgres: jobs in the application's transaction on an AsyncConnection ------------


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    return pgserver.schema_url(pgserver.fresh_schema(request))


def test_create_job_in_an_async_psycopg_transaction(pg_url: str) -> None:
    import psycopg

    log: list[Any] = []

    async def main() -> None:
        aq = AsyncQueuetopia(pg_url, performer(log))
        async with await psycopg.AsyncConnection.connect(pgserver.URL) as conn:
            async with conn.transaction():
                job = await aq.create_job("q", "fetch", {"n": 1}, connection=conn)
                keyed = await aq.create_jobs([("q", "note", {"n": 2}), ("k", "note")],
                                             connection=conn, max_attempts=3)
                again = await aq.create_job("k", "note", unique_key="once", connection=conn)
                same = await aq.create_job("k", "note", unique_key="once", connection=conn)
                assert same.id == again.id
                assert await aq.get_job(job.id) is None  # not committed yet
            assert state(await aq.get_job(job.id)) == JobState.AVAILABLE
            assert keyed[0].max_attempts == 3
            try:
                async with conn.transaction():
                    rolled = await aq.create_job("q", "fetch", {"n": 3}, connection=conn)
                    raise RuntimeError("rollback")
            except RuntimeError:
                pass
            assert await aq.get_job(rolled.id) is None
            await conn.set_autocommit(True)
            with pytest.raises(InvalidJobError, match="not inside a transaction"):
                await aq.create_job("q", "fetch", connection=conn)
        async with aq:
            await until(lambda: _done(aq, job), message="the committed job ran")
        await aq.close()

    asyncio.run(main())
    assert ("fetch", 1) in log and ("fetch", 3) not in log


def test_an_async_connection_to_a_sqlite_queue_is_refused(db_path: str) -> None:
    class AsyncConnection:  # what matters is that it is no connection SQLite can join
        pass

    async def main() -> None:
        aq = AsyncQueuetopia(db_path, performer([]), durability="normal")
        with pytest.raises(InvalidJobError) as err:
            await aq.create_job("q", "fetch", connection=AsyncConnection())
        assert err.value.field == "connection"
        await aq.close()

    asyncio.run(main())


def test_create_job_in_the_applications_sqlite_transaction(db_path: str,
                                                           sqlite_driver: str) -> None:
    from .test_app_transaction import ORDERS, app_connection

    async def main() -> None:
        aq = AsyncQueuetopia(db_path, performer([]), driver=sqlite_driver, durability="normal")
        await aq.count_jobs()
        conn = app_connection(db_path, sqlite_driver)
        try:
            conn.execute(ORDERS)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO orders (id, customer) VALUES (1, 42)")
            job = await aq.create_job("payments", "fetch", {"order": 1}, connection=conn)
            more = await aq.create_jobs([("payments", "note", {"order": 1})], connection=conn)
            assert await aq.get_job(job.id) is None  # not before the application commits
            conn.execute("COMMIT")
            assert [j.id for j in await aq.list_jobs()] == [more[0].id, job.id]
            conn.execute("BEGIN IMMEDIATE")
            rolled = await aq.create_job("payments", "fetch", connection=conn)
            conn.execute("ROLLBACK")
            assert await aq.get_job(rolled.id) is None
        finally:
            conn.close()
        await aq.close()

    asyncio.run(main())
