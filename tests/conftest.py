"""Fixtures shared by every test: backends on real databases, a fake clock, waiting helpers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from queuetopia_lite import Backend, Queuetopia
from queuetopia_lite.sqlite import SQLiteBackend
from queuetopia_lite.testing import FakeClock

from . import pgserver

BACKENDS = ["sqlite-apsw", "sqlite-sqlite3", "postgres"]
SQLITE_DRIVERS = ["apsw", "sqlite3"]


def make_sqlite_backend(tmp_path: Path, driver: str = "apsw") -> Backend:
    """A SQLite backend on a fresh file (durability normal: tests need no fsync)."""
    return SQLiteBackend(tmp_path / "jobs.db", durability="normal", driver=driver)


def make_postgres_backend(request: pytest.FixtureRequest) -> Backend:
    """A Postgres backend on a fresh schema of the test server (skips without one)."""
    from queuetopia_lite.postgres import PostgresBackend

    return PostgresBackend(pgserver.schema_url(pgserver.fresh_schema(request)))


BACKEND_FACTORIES: dict[str, Callable[[Path, pytest.FixtureRequest], Backend]] = {
    "sqlite-apsw": lambda tmp_path, request: make_sqlite_backend(tmp_path, "apsw"),
    "sqlite-sqlite3": lambda tmp_path, request: make_sqlite_backend(tmp_path, "sqlite3"),
    "postgres": lambda tmp_path, request: make_postgres_backend(request),
}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend in turn, on a fresh real database."""
    made = BACKEND_FACTORIES[request.param](tmp_path, request)
    yield made
    made.close()


@pytest.fixture(params=SQLITE_DRIVERS)
def sqlite_driver(request: pytest.FixtureRequest) -> str:
    """Each SQLite library in turn: apsw (the default) and Python's sqlite3."""
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A path for a fresh SQLite database file."""
    return os.fspath(tmp_path / "jobs.db")


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock starting at a fixed instant."""
    return FakeClock()


def wait_until(condition: Callable[[], object], timeout: float = 20.0,
               message: str = "condition") -> object:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.005)


MakeQ = Callable[..., Queuetopia]


@pytest.fixture
def make_q(backend: Backend) -> Iterator[MakeQ]:
    """Queuetopias on the test's backend (poll every 60 s unless told); all stopped at the end."""
    made: list[Queuetopia] = []

    def make(performer: Any, **options: Any) -> Queuetopia:
        options.setdefault("poll_interval", 60.0)
        q = Queuetopia(backend, performer, **options)
        made.append(q)
        return q

    yield make
    for q in made:
        q.stop(timeout=10)
