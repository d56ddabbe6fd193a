"""Enqueue in the application's own SQLite transaction (SPEC 10), on both SQLite drivers.

Real files; the application's connections are real apsw / sqlite3 connections.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import apsw
import pytest

from queuetopia_lite import InvalidJobError, JobState, Queuetopia
from queuetopia_lite.sqlite import SQLiteBackend
from queuetopia_lite.sqlite.connection import writer_lock

from .conftest import wait_until
from .recorder import Recorder

ORDERS = "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL)"


def app_connection(path: str, driver: str) -> Any:
    """The application's own connection, in autocommit mode (it writes BEGIN itself)."""
    if driver == "apsw":
        conn = apsw.Connection(path)
        conn.set_busy_timeout(5000)
        return conn
    return sqlite3.connect(path, isolation_level=None, timeout=5.0)


@pytest.fixture
def q(db_path: str, sqlite_driver: str) -> Iterator[Queuetopia]:
    made = Queuetopia(db_path, Recorder(), driver=sqlite_driver, durability="normal",
                      poll_interval=3600)
    yield made
    made.close()


@pytest.fixture
def app(q: Queuetopia, db_path: str, sqlite_driver: str) -> Iterator[Any]:
    conn = app_connection(db_path, sqlite_driver)
    conn.execute(ORDERS)
    yield conn
    conn.close()


def orders(conn: Any) -> list[Any]:
    return [tuple(row) for row in conn.execute("SELECT id, customer FROM orders").fetchall()]


def test_job_is_stored_when_the_application_commits(q: Queuetopia, app: Any) -> None:
    app.execute("BEGIN IMMEDIATE")
    app.execute("INSERT INTO orders (id, customer) VALUES (1, 42)")
    job = q.create_job("payments_customer_42", "charge", {"order_id": 1}, connection=app)
    assert q.get_job(job.id) is None  # our own connection does not see it before the commit
    app.execute("COMMIT")
    stored = q.get_job(job.id)
    assert stored is not None and stored.params == {"order_id": 1}
    assert stored.state == JobState.AVAILABLE
    assert q.drain() == 1


def test_rollback_leaves_nothing_and_blocks_nothing(q: Queuetopia, app: Any) -> None:
    app.execute("BEGIN IMMEDIATE")
    app.execute("INSERT INTO orders (id, customer) VALUES (1, 42)")
    q.create_jobs([("c42", "charge", {"n": 0}), ("c42", "charge", {"n": 1})], connection=app)
    app.execute("ROLLBACK")
    assert q.list_jobs() == [] and q.queues() == [] and orders(app) == []
    later = q.create_job("c42", "ok")
    assert q.drain() == 1
    assert [j.id for j in q.list_jobs()] == [later.id]


def test_create_jobs_commit_together_with_the_application(q: Queuetopia, app: Any) -> None:
    app.execute("BEGIN IMMEDIATE")
    app.execute("INSERT INTO orders (id, customer) VALUES (7, 1)")
    created = q.create_jobs([("a", "ok", {"n": 0}), ("b", "ok", {"n": 1})], connection=app)
    app.execute("COMMIT")
    assert sorted(j.id for j in q.list_jobs()) == [j.id for j in created]
    assert orders(app) == [(7, 1)]


def test_q_transaction_commits_at_the_end(q: Queuetopia, app: Any) -> None:
    with q.transaction() as conn:
        assert type(conn).__module__.startswith(("apsw", "sqlite3"))
        conn.execute("INSERT INTO orders (id, customer) VALUES (?, ?)", (7, 42))
        job = q.create_job("payments_customer_42", "charge", {"order": 7}, connection=conn)
    assert orders(app) == [(7, 42)]
    assert q.get_job(job.id) is not None


def test_q_transaction_rolls_back_and_reraises(q: Queuetopia, app: Any) -> None:
    with pytest.raises(RuntimeError, match="payment provider down"):
        with q.transaction() as conn:
            conn.execute("INSERT INTO orders (id, customer) VALUES (?, ?)", (7, 42))
            q.create_job("payments_customer_42", "charge", {"order": 7}, connection=conn)
            raise RuntimeError("payment provider down")
    assert orders(app) == [] and q.list_jobs() == []
    with q.transaction() as conn:  # the connection is usable again
        q.create_job("payments_customer_42", "charge", {"order": 8}, connection=conn)
    assert len(q.list_jobs()) == 1


def test_plain_create_job_inside_q_transaction_is_refused(q: Queuetopia) -> None:
    with q.transaction() as conn:
        with pytest.raises(InvalidJobError, match="pass connection=conn") as info:
            q.create_job("a", "ok")
        assert info.value.field == "connection"
        q.create_job("a", "ok", connection=conn)
    assert len(q.list_jobs()) == 1


