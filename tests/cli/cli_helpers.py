"""Helpers of the CLI tests."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable

import pytest


@dataclasses.dataclass
class Result:
    """What one main(argv) call did."""

    code: int
    out: str
    err: str



Run = Callable[..., Result]  # the cli fixture: main(argv) with captured output


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it is true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def one_line_error(result: Result) -> str:
    """Check the shape of a failure: a single stderr line, no traceback, no stdout."""
    assert result.code != 0
    assert result.out == ""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("queuetopia-lite")
    return lines[0]


def file_state(path: str) -> bytes | None:
    """The bytes of a file, or None when it does not exist."""
    return Path(path).read_bytes() if os.path.exists(path) else None
