"""Schema step 3 (job control) upgrades a database made by the previous version, both backends.

The old database is built by replaying the steps of that version (steps are append-only)
and filled with raw rows as that version wrote them; then today's backend opens it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import apsw
import pytest

from queuetopia_lite import JobState, Queuetopia
from queuetopia_lite import sql as named_sql
from queuetopia_lite.backend import Failure
from queuetopia_lite.sqlite import SQLiteBackend
from queuetopia_lite.sqlite.backend import SCHEMA_VERSION
from queuetopia_lite.sqlite.connection import APPLICATION_ID

from . import pgserver
from .conformance.helpers import OWNER, SCOPE, T0, new

OLD_COLUMNS = ("scope, queue, action, params, scheduled_at, timeout, max_backoff, max_attempts, "
               "status, created_at, error, attempts")
OLD_ROWS = [  # a waiting job, a failed one with its error, a done one
    (SCOPE, "a", "act", "{}", T0, 60.0, 86400.0, 20, "pending", T0, None, 0),
    (SCOPE, "b", "act", "{}", T0, 60.0, 86400.0, 1, "failed", T0, "RuntimeError: old", 1),
    (SCOPE, "c", "act", "{}", T0, 60.0, 86400.0, 20, "done", T0, None, 1),
]


def check_upgraded(backend: Any) -> None:
    """The old rows read with no errors and no key; the new features work on them."""
    jobs = sorted(backend.list_jobs(SCOPE, T0), key=lambda job: job.id)
    assert [(job.queue, job.state, job.errors, job.unique_key) for job in jobs] == [
        ("a", JobState.AVAILABLE, [], None), ("b", JobState.FAILED, [], None),
        ("c", JobState.DONE, [], None)]
    assert jobs[1].error == "RuntimeError: old"
    (c,) = backend.step(SCOPE, T0, claim=5, owner=OWNER).claimed
    assert c.job.id == jobs[0].id
    result = backend.step(SCOPE, T0 + 1, outcomes=[Failure(c, "RuntimeError: new", T0 + 3)])
    assert [e["error"] for e in result.failed[0].errors] == ["RuntimeError: new"]
    (keyed,) = backend.insert_jobs(SCOPE, [new("d", unique_key="k")], T0)
    (same,) = backend.insert_jobs(SCOPE, [new("d", unique_key="k")], T0)
    assert same.id == keyed.id
    assert backend.create_periodic_jobs(SCOPE, [("p", T0, new("e"))], T0) == []


def test_sqlite_version_1_database_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(named_sql.load("queuetopia_lite.sqlite", "migrations.sql")["step_1"])
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.executemany(f"INSERT INTO qt_jobs ({OLD_COLUMNS}) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", OLD_ROWS)
    conn.execute("INSERT INTO qt_queues (scope, queue, head_id, head_scheduled_at, head_due_at, "
                 "ready_at) VALUES (?, 'a', 1, ?, ?, ?)", (SCOPE, T0, T0, T0))
    conn.close()
    backend = SQLiteBackend(path, durability="normal")
    try:
        assert backend.migrate() == SCHEMA_VERSION
        check_upgraded(backend)
    finally:
        backend.close()
    # The file still opens with migrate=False (exactly version 3), and as a Queuetopia.
    Queuetopia(path, migrate=False).close()


def test_postgres_version_2_schema_is_upgraded(request: pytest.FixtureRequest) -> None:
    import psycopg

    from queuetopia_lite.postgres import PostgresBackend

    schema = pgserver.fresh_schema(request)
    steps = named_sql.load("queuetopia_lite.postgres", "migrations.sql")
    quoted = f'"{schema}"'
    with psycopg.connect(pgserver.URL, autocommit=True) as conn:
        for name in ("version_table", "step_1", "step_2"):
            conn.execute(steps[name].format(schema=quoted).encode())
        conn.execute(f"INSERT INTO {quoted}.qt_version (version) VALUES (2)".encode())
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {quoted}.qt_jobs ({OLD_COLUMNS}) VALUES "
                            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)".encode(),
                            [(*row[:3], json.dumps({}), *row[4:]) for row in OLD_ROWS])
        conn.execute(f"INSERT INTO {quoted}.qt_queues (scope, queue, head_id, head_scheduled_at, "
                     f"head_due_at, ready_at) SELECT %s, 'a', min(id), %s, %s, %s "
                     f"FROM {quoted}.qt_jobs".encode(), (SCOPE, T0, T0, T0))
    backend = PostgresBackend(pgserver.schema_url(schema))
    try:
        assert backend.migrate() == SCHEMA_VERSION
        check_upgraded(backend)
    finally:
        backend.close()
    PostgresBackend(pgserver.schema_url(schema), migrate=False).close()