def test_job_starts_after_the_commit_through_the_watcher(q: Queuetopia, app: Any) -> None:
    with q:
        wait_until(lambda: q.queues() == [], message="the scheduler's first look")
        app.execute("BEGIN IMMEDIATE")
        job = q.create_job("a", "ok", connection=app)
        app.execute("COMMIT")
        # No notify() from create_job, no poll for an hour: the commit wakes it.
        wait_until(lambda: (q.get_job(job.id) or job).state == JobState.DONE,
                   message="job run after the commit")


# -- refusals: InvalidJobError("connection"), nothing written ------------------------


def refused(q: Queuetopia, connection: object, match: str) -> None:
    with pytest.raises(InvalidJobError, match=match) as info:
        q.create_job("a", "ok", connection=connection)
    assert info.value.field == "connection"
    with pytest.raises(InvalidJobError):
        q.create_jobs([("a", "ok")], connection=connection)
    assert q.list_jobs() == []


def test_connection_on_another_file_is_refused(q: Queuetopia, tmp_path: Path,
                                               sqlite_driver: str) -> None:
    other = app_connection(os.fspath(tmp_path / "other.db"), sqlite_driver)
    other.execute("BEGIN IMMEDIATE")
    refused(q, other, "not on")
    other.execute("ROLLBACK")


def test_connection_outside_a_transaction_is_refused(q: Queuetopia, app: Any) -> None:
    refused(q, app, "not inside a transaction")


def test_closed_connection_is_refused(q: Queuetopia, db_path: str, sqlite_driver: str) -> None:
    conn = app_connection(db_path, sqlite_driver)
    conn.close()
    refused(q, conn, "cannot be used")


@pytest.mark.parametrize("thing", [object(), "app.db", None.__class__])
def test_unsupported_kind_is_refused(q: Queuetopia, thing: object) -> None:
    refused(q, thing, "expected an apsw.Connection or a sqlite3.Connection")


def test_connection_of_the_other_library_is_refused_naming_the_driver(
        q: Queuetopia, tmp_path: Path, sqlite_driver: str) -> None:
    other_driver = "sqlite3" if sqlite_driver == "apsw" else "apsw"
    conn = app_connection(os.fspath(tmp_path / "other.db"), other_driver)
    refused(q, conn, f"driver={sqlite_driver!r}.*driver='{other_driver}'")


def test_sqlite3_connection_of_another_thread_is_refused(tmp_path: Path) -> None:
    path = os.fspath(tmp_path / "jobs.db")
    q = Queuetopia(path, driver="sqlite3", durability="normal")
    made: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: made.append(sqlite3.connect(path)))
    thread.start()
    thread.join()
    refused(q, made[0], "thread")


# -- never two SQLite libraries on one file ------------------------------------------


def test_new_users_scenario_with_the_sqlite3_driver_stores_the_job(tmp_path: Path) -> None:
    path = os.fspath(tmp_path / "app.db")
    q = Queuetopia(path, driver="sqlite3")
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER)")
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO orders(customer_id) VALUES (42)")
    job = q.create_job("payments_customer_42", "charge", {"order_id": 1}, connection=c)
    c.execute("COMMIT")
    assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert [j.id for j in q.list_jobs()] == [job.id]
    assert c.execute("SELECT customer_id FROM orders").fetchall() == [(42,)]


def test_new_users_scenario_with_apsw_is_refused_never_lost(tmp_path: Path) -> None:
    # The code as written: an apsw Queuetopia, then the app's sqlite3 connection.
    path = os.fspath(tmp_path / "app.db")
    q = Queuetopia(path)
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER)")
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO orders(customer_id) VALUES (42)")
    with pytest.raises(InvalidJobError, match="driver='sqlite3'") as info:
        q.create_job("payments_customer_42", "charge", {"order_id": 1})
    assert info.value.field == "driver"
    with pytest.raises(InvalidJobError, match="driver='sqlite3'") as info:
        q.create_job("payments_customer_42", "charge", {"order_id": 1}, connection=c)
    assert info.value.field == "connection"
    c.execute("COMMIT")
    c.close()
    q.close()
    assert Queuetopia(path).list_jobs() == []  # refused, not reported stored


