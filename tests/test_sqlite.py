"""SQLite specifics: file format, schema versioning, durability, indexes, errors, fork."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import apsw
import pytest

from queuetopia_lite import DatabaseError, Queuetopia
from queuetopia_lite.sqlite import SQLiteBackend
from queuetopia_lite.sqlite.backend import _MIGRATIONS, SCHEMA_VERSION
from queuetopia_lite.sqlite.connection import APPLICATION_ID
from queuetopia_lite.sqlite.transactions import Q

from .conformance.helpers import SCOPE, T0, claim, new


def raw(path: str) -> apsw.Connection:
    return apsw.Connection(path)


def test_new_file_is_wal_and_versioned_in_our_table(db_path: str) -> None:
    SQLiteBackend(db_path)
    conn = raw(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchall()[0][0] == "wal"
    assert conn.execute("SELECT version FROM qt_schema").fetchall() == [(SCHEMA_VERSION,)]
    # The header is the application's: never written.
    assert conn.execute("PRAGMA user_version").fetchall()[0][0] == 0
    assert conn.execute("PRAGMA application_id").fetchall()[0][0] == 0


def test_migrate_is_idempotent_and_keeps_jobs(db_path: str) -> None:
    backend = SQLiteBackend(db_path)
    backend.insert_jobs(SCOPE, [new()], T0)
    assert backend.migrate() == SCHEMA_VERSION
    assert len(SQLiteBackend(db_path).list_jobs(SCOPE, T0)) == 1


@pytest.mark.parametrize(("durability", "level"), [("full", 2), ("normal", 1)])
def test_durability_sets_synchronous(db_path: str, durability: str, level: int) -> None:
    backend = SQLiteBackend(db_path, durability=durability)
    conn = backend._conns.get()
    assert conn.execute("PRAGMA synchronous").fetchall()[0][0] == level


def test_application_database_gets_our_tables_beside_its_own(db_path: str) -> None:
    conn = raw(db_path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                 "INSERT INTO customers VALUES (42, 'Ada');"
                 "PRAGMA user_version = 7; PRAGMA application_id = 1234")
    backend = SQLiteBackend(db_path)
    backend.insert_jobs(SCOPE, [new()], T0)
    assert conn.execute("SELECT * FROM customers").fetchall() == [(42, "Ada")]
    assert conn.execute("PRAGMA user_version").fetchall()[0][0] == 7
    assert conn.execute("PRAGMA application_id").fetchall()[0][0] == 1234
    assert len(SQLiteBackend(db_path).list_jobs(SCOPE, T0)) == 1


def test_tables_with_our_names_but_not_ours_are_refused(db_path: str) -> None:
    raw(db_path).execute("CREATE TABLE qt_jobs (id INTEGER PRIMARY KEY, what TEXT)")
    with pytest.raises(DatabaseError, match="not queuetopia_lite's") as info:
        SQLiteBackend(db_path)
    assert db_path in str(info.value) and not info.value.retryable


def test_version_1_file_is_migrated_with_its_jobs(db_path: str) -> None:
    # A file as version 1 made it: step_1, then its mark and version in the header.
    conn = raw(db_path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(_MIGRATIONS["step_1"])
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1")
    conn.execute("INSERT INTO qt_jobs (scope, queue, action, params, scheduled_at, timeout, "
                 "max_backoff, max_attempts, status, created_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # version 1's columns
                 (SCOPE, "q", "act", "{}", T0, 60.0, 10.0, 3, "pending", T0))
    conn.execute(Q["offer_head"], {"scope": SCOPE, "queue": "q", "id": 1, "scheduled_at": T0,
                                   "now": T0})
    backend = SQLiteBackend(db_path)
    assert conn.execute("SELECT version FROM qt_schema").fetchall() == [(SCHEMA_VERSION,)]
    # An older queuetopia_lite reads the header: it must now refuse the file.
    assert conn.execute("PRAGMA user_version").fetchall()[0][0] == 0
    assert conn.execute("PRAGMA application_id").fetchall()[0][0] == 0
    (claimed,) = claim(backend, T0)
    assert claimed.job.id == 1


def test_newer_schema_is_refused(db_path: str) -> None:
    SQLiteBackend(db_path)
    raw(db_path).execute(f"UPDATE qt_schema SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(DatabaseError, match="newer"):
        SQLiteBackend(db_path)


def test_outdated_schema_without_migrate_is_refused(db_path: str) -> None:
    with pytest.raises(DatabaseError, match="migrate"):
        SQLiteBackend(db_path, migrate=False)


def test_file_that_is_not_a_database(db_path: str, sqlite_driver: str) -> None:
    Path(db_path).write_bytes(b"this is a text file, not SQLite " * 100)
    with pytest.raises(DatabaseError, match="not a database") as info:
        Queuetopia(db_path, driver=sqlite_driver)
    assert db_path in str(info.value) and not info.value.retryable


def test_missing_folder_names_the_file(tmp_path: Path, sqlite_driver: str) -> None:
    path = os.fspath(tmp_path / "no" / "such" / "jobs.db")
    with pytest.raises(DatabaseError) as info:
        Queuetopia(path, driver=sqlite_driver)
    assert path in str(info.value) and not info.value.retryable


def test_read_only_open_flag_is_a_clear_error(db_path: str, sqlite_driver: str) -> None:
    # Root ignores file modes, so open the file read-only through SQLite's own flag.
    q = Queuetopia(db_path, driver=sqlite_driver)
    q.create_job("a", "x")
    reader = SQLiteBackend(db_path, driver=sqlite_driver)
    if sqlite_driver == "apsw":
        reader._conns._open = lambda: apsw.Connection(  # type: ignore[method-assign]
            db_path, flags=apsw.SQLITE_OPEN_READONLY)
    else:
        reader._conns._open = lambda: sqlite3.connect(  # type: ignore[method-assign]
            f"file:{db_path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    reader._conns.close_all()
    with pytest.raises(DatabaseError, match="read-only") as info:
        reader.insert_jobs(SCOPE, [new()], T0)
    assert db_path in str(info.value) and not info.value.retryable
    assert len(q.list_jobs()) == 1


def holder_of(path: str, driver: str) -> Any:
    """A plain connection of the test's SQLite library (never the other one on one file)."""
    if driver == "apsw":
        return raw(path)
    return sqlite3.connect(path, isolation_level=None)


