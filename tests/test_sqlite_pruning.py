"""SQLite pruning: ids never reused (the AUTOINCREMENT rebuild), short write transactions."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import apsw
import pytest

from queuetopia_lite import JobState
from queuetopia_lite.sqlite import SQLiteBackend
from queuetopia_lite.sqlite import backend as sqlite_backend
from queuetopia_lite.sqlite.connection import APPLICATION_ID

from .conformance.helpers import SCOPE, T0, claim, new, succeed

JOB_COLUMNS = ("id, scope, queue, action, params, scheduled_at, timeout, max_backoff, "
               "max_attempts, attempts, attempted_at, attempted_by, next_attempt_at, done_at, "
               "error, status, lock_token, created_at")


def make_version_1_database(path: str) -> None:
    """A file as the first release made it: step_1's tables, rowid ids, user_version 1."""
    conn = apsw.Connection(path)
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    with conn:
        conn.execute(sqlite_backend._MIGRATIONS["step_1"]).fetchall()
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
    conn.close()


def rows(path: str) -> list[tuple[Any, ...]]:
    conn = apsw.Connection(path)
    try:
        return conn.execute(f"SELECT {JOB_COLUMNS} FROM qt_jobs ORDER BY id").fetchall()
    finally:
        conn.close()


def test_migration_rebuilds_qt_jobs_keeping_rows_ids_and_the_sequence(db_path: str) -> None:
    make_version_1_database(db_path)
    conn = apsw.Connection(db_path)
    with conn:
        # Rows as the old code left them: gaps where jobs were pruned, every state,
        # and the table's newest job (which the old prune kept) with the highest id.
        for job_id, status, done_at in [(3, "done", T0), (7, "pending", None),
                                         (8, "failed", T0), (12, "done", T0 + 1)]:
            conn.execute(
                "INSERT INTO qt_jobs (id, scope, queue, action, params, scheduled_at, timeout,"
                " max_backoff, max_attempts, attempts, done_at, error, status, created_at)"
                " VALUES (?, ?, 'q', 'act', '{\"n\": 1}', ?, 60, 86400, 20, 1, ?, 'E: x', ?, ?)",
                (job_id, SCOPE, T0, done_at, status, T0))
    conn.close()
    before = rows(db_path)

    backend = SQLiteBackend(db_path, durability="normal")

    assert rows(db_path) == before
    conn = apsw.Connection(db_path)
    sql = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'qt_jobs'").fetchall()[0][0]
    assert "AUTOINCREMENT" in str(sql)
    indexes = {name for (name,) in conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'qt_jobs'"
        " AND name NOT LIKE 'sqlite_%'")}
    assert indexes == {"qt_jobs_head", "qt_jobs_done", "qt_jobs_unique"}
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'qt_jobs'"
                        ).fetchall() == [(12,)]
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    # Everything done is pruned, the newest job of the table included: 12 is not reused.
    assert backend.prune(SCOPE, T0 + 10) == 2
    (later,) = backend.insert_jobs(SCOPE, [new("q")], T0 + 20)
    assert later.id == 13


def test_ids_are_not_reused_after_the_whole_table_was_pruned(db_path: str) -> None:
    backend = SQLiteBackend(db_path, durability="normal")
    backend.insert_jobs(SCOPE, [new("a"), new("b"), new("c")], T0)
    for c in claim(backend, T0):
        succeed(backend, c, T0)
    assert backend.prune(SCOPE, T0 + 1) == 3
    backend.close()
    reopened = SQLiteBackend(db_path, durability="normal")  # the sequence is on disk
    (later,) = reopened.insert_jobs(SCOPE, [new("a")], T0 + 2)
    assert later.id == 4


def timed_writes(backend: SQLiteBackend, holds: list[float]) -> None:
    """Record how long each write transaction of ``backend`` holds the write lock.

    From the moment BEGIN IMMEDIATE got the lock (the body starts) until COMMIT
    returned; time spent waiting for the lock is not holding it.
    """
    write = backend._conns.write

    def timed(body: Callable[[apsw.Connection], Any]) -> Any:
        begun: list[float] = []

        def marked(conn: apsw.Connection) -> Any:
            begun.append(time.perf_counter())
            return body(conn)

        try:
            return write(marked)
        finally:
            if begun:
                holds.append(time.perf_counter() - begun[-1])

    backend._conns.write = timed  # type: ignore[method-assign]


def fill_done_jobs(path: str, count: int, scope: str = SCOPE) -> None:
    """``count`` done jobs in one statement (building them through steps would take minutes)."""
    conn = apsw.Connection(path)
    with conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO qt_jobs (scope, queue, action, params, scheduled_at, timeout,"
            " max_backoff, max_attempts, attempts, attempted_at, done_at, status, created_at)"
            " SELECT ?, 'q' || (i % 1000), 'act', '{}', ?, 60, 86400, 20, 1, ?, ?, 'done', ?"
            " FROM n", (count, scope, T0, T0, T0, T0))
    conn.close()


