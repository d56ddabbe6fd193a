"""Fixtures of the dashboard tests: a filled database and a real server on a free port."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from queuetopia_lite import Job, Queuetopia
from queuetopia_lite.dashboard import DashboardServer, serve

from .helpers import fill


@pytest.fixture
def q(tmp_path: Path) -> Iterator[Queuetopia]:
    """A Queuetopia on a fresh SQLite file (no scheduler runs: states stay put)."""
    queue = Queuetopia(tmp_path / "jobs.db", durability="normal")
    yield queue
    queue.close()


@pytest.fixture
def jobs(q: Queuetopia) -> dict[str, Job]:
    """Queues in every state (see helpers.fill)."""
    return fill(q)


@pytest.fixture
def server(q: Queuetopia, jobs: dict[str, Job]) -> Iterator[DashboardServer]:
    """The dashboard of ``q`` on 127.0.0.1, a free port."""
    with serve(q, port=0) as running:
        yield running
        running.shutdown()


@pytest.fixture
def base(server: DashboardServer) -> str:
    """The server's URL without its trailing slash."""
    return server.url.rstrip("/")
