"""The multi-process tests use the fault suite's worker processes, on each SQLite driver."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from ..faults.procs import Workers


@pytest.fixture
def workers(tmp_path: Path, sqlite_driver: str) -> Iterator[Workers]:
    """Worker processes on tmp_path/jobs.db through ``sqlite_driver``; stopped afterwards."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    made = Workers(os.fspath(tmp_path / "jobs.db"), logdir, sqlite_driver)
    yield made
    made.stop_all()
