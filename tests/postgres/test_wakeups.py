"""Postgres wake-ups: NOTIFY in the enqueue transaction, a listener that reconnects."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from queuetopia_lite import Job, Queuetopia
from queuetopia_lite.postgres import PostgresBackend

from ..conformance.helpers import SCOPE, new
from ..conftest import wait_until


def _listening(backend: Any) -> int:
    backend.change_counter()  # starts the listener
    wait_until(backend._listener.listening.is_set, message="LISTEN")
    return int(backend.change_counter())


def test_a_commit_on_another_node_moves_the_change_counter(backends: Callable[..., Any]) -> None:
    writer, watcher = backends(), backends()
    before = _listening(watcher)
    writer.insert_jobs(SCOPE, [new()], time.time())
    wait_until(lambda: watcher.change_counter() != before, message="the notification")


def test_the_listener_reconnects_after_its_connection_is_killed(
        backends: Callable[..., Any], raw: Any, url: str, schema: str) -> None:
    writer = backends()
    watcher = PostgresBackend(f"{url}&application_name={schema}")
    _listening(watcher)
    raw.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s", (f"{schema}-listener",))
    wait_until(lambda: not watcher._listener.listening.is_set(), message="the drop")
    before = _listening(watcher)
    writer.insert_jobs(SCOPE, [new()], time.time())
    wait_until(lambda: watcher.change_counter() != before, message="the notification")
    watcher.close()


def test_a_job_created_by_another_process_starts_without_waiting_for_a_poll(url: str) -> None:
    """poll_interval is an hour: only the NOTIFY can start the job in time."""
    started = threading.Event()

    def perform(job: Job) -> None:
        started.set()

    worker = Queuetopia(url, perform, poll_interval=3600)
    producer = Queuetopia(url)
    try:
        worker.start()
        wait_until(lambda: worker.backend._listener is not None
                   and worker.backend._listener.listening.is_set(), message="LISTEN")
        worker.drain()  # nothing yet: the first periodic poll is behind us
        producer.create_job("q", "act")
        assert started.wait(20.0), "the job did not start: the NOTIFY was not received"
    finally:
        worker.close()
        producer.close()
