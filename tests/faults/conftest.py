"""Fixtures of the fault suite."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from .procs import Workers


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Worker processes on tmp_path/jobs.db logging to tmp_path/logs; stopped afterwards."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    made = Workers(os.fspath(tmp_path / "jobs.db"), logdir)
    yield made
    made.stop_all()
