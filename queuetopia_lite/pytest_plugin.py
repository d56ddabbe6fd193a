"""The pytest plugin, loaded through the ``pytest11`` entry point when the package is installed.

Fixtures:
    queuetopia_db: a path for a fresh SQLite database in the test's temporary folder.
    queuetopia_clock: a ``FakeClock`` at a fixed instant (pass it as ``clock=``).
    perform_job: ``queuetopia_lite.testing.perform_job``, for running one action.

Example:
    def test_charge(queuetopia_db, queuetopia_clock, perform_job):
        q = Queuetopia(queuetopia_db, performer, clock=queuetopia_clock)
        ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from . import testing


@pytest.fixture
def queuetopia_db(tmp_path: Path) -> str:
    """A path for a fresh SQLite database file in this test's temporary folder."""
    return os.fspath(tmp_path / "queuetopia.db")


@pytest.fixture
def queuetopia_clock() -> testing.FakeClock:
    """A fake wall clock at a fixed instant; it moves only with advance() or set()."""
    return testing.FakeClock()


@pytest.fixture
def perform_job() -> Callable[..., Any]:
    """The function that runs one action as the scheduler would (see testing.perform_job)."""
    return testing.perform_job