def test_locked_database_gives_a_clear_error_and_stores_nothing(db_path: str,
                                                                sqlite_driver: str) -> None:
    backend = SQLiteBackend(db_path, busy_timeout=0.05, driver=sqlite_driver)
    holder = holder_of(db_path, sqlite_driver)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseError, match="locked") as info:
            backend.insert_jobs(SCOPE, [new()], T0)
        assert db_path in str(info.value) and info.value.retryable
    finally:
        holder.execute("ROLLBACK")
    assert backend.list_jobs(SCOPE, T0) == []


def test_write_waits_for_a_short_lock_instead_of_failing(db_path: str,
                                                         sqlite_driver: str) -> None:
    backend = SQLiteBackend(db_path, busy_timeout=5.0, driver=sqlite_driver)
    code = textwrap.dedent(f"""
        import apsw, sys, time
        c = apsw.Connection({db_path!r})
        c.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        time.sleep(0.5)
        c.execute("COMMIT")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    backend.insert_jobs(SCOPE, [new()], T0)  # waits, then succeeds
    assert proc.wait(30) == 0
    assert len(backend.list_jobs(SCOPE, T0)) == 1


def plan(backend: SQLiteBackend, name: str, args: dict[str, object]) -> str:
    conn = backend._conns.get()
    rows = conn.execute("EXPLAIN QUERY PLAN " + Q[name], args).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


def test_finding_runnable_queues_reads_an_index_not_the_jobs(db_path: str) -> None:
    backend = SQLiteBackend(db_path)
    backend.insert_jobs(SCOPE, [new(f"q{i}") for i in range(50)], T0)
    conn = backend._conns.get()
    conn.execute("ANALYZE")
    ready = plan(backend, "ready_queues", {"scope": SCOPE, "now": T0, "limit": 4})
    assert "qt_queues_ready" in ready and "qt_jobs" not in ready
    head = plan(backend, "next_head", {"scope": SCOPE, "queue": "q1"})
    assert "qt_jobs_head" in head
    host = {"host_key": "boot.1", "host_at": 5.0}
    leases = plan(backend, "expired_leases", {"scope": SCOPE, "now": T0, **host})
    assert "qt_queues_lease" in leases
    lease_end = plan(backend, "next_lease_end", {"scope": SCOPE, "now": T0, **host})
    assert "qt_queues_lease" in lease_end
    runnable = plan(backend, "has_runnable", {"scope": SCOPE, "now": T0, **host})
    assert "qt_queues_lease" in runnable and "qt_queues_ready" in runnable
    due = plan(backend, "next_ready", {"scope": SCOPE})
    assert "qt_queues_ready" in due


def test_connection_is_not_reused_after_fork(db_path: str, sqlite_driver: str) -> None:
    backend = SQLiteBackend(db_path, driver=sqlite_driver)
    backend.insert_jobs(SCOPE, [new()], T0)
    parent_conn = backend._conns.get()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must open its own connection and work
        try:
            child_conn = backend._conns.get()
            ok = child_conn is not parent_conn
            backend.insert_jobs(SCOPE, [new()], T0)
            os.write(write_end, b"ok" if ok else b"shared")
        except BaseException as exc:  # report anything to the parent
            os.write(write_end, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read_end, 300)
    assert answer == b"ok" and status == 0
    assert len(backend.list_jobs(SCOPE, T0)) == 2
    assert backend._conns.get() is parent_conn


def test_claim_works_from_many_threads_each_with_its_own_connection(
        db_path: str, sqlite_driver: str) -> None:
    import threading

    backend = SQLiteBackend(db_path, durability="normal", driver=sqlite_driver)
    backend.insert_jobs(SCOPE, [new(f"q{i}") for i in range(40)], T0)
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            claims = claim(backend, T0, n=1)
            with lock:
                got.extend(c.job.id for c in claims)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 41))


def test_backup_while_workers_run_is_a_consistent_copy(tmp_path: Path,
                                                       sqlite_driver: str) -> None:
    from .conftest import wait_until

    done: list[int] = []
    q = Queuetopia(os.fspath(tmp_path / "live.db"), lambda job: done.append(job.id),
                   durability="normal", max_workers=4, driver=sqlite_driver)
    q.create_jobs([(f"q{i % 10}", "x") for i in range(500)])
    with q:
        wait_until(lambda: len(done) > 50, message="some jobs done")
        q.backup(tmp_path / "copy.db")
        wait_until(lambda: len(done) == 500, message="all done")
    copy = Queuetopia(os.fspath(tmp_path / "copy.db"))
    conn = raw(os.fspath(tmp_path / "copy.db"))
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    counts = copy.count_jobs()
    assert sum(counts.values()) == 500
    for status in copy.queues():  # its queue rows agree with its jobs
        if status.head is not None:
            assert status.head.state.value in ("available", "running")
