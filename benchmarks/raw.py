"""The raw SQLite limit: the fewest statements a durable queue runs per job, no library.

Per job: an insert, a claim (mark the oldest pending job running), a completion.
"single": one transaction per statement; "batch": 1,000 per transaction;
"queues": one transaction per statement over named queues, where a claim takes
the oldest pending job whose queue has nothing running.
"""

from __future__ import annotations

import json
from typing import Callable

import apsw
from _common import Result, Stopwatch, rate

BATCH = 1000
SCHEMA = """
CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, params TEXT NOT NULL,
                   status INTEGER NOT NULL);  -- 0 pending, 1 running, 2 done
CREATE INDEX jobs_pending ON jobs (id) WHERE status = 0;
CREATE INDEX jobs_running ON jobs (queue) WHERE status = 1;
"""
INSERT = "INSERT INTO jobs (queue, params, status) VALUES (?, ?, 0)"
CLAIM = ("UPDATE jobs SET status = 1 WHERE id = (SELECT min(id) FROM jobs WHERE status = 0) "
         "RETURNING id")
CLAIM_QUEUES = ("UPDATE jobs SET status = 1 WHERE id = (SELECT min(id) FROM jobs WHERE status = 0"
                " AND queue NOT IN (SELECT queue FROM jobs WHERE status = 1)) RETURNING id")
COMPLETE = "UPDATE jobs SET status = 2 WHERE id = ? AND status = 1"


def open_db(durability: str) -> apsw.Connection:
    conn = apsw.Connection("raw.db")
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute(f"PRAGMA synchronous = {durability.upper()}")
    conn.execute(SCHEMA)
    return conn


def in_transactions(conn: apsw.Connection, n: int, per_tx: int,
                    body: Callable[[int], None]) -> None:
    """Call body(i) for i in range(n), ``per_tx`` calls per IMMEDIATE transaction."""
    for start in range(0, n, per_tx):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(start, min(n, start + per_tx)):
            body(i)
        conn.execute("COMMIT")


def run(n: int, durability: str, mode: str, queues: int = 50) -> Result:
    """Enqueue n jobs, then claim and complete them all; rates in jobs/s."""
    conn = open_db(durability)
    per_tx = BATCH if mode == "batch" else 1
    nq = queues if mode == "queues" else 1
    params = json.dumps({"n": 1})

    def insert(i: int) -> None:
        conn.execute(INSERT, (f"q{i % nq}", params))

    with Stopwatch() as enq:
        in_transactions(conn, n, per_tx, insert)
    claim_sql = CLAIM_QUEUES if mode == "queues" else CLAIM
    with Stopwatch() as proc:
        if per_tx == 1:
            for _ in range(n):
                conn.execute("BEGIN IMMEDIATE")
                (job_id,) = conn.execute(claim_sql).fetchall()[0]
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(COMPLETE, (job_id,))
                conn.execute("COMMIT")
        else:
            def step(_: int) -> None:
                (job_id,) = conn.execute(claim_sql).fetchall()[0]
                conn.execute(COMPLETE, (job_id,))
            in_transactions(conn, n, per_tx, step)
    left = conn.execute("SELECT count(*) FROM jobs WHERE status <> 2").fetchall()[0][0]
    assert left == 0, left
    return {"enqueue_per_s": rate(n, enq.seconds), "process_per_s": rate(n, proc.seconds),
            "e2e_per_s": rate(n, enq.seconds + proc.seconds)}
