"""Postgres: dropped connections neither lose nor duplicate; errors name the URL."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from queuetopia_lite import DatabaseError, Job, JobState, Queuetopia
from queuetopia_lite.postgres import PostgresBackend

from ..conformance.helpers import SCOPE, claim, new, succeed
from ..conftest import wait_until

KILL = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"


@pytest.fixture
def named_url(url: str, schema: str) -> str:
    """The schema's URL with an application_name of its own: we kill only our connections."""
    return f"{url}&application_name={schema}"


def kill(raw: Any, schema: str) -> None:
    """Terminate this test's pooled connections, as a server restart would."""
    raw.execute(KILL, (schema,))


def test_killed_connections_are_replaced_and_the_write_goes_through(
        named_url: str, schema: str, raw: Any) -> None:
    backend = PostgresBackend(named_url)
    now = time.time()
    backend.insert_jobs(SCOPE, [new()], now)
    kill(raw, schema)
    (c,) = claim(backend, now)
    kill(raw, schema)
    assert succeed(backend, c, now).rejected == []
    kill(raw, schema)
    assert backend.count_jobs(SCOPE, now)[JobState.DONE] == 1
    backend.close()


def test_jobs_run_exactly_once_while_connections_keep_dropping(named_url: str, schema: str,
                                                                raw: Any) -> None:
    ran: Counter[int] = Counter()
    lock = threading.Lock()

    def perform(job: Job) -> None:
        with lock:
            ran[job.id] += 1

    q = Queuetopia(named_url, perform, max_workers=4, poll_interval=0.5)
    try:
        jobs = q.create_jobs([(f"q{i % 10}", "act") for i in range(300)])
        with q:
            for _ in range(10):
                kill(raw, schema)
                done = len(ran)
                wait_until(lambda d=done: len(ran) > d or len(ran) == len(jobs),
                           message="progress after the drop")
            wait_until(lambda: len(ran) == len(jobs), message="every job")
            wait_until(lambda: q.count_jobs()[JobState.DONE] == len(jobs), message="done")
        assert set(ran.values()) == {1}
    finally:
        q.close()


def test_a_commit_whose_answer_was_lost_is_looked_up_by_its_xid(url: str) -> None:
    backend = PostgresBackend(url)
    try:
        db = backend._db

        def xid_of(cur: Any) -> str:
            cur.execute(b"SELECT pg_current_xact_id()::text")
            return str(cur.fetchone()[0])

        committed = db.write(xid_of)
        assert db._committed(committed, DatabaseError("x", "y")) is True  # type: ignore[arg-type]
        with pytest.raises(DatabaseError):
            db.write(lambda cur: (xid_seen.append(xid_of(cur)), cur.execute(b"SELECT 1/0")))
        assert db._committed(xid_seen[0], DatabaseError("x", "y")) is False  # type: ignore[arg-type]
    finally:
        backend.close()


xid_seen: list[str] = []


def test_errors_name_the_url_without_its_password() -> None:
    with pytest.raises(DatabaseError) as info:
        PostgresBackend("postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(info.value)
    assert info.value.path == "postgresql://postgres@127.0.0.1:1/test"
