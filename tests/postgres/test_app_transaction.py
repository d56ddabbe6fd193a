"""Enqueue in the application's own psycopg transaction (SPEC 10), on the real server."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any, Iterator

import psycopg
import pytest

from queuetopia_lite import DatabaseError, InvalidJobError, JobState, Queuetopia

from .. import pgserver
from ..conftest import wait_until
from ..recorder import Recorder


@pytest.fixture
def q(url: str) -> Iterator[Queuetopia]:
    made = Queuetopia(url, Recorder(), poll_interval=3600)
    yield made
    made.close()


@pytest.fixture
def app(q: Queuetopia, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """The application's connection: its orders table in a schema of its own, and a
    search_path that does not name ours."""
    with psycopg.connect(pgserver.URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}_app"')
        conn.execute(f'SET search_path = "{schema}_app"')
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, customer integer)")
        yield conn
        conn.execute(f'DROP SCHEMA "{schema}_app" CASCADE')


def order_ids(conn: psycopg.Connection[Any]) -> list[int]:
    return [row[0] for row in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]


def test_job_is_stored_when_the_application_commits(q: Queuetopia, app: Any) -> None:
    with app.transaction():
        app.execute("INSERT INTO orders VALUES (1, 42)")
        job = q.create_job("payments_customer_42", "charge", {"order_id": 1}, connection=app)
        assert q.get_job(job.id) is None  # other connections do not see it yet
    stored = q.get_job(job.id)
    assert stored is not None and stored.params == {"order_id": 1}
    assert order_ids(app) == [1]


def test_rollback_leaves_nothing_and_blocks_nothing(q: Queuetopia, app: Any) -> None:
    with pytest.raises(RuntimeError):
        with app.transaction():
            app.execute("INSERT INTO orders VALUES (1, 42)")
            q.create_jobs([("c42", "ok", {"n": 0}), ("c42", "ok", {"n": 1})], connection=app)
            raise RuntimeError("the order failed")
    assert q.list_jobs() == [] and order_ids(app) == []
    later = q.create_job("c42", "ok")
    assert q.drain() == 1
    assert [j.id for j in q.list_jobs()] == [later.id]


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_default_psycopg_connection_joins_the_transaction_it_opens(
        q: Queuetopia, schema: str, app: Any, end: str) -> None:
    # autocommit=False (psycopg's default): the first statement opens the transaction
    # that the application ends with commit() or rollback().
    with psycopg.connect(pgserver.URL) as conn:
        conn.execute(f'SET search_path = "{schema}_app"')
        conn.commit()
        job = q.create_job("a", "ok", connection=conn)
        conn.execute("INSERT INTO orders VALUES (3, 4)")
        getattr(conn, end)()
    assert [j.id for j in q.list_jobs()] == ([job.id] if end == "commit" else [])
    assert order_ids(app) == ([3] if end == "commit" else [])


def test_q_transaction_commits_or_rolls_back(q: Queuetopia, app: Any, schema: str) -> None:
    orders = f'"{schema}_app".orders'
    with q.transaction() as conn:
        assert isinstance(conn, psycopg.Connection)
        conn.execute(f"INSERT INTO {orders} VALUES (7, 42)")
        job = q.create_job("payments_customer_42", "charge", {"order": 7}, connection=conn)
    assert order_ids(app) == [7] and q.get_job(job.id) is not None
    with pytest.raises(ZeroDivisionError):
        with q.transaction() as conn:
            conn.execute(f"INSERT INTO {orders} VALUES (8, 42)")
            q.create_job("payments_customer_42", "charge", {"order": 8}, connection=conn)
            1 / 0  # noqa: B018
    assert order_ids(app) == [7] and len(q.list_jobs()) == 1


def test_q_transaction_with_a_failed_statement_caught_inside_is_not_committed(
        q: Queuetopia, app: Any, schema: str) -> None:
    with pytest.raises(DatabaseError, match="rolled back"):
        with q.transaction() as conn:
            q.create_job("a", "ok", connection=conn)
            try:
                conn.execute("SELECT 1 / 0")
            except psycopg.errors.DivisionByZero:
                pass
    assert q.list_jobs() == []


def test_job_starts_after_the_commit(q: Queuetopia, app: Any) -> None:
    with q:
        wait_until(lambda: q.queues() == [], message="the scheduler's first look")
        with app.transaction():
            job = q.create_job("a", "ok", connection=app)
        wait_until(lambda: (q.get_job(job.id) or job).state == JobState.DONE,
                   message="job run after the commit (NOTIFY)")


# -- refusals -------------------------------------------------------------------


def refused(q: Queuetopia, connection: object, match: str) -> None:
    with pytest.raises(InvalidJobError, match=match) as info:
        q.create_job("a", "ok", connection=connection)
    assert info.value.field == "connection"
    assert q.list_jobs() == []


def test_connection_outside_a_transaction_is_refused(q: Queuetopia, app: Any) -> None:
    refused(q, app, "not inside a transaction")


def test_failed_transaction_is_refused(q: Queuetopia, app: Any) -> None:
    app.execute("BEGIN")
    with pytest.raises(psycopg.errors.DivisionByZero):
        app.execute("SELECT 1 / 0")
    refused(q, app, "already failed")
    app.execute("ROLLBACK")


def test_closed_connection_is_refused(q: Queuetopia) -> None:
    conn = psycopg.connect(pgserver.URL)
    conn.close()
    refused(q, conn, "closed")


def test_connection_on_another_database_is_refused(q: Queuetopia) -> None:
    other = pgserver.URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(other) as conn:
        refused(q, conn, "another database")


def test_async_connection_and_other_kinds_are_refused(q: Queuetopia, tmp_path: Any) -> None:
    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(pgserver.URL)

    async_conn = asyncio.run(connect())
    try:
        refused(q, async_conn, "async")
    finally:
        asyncio.run(async_conn.close())
    import sqlite3

    refused(q, sqlite3.connect(tmp_path / "x.db"), "expected a psycopg.Connection")
    refused(q, object(), "expected a psycopg.Connection")


# -- concurrency --------------------------------------------------------------------


def test_concurrent_app_transactions_on_one_queue_run_once_in_order(url: str) -> None:
    """Eight application threads enqueue into one queue in transactions that commit or
    roll back at random moments, while the scheduler runs: every committed job runs
    once, one at a time, never behind an uncommitted one, and (README) when a job is
    picked, no job before it in the queue's order committed before that moment is
    still waiting."""
    rec = Recorder()
    q = Queuetopia(url, rec, poll_interval=3600, max_workers=4)
    committed: dict[int, float] = {}  # job id -> the server's clock after its COMMIT
    rolled_back: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def application(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with psycopg.connect(pgserver.URL, autocommit=True) as conn:
                for n in range(12):
                    conn.execute("BEGIN")
                    time.sleep(rnd.random() * 0.003)  # the application's own work
                    job = q.create_job("orders", "sleep", {"n": seed * 100 + n,
                                                           "seconds": 0.002}, connection=conn)
                    time.sleep(rnd.random() * 0.003)
                    if rnd.random() < 0.25:
                        conn.execute("ROLLBACK")
                        with lock:
                            rolled_back.append(job.id)
                        continue
                    conn.execute("COMMIT")
                    row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8"
                                       ).fetchone()
                    assert row is not None
                    with lock:
                        committed[job.id] = row[0]
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    with q:
        threads = [threading.Thread(target=application, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        wait_until(lambda: q.count_jobs()[JobState.DONE] == len(committed), timeout=60,
                   message="every committed job done")
    jobs = {job.id: job for job in q.list_jobs(limit=1000)}
    q.close()
    assert sorted(jobs) == sorted(committed)  # nothing rolled back is stored
    assert all(job.state == JobState.DONE and job.attempts == 1 for job in jobs.values())
    assert rec.count() == len(committed) and rec.overlaps == []
    # Claimed at attempted_at (the step's "now", taken before its snapshot): a job
    # committed before that instant was visible to that claim.
    # A queue's order is (scheduled_at, id); scheduled_at defaults to the creation time.
    picked = {job_id: job.attempted_at.timestamp() for job_id, job in jobs.items()
              if job.attempted_at is not None}
    key = {job_id: (job.scheduled_at.timestamp(), job_id) for job_id, job in jobs.items()}
    for low in committed:
        for high in committed:
            if key[low] < key[high] and committed[low] < picked[high]:
                assert picked[low] <= picked[high], f"job {high} was picked before {low}"
