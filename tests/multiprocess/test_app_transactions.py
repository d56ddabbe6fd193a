"""Application transactions that enqueue while schedulers run in this and another process."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import apsw

from queuetopia_lite import JobState, Queuetopia

from ..conftest import wait_until
from ..faults.procs import Workers
from ..faults.worker import Checked


def app_connection(path: str, driver: str) -> Any:
    if driver == "apsw":
        conn = apsw.Connection(path)
        conn.set_busy_timeout(5000)
        return conn
    return sqlite3.connect(path, isolation_level=None, timeout=5.0)


def test_app_transactions_holding_the_write_lock_lose_nothing_and_keep_order(
        workers: Workers) -> None:
    """The application holds the write lock for a while in each transaction (and rolls
    back every fifth): the schedulers of this process and of a worker process wait for
    it, never deadlock, and run every committed job once, in order, one at a time."""
    q = Queuetopia(workers.db, Checked(os.fspath(workers.logdir), 0.05), driver=workers.driver,
                   durability="normal", max_workers=4, poll_interval=3600)
    app = app_connection(workers.db, workers.driver)
    app.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL)")
    app.execute("CREATE TABLE order_lines (order_id INTEGER, line INTEGER)")
    queues = [f"customer_{i}" for i in range(4)]
    expected: dict[str, list[int]] = {name: [] for name in queues}
    worker = workers.start("--max-workers", "4")
    q.start()
    try:
        for n in range(80):
            queue = queues[n % len(queues)]
            app.execute("BEGIN IMMEDIATE")
            app.execute("INSERT INTO orders (id, customer) VALUES (?, ?)", (n, n % 4))
            q.create_job(queue, "sleep", {"n": n, "seconds": 0.001}, connection=app)
            # The application's own work, with the write lock held meanwhile.
            for line in range(200):
                app.execute("INSERT INTO order_lines VALUES (?, ?)", (n, line))
            if n % 5 == 4:
                app.execute("ROLLBACK")
            else:
                app.execute("COMMIT")
                expected[queue].append(n)
        total = sum(len(ns) for ns in expected.values())
        wait_until(lambda: q.count_jobs()[JobState.DONE] == total, timeout=120,
                   message=f"{total} committed jobs done")
    finally:
        q.stop(timeout=30)
        workers.stop_all()
    assert q.count_jobs()[JobState.DONE] == len(q.list_jobs(limit=1000))  # nothing else
    assert workers.read("overlaps") == ""
    pids = set()
    for name in queues:
        lines = workers.log(name)
        assert [line.n for line in lines if line.kind == "start"] == expected[name]
        assert [line.kind for line in lines] == ["start", "end"] * len(expected[name])
        pids.update(line.pid for line in lines)
    assert pids <= {os.getpid(), worker.pid}
    assert app.execute("SELECT count(*) FROM orders").fetchall()[0][0] == total
    app.close()
    q.close()
