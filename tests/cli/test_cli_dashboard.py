"""The `dashboard` command: its options' bad input, and the real server in a subprocess."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request

import pytest
from cli_helpers import Run, file_state, one_line_error
from test_cli_subprocess import EXIT_TIMEOUT, enqueue, env

from queuetopia_lite import Queuetopia


@pytest.mark.parametrize(("argv", "needle"), [
    (["--port", "70000"], "port"), (["--port", "http"], "port"), (["--refresh", "soon"],
                                                                  "refresh"),
])
def test_bad_options_are_usage_errors(cli: Run, queue: Queuetopia, db: str, argv: list[str],
                                      needle: str) -> None:
    result = cli("--db", db, "dashboard", *argv)
    assert result.code == 2 and needle in one_line_error(result)


def test_a_public_address_needs_a_token(cli: Run, queue: Queuetopia, db: str) -> None:
    result = cli("--db", db, "dashboard", "--host", "0.0.0.0")
    assert result.code == 2 and "needs a token" in one_line_error(result)
    short = cli("--db", db, "dashboard", "--token", "abc")
    assert short.code == 2 and "token" in one_line_error(short)


def test_a_missing_database_is_not_created(cli: Run, db: str) -> None:
    result = cli("--db", db, "dashboard")
    assert result.code == 1 and "no such database" in one_line_error(result)
    assert file_state(db) is None


def test_the_dashboard_serves_until_sigint_then_exits_0(db: str) -> None:
    job_id = enqueue(db, "mails/7", "send", '{"to": "<i>x</i>"}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuetopia_lite", "--db", db, "dashboard", "--port", "0",
         "--read-only"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the server listens
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match is not None, line + proc.stderr.read() if proc.stderr else line
        assert "(read-only)" in line
        with urllib.request.urlopen(f"{match.group(1)}jobs/{job_id}", timeout=30) as reply:
            page = reply.read().decode()
        assert "mails/7" in page and "&lt;i&gt;x&lt;/i&gt;" in page
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=EXIT_TIMEOUT) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
