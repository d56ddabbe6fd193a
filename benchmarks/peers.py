"""Peers: huey's SQLite storage, persist-queue's SQLiteAckQueue, litequeue.

Each: enqueue n jobs one by one, then process the backlog (no-op work).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from typing import Any

from _common import Result, Stopwatch, rate

WAIT_LIMIT = 600.0  # seconds


def _rates(n: int, enq: float, proc: float) -> Result:
    return {"enqueue_per_s": rate(n, enq), "process_per_s": rate(n, proc),
            "e2e_per_s": rate(n, enq + proc), "n": n}


def _huey_noop(n: int, storage: Any) -> tuple[Any, Any, threading.Event]:
    """A SqliteHuey app on huey.db, its no-op task, and an event set by the n-th run."""
    from huey import Huey

    app = Huey("bench", storage_class=storage, filename="huey.db")
    done = threading.Event()
    count = itertools.count(1)

    @app.task()  # type: ignore[misc]
    def noop(i: int) -> None:
        if next(count) == n:
            done.set()

    return app, noop, done


def huey(n: int, workers: int, durability: str = "default") -> Result:
    """huey SqliteHuey and its thread consumer (default settings).

    durability "default" keeps huey's own (SQLite's default: FULL in WAL);
    "normal" forces synchronous=NORMAL on its connections.
    """
    from huey.storage import SqliteStorage

    class NormalStorage(SqliteStorage):  # type: ignore[misc]
        def _create_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_connection()
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn

    storage = NormalStorage if durability == "normal" else SqliteStorage
    app, noop, done = _huey_noop(n, storage)
    with Stopwatch() as enq:
        for i in range(n):
            noop(i)
    consumer = app.create_consumer(workers=workers, worker_type="thread", periodic=False)
    with Stopwatch() as proc:
        consumer.start()
        if not done.wait(WAIT_LIMIT):
            raise RuntimeError("huey did not finish")
    consumer.stop(graceful=True)
    return _rates(n, enq.seconds, proc.seconds)


def persist_queue(n: int) -> Result:
    """persist-queue SQLiteAckQueue: put, then get + ack (its defaults: FULL)."""
    from persistqueue import SQLiteAckQueue

    q: Any = SQLiteAckQueue("pq", multithreading=True)
    with Stopwatch() as enq:
        for i in range(n):
            q.put({"i": i})
    with Stopwatch() as proc:
        for _ in range(n):
            q.ack(q.get(block=False))
    return _rates(n, enq.seconds, proc.seconds)


def litequeue(n: int) -> Result:
    """litequeue LiteQueue: put, then pop + done (its defaults: NORMAL)."""
    from litequeue import LiteQueue

    q: Any = LiteQueue("lq.db")
    with Stopwatch() as enq:
        for i in range(n):
            q.put(str(i))
    with Stopwatch() as proc:
        for _ in range(n):
            q.done(q.pop().message_id)
    return _rates(n, enq.seconds, proc.seconds)


def producers(n: int, threads: int, enqueue: Any) -> float:
    """Seconds for ``threads`` threads to call enqueue(i) for i in range(n) between them."""
    start = threading.Barrier(threads + 1)

    def produce(k: int) -> None:
        start.wait()
        for i in range(k, n, threads):
            enqueue(i)

    pool = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    with Stopwatch() as sw:
        start.wait()
        for thread in pool:
            thread.join()
    return sw.seconds


def huey_concurrent(n: int, producer_threads: int = 8, workers: int = 4) -> Result:
    """huey SqliteHuey at its default durability: producers and consumer at once."""
    from huey.storage import SqliteStorage

    app, noop, done = _huey_noop(n, SqliteStorage)
    consumer = app.create_consumer(workers=workers, worker_type="thread", periodic=False)
    consumer.start()
    with Stopwatch() as total:
        enq = producers(n, producer_threads, noop)
        if not done.wait(WAIT_LIMIT):
            raise RuntimeError("huey did not finish")
    consumer.stop(graceful=True)
    return {"enqueue_per_s": rate(n, enq), "e2e_per_s": rate(n, total.seconds), "n": n}