def fill_scattered_done_jobs(path: str, count: int) -> None:
    """``count`` done jobs of SCOPE between as many of another scope, finished in no order.

    The worst layout for prune: the oldest jobs are spread over the whole table,
    so every row a batch deletes is on a page of its own.
    """
    conn = apsw.Connection(path)
    with conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO qt_jobs (scope, queue, action, params, scheduled_at, timeout,"
            " max_backoff, max_attempts, attempts, attempted_at, done_at, status, created_at)"
            " SELECT CASE i % 2 WHEN 0 THEN ? ELSE 'other' END, 'q' || (i % 997), 'act',"
            " '{\"order\": ' || i || ', \"to\": \"someone@example.com\"}', ?, 60, 86400, 20,"
            " 1, ?, ? + (i * 7919 % 1000), 'done', ? FROM n", (2 * count, SCOPE, T0, T0, T0, T0))
    conn.close()


def test_prune_works_in_batches_that_adapt_to_the_lock_time(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = SQLiteBackend(db_path, durability="normal")
    fill_done_jobs(db_path, 3 * sqlite_backend.PRUNE_BATCH + 5)
    holds: list[float] = []
    timed_writes(backend, holds)
    assert backend.prune(SCOPE, T0 + 1) == 3 * sqlite_backend.PRUNE_BATCH + 5
    assert len(holds) >= 3  # two batches of jobs at least, one (empty) of queues
    # A batch that held the lock past PRUNE_HOLD halves the next one.
    fill_done_jobs(db_path, 1000)
    monkeypatch.setattr(sqlite_backend, "PRUNE_HOLD", 0.0)
    monkeypatch.setattr(sqlite_backend, "PRUNE_BATCH", 400)
    sizes: list[int] = []
    original = sqlite_backend.run

    def counting(conn: apsw.Connection, name: str, args: dict[str, Any],
                 one: bool = False) -> Any:
        if name == "prune_jobs":
            sizes.append(args["batch"])
        return original(conn, name, args, one)

    monkeypatch.setattr(sqlite_backend, "run", counting)
    assert backend.prune(SCOPE, T0 + 1) == 1000
    assert sizes[:4] == [400, 200, 100, 100]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["in order", "scattered"])
def test_pruning_a_million_done_jobs_holds_the_write_lock_briefly(db_path: str,
                                                                  layout: str) -> None:
    """Measured, not asserted tightly (a loaded machine): prints the longest hold.

    Meanwhile another connection enqueues a job every millisecond or so, as an
    application would: how long each enqueue took is printed too.
    """
    total = 1_000_000
    backend = SQLiteBackend(db_path)  # durability full: every batch's commit syncs
    if layout == "scattered":
        fill_scattered_done_jobs(db_path, total)
    else:
        fill_done_jobs(db_path, total)
    fill_done_jobs(db_path, 1000, scope="other")  # another scope's newer jobs stay
    durations: list[float] = []
    timed_writes(backend, durations)
    enqueues: list[float] = []
    stop = threading.Event()

    def enqueue() -> None:  # an application enqueuing a job every millisecond or so
        other = SQLiteBackend(db_path)
        while not stop.is_set():
            start = time.perf_counter()
            other.insert_jobs("app", [new("mails")], T0)
            enqueues.append(time.perf_counter() - start)
            time.sleep(0.001)
        other.close()

    app = threading.Thread(target=enqueue)
    app.start()
    start = time.perf_counter()
    try:
        deleted = backend.prune(SCOPE, T0 + 1000)
    finally:
        stop.set()
        app.join()
    elapsed = time.perf_counter() - start
    assert deleted == total
    durations.sort()
    enqueues.sort()
    print(f"\n{layout}: pruned {total:,} done jobs in {elapsed:.1f} s: {len(durations)} write "
          f"transactions (batches of {sqlite_backend.PRUNE_BATCH_MIN:,} to "
          f"{sqlite_backend.PRUNE_BATCH_MAX:,} rows); write lock held "
          f"median {durations[len(durations) // 2] * 1000:.1f} ms, "
          f"p99 {durations[int(len(durations) * 0.99)] * 1000:.1f} ms, "
          f"max {durations[-1] * 1000:.1f} ms; {len(enqueues):,} enqueues meanwhile took "
          f"median {enqueues[len(enqueues) // 2] * 1000:.1f} ms, max {enqueues[-1] * 1000:.1f} ms")
    assert backend.count_jobs(SCOPE, T0)[JobState.DONE] == 0
    assert backend.count_jobs("other", T0)[JobState.DONE] == (total if layout == "scattered"
                                                              else 0) + 1000
    assert durations[-1] < 2.0  # generous: the figure printed above is the measurement


@pytest.mark.slow
def test_upgrading_a_million_jobs_database_rewrites_qt_jobs_once(db_path: str) -> None:
    """The step_4 rebuild holds the write lock for the whole copy: printed, not asserted."""
    make_version_1_database(db_path)
    fill_done_jobs(db_path, 1_000_000)
    start = time.perf_counter()
    backend = SQLiteBackend(db_path)
    print(f"\nupgraded a database of 1,000,000 jobs to AUTOINCREMENT in "
          f"{time.perf_counter() - start:.1f} s")
    (later,) = backend.insert_jobs(SCOPE, [new("q")], T0)
    assert later.id == 1_000_001
