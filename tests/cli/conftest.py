"""Fixtures of the CLI tests: a database path and a runner of main(argv)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from cli_helpers import Result, Run

from queuetopia_lite import Queuetopia
from queuetopia_lite.cli import main

HERE = Path(__file__).resolve().parent



@pytest.fixture
def db(tmp_path: Path) -> str:
    """A database path in a fresh folder (the file does not exist yet)."""
    return str(tmp_path / "jobs.db")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run main(argv) in-process; return its exit status and captured output."""
    monkeypatch.delenv("QUEUETOPIA_DB", raising=False)
    # Tables follow the terminal's width: tests pin it, whatever terminal runs them.
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.syspath_prepend(str(HERE))  # cli_performer is importable

    def run(*argv: str) -> Result:
        capsys.readouterr()  # drop what came before
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def queue(db: str, cli: Run) -> Iterator[Queuetopia]:
    """An API handle on the test database (created by `migrate`), to check effects."""
    assert cli("--db", db, "migrate").code == 0
    q = Queuetopia(db, migrate=False)
    yield q
    q.close()