def test_an_enqueue_after_sqlite3_opened_the_file_later_is_refused(tmp_path: Path) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("this platform does not show a process's open files (/proc)")
    path = os.fspath(tmp_path / "app.db")
    q = Queuetopia(path, durability="normal")
    q.create_job("a", "ok")  # a clean look: enqueues within 10 ms share it
    c = sqlite3.connect(path)
    c.execute("SELECT count(*) FROM qt_jobs").fetchall()  # its first read maps the WAL index
    time.sleep(0.02)
    with pytest.raises(InvalidJobError, match="driver='sqlite3'"):
        q.create_job("a", "ok")
    c.close()
    q.close()
    assert len(Queuetopia(path).list_jobs()) == 1


def test_opening_a_file_this_process_holds_through_sqlite3_is_refused(tmp_path: Path) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("this platform does not show a process's open files (/proc)")
    path = os.fspath(tmp_path / "app.db")
    c = sqlite3.connect(path)
    c.execute(ORDERS)
    with pytest.raises(InvalidJobError, match="driver='sqlite3'") as info:
        Queuetopia(path)
    assert info.value.field == "driver"
    Queuetopia(path, driver="sqlite3").create_job("a", "ok")  # the advice works
    c.close()


def test_opening_a_file_this_process_holds_through_apsw_is_refused(tmp_path: Path) -> None:
    path = os.fspath(tmp_path / "app.db")
    c = apsw.Connection(path)
    c.execute(ORDERS)
    with pytest.raises(InvalidJobError, match="driver='apsw'") as info:
        Queuetopia(path, driver="sqlite3")
    assert info.value.field == "driver"
    c.close()
    Queuetopia(path, driver="sqlite3").create_job("a", "ok")  # closed: no longer held


@pytest.mark.parametrize("database", [":memory:", ""])
def test_in_memory_database_is_refused_pointing_to_a_file(database: str,
                                                          sqlite_driver: str) -> None:
    with pytest.raises(InvalidJobError, match="use a file") as info:
        Queuetopia(database, driver=sqlite_driver)
    assert info.value.field == "database"


def test_unknown_driver_is_refused(db_path: str) -> None:
    with pytest.raises(InvalidJobError, match="'apsw' or 'sqlite3'") as info:
        Queuetopia(db_path, driver="pysqlite")
    assert info.value.field == "driver"


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_sqlite3_default_mode_joins_the_transaction_it_would_open(db_path: str,
                                                                  end: str) -> None:
    # Python's sqlite3 in its default mode opens a transaction before a write and
    # the application ends it with commit() / rollback(): our insert is such a write.
    q = Queuetopia(db_path, driver="sqlite3", durability="normal")
    c = sqlite3.connect(db_path)
    c.execute(ORDERS)
    c.commit()
    assert not c.in_transaction
    job = q.create_job("a", "ok", connection=c)
    c.execute("INSERT INTO orders (id, customer) VALUES (1, 2)")
    getattr(c, end)()
    assert [j.id for j in q.list_jobs()] == ([job.id] if end == "commit" else [])
    assert len(orders(c)) == (1 if end == "commit" else 0)


def test_sqlite3_driver_refuses_a_sqlite_without_returning(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Python may link an old system SQLite; our statements need RETURNING (3.35).
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    with pytest.raises(InvalidJobError, match=r"3\.35.*3\.34\.1.*driver='apsw'") as info:
        Queuetopia(db_path, driver="sqlite3")
    assert info.value.field == "driver"
    assert not os.path.exists(db_path)


def test_create_job_without_connection_inside_a_transaction_is_refused_at_once(
        tmp_path: Path, sqlite_driver: str) -> None:
    """Even while another creator leads a batch of creators: the call is refused in its own
    thread, before it joins that batch (whose writer would wait for this transaction's
    write lock, then fail with a misleading "locked by another process")."""
    path = os.fspath(tmp_path / "jobs.db")
    q = Queuetopia(SQLiteBackend(path, durability="normal", driver=sqlite_driver,
                                 busy_timeout=0.2))
    lock = writer_lock(path)
    lock.acquire()  # the other creator leads a batch and waits here
    out: dict[str, object] = {}

    def other() -> None:
        try:
            out["other"] = q.create_job("o", "noop").id
        except BaseException as exc:
            out["other"] = exc

    leader = threading.Thread(target=other)
    leader.start()
    wait_until(lambda: q._enqueuer._combiner._busy, message="another creator leading")

    def inside() -> None:
        with q.transaction():
            try:
                out["inside"] = q.create_job("t", "noop").id
            except BaseException as exc:
                out["inside"] = exc

    worker = threading.Thread(target=inside)
    worker.start()
    worker.join(30)
    lock.release()
    leader.join(30)
    assert isinstance(out["inside"], InvalidJobError), out
    assert "connection=conn" in str(out["inside"])
    assert isinstance(out["other"], int), out  # it waited for the transaction, then wrote
    assert [j.queue for j in q.list_jobs()] == ["o"]
    q.close()
