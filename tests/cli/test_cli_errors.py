"""Bad input: a non-zero exit, one line on stderr, no traceback, nothing written."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from cli_helpers import Run, file_state, one_line_error

from queuetopia_lite import Queuetopia

PERFORMER = "cli_performer:performer"


@pytest.mark.parametrize(("argv", "message"), [
    (["enqueue", "q", "a", "{bad"], "PARAMS_JSON: not valid JSON"),
    (["enqueue", "q", "a", "[1, 2]"], "params: expected a JSON object (a dict), got list"),
    (["enqueue", "q", "a", '"text"'], "params: expected a JSON object (a dict), got str"),
    (["enqueue", "q", "a", "NaN"], "params: expected a JSON object"),
    (["enqueue", "", "a"], "queue: must not be empty"),
    (["enqueue", "   ", "a"], "queue: must not be empty"),
    (["enqueue", "q", ""], "action: must not be empty"),
    (["enqueue", "q", "a", "--max-attempts", "-1"], "argument --max-attempts: must not be"),
    (["enqueue", "q", "a", "--max-attempts", "x"], "argument --max-attempts: expected an integer"),
    (["enqueue", "q", "a", "--timeout", "0"], "argument --timeout: must be positive"),
    (["enqueue", "q", "a", "--in", "-5"], "argument --in: bad duration '-5'"),
    (["enqueue", "q", "a", "--in", "soon"], "argument --in: bad duration 'soon'"),
    (["enqueue", "q", "a", "--max-backoff", "1e999"], "argument --max-backoff: bad duration"),
    (["enqueue", "q", "a", "--at", "2031-01-01T00:00:00"], "has no timezone"),
    (["enqueue", "q", "a", "--at", "tomorrow"], "bad instant 'tomorrow'"),
    (["enqueue", "q", "a", "--at", "9999-12-31T23:59:59-23:59"], "bad instant"),
    (["enqueue", "q", "a", "--in", "999999999999"], "--in: must be at most"),
    (["enqueue", "q", "a", '{"a": "\\u0000"}'], "params: contains a NUL character"),
    (["enqueue", "q", "a", "--at", "2031-01-01T00:00:00Z", "--in", "5"], "not allowed with"),
    (["enqueue", "q"], "the following arguments are required: ACTION"),
    (["prune", "--older-than", "3x"], "bad duration '3x'"),
    (["prune", "--older-than", ""], "bad duration ''"),
    (["prune"], "the following arguments are required: --older-than"),
    (["jobs", "--state", "sleeping"], "argument --state: invalid choice: 'sleeping'"),
    (["jobs", "--limit", "-3"], "argument --limit: must not be negative"),
    (["job", "one"], "argument ID: invalid int value: 'one'"),
    (["retry"], "the following arguments are required: ID"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
    (["worker"], "the following arguments are required: --performer"),
    (["worker", "--performer", PERFORMER, "--max-workers", "0"], "must be at least 1"),
    (["worker", "--performer", PERFORMER, "--log-level", "LOUD"], "invalid choice: 'LOUD'"),
    (["queues", "--jsn"], "unrecognized arguments: --jsn"),
])
def test_usage_errors_exit_2_and_write_nothing(cli: Run, db: str, argv: list[str],
                                               message: str) -> None:
    result = cli("--db", db, *argv)
    assert result.code == 2
    assert message in one_line_error(result)
    assert not os.path.exists(db)


@pytest.mark.parametrize("argv", [["jobs"], ["jobs", "--json"], ["job", "1"], ["queues"],
                                  ["stats", "--json"], ["retry", "1"], ["cancel", "1"],
                                  ["prune", "--older-than", "1d"]])
def test_commands_on_a_missing_file_refuse_and_create_nothing(cli: Run, db: str,
                                                              argv: list[str]) -> None:
    result = cli("--db", db, *argv)
    assert result.code == 1
    assert one_line_error(result) == (f"queuetopia-lite: {db}: no such database file "
                                      "(`migrate` or `enqueue` creates one)")
    assert not os.path.exists(db)


def test_no_database_given(cli: Run) -> None:
    result = cli("jobs")
    assert result.code == 2
    assert "no database: give --db PATH_OR_URL or set $QUEUETOPIA_DB" in one_line_error(result)


@pytest.mark.parametrize("argv", [["jobs"], ["queues", "--json"], ["stats"], ["job", "1"],
                                  ["enqueue", "q", "a"], ["migrate"], ["cancel", "1"],
                                  ["worker", "--performer", PERFORMER, "--drain"]])
def test_a_file_that_is_not_a_database(cli: Run, db: str, argv: list[str]) -> None:
    Path(db).write_bytes(b"these are my holiday notes, not a database\n" * 100)
    before = file_state(db)
    result = cli("--db", db, *argv)
    assert result.code == 1
    assert one_line_error(result) == f"queuetopia-lite: {db}: not a database file"
    assert file_state(db) == before


def test_a_database_of_another_application(cli: Run, db: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO invoices VALUES (7)")
    conn.close()
    before = file_state(db)
    result = cli("--db", db, "jobs")  # reading never writes: it says what to run
    assert result.code == 1
    assert one_line_error(result) == (f"queuetopia-lite: {db}: no queuetopia_lite tables in "
                                      "this database (`queuetopia-lite migrate` adds them)")
    assert file_state(db) == before
    # Writing commands add our tables beside the application's.
    assert cli("--db", db, "enqueue", "q", "a").code == 0
    conn = sqlite3.connect(db)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    rows = conn.execute("SELECT * FROM invoices").fetchall()
    conn.close()
    assert tables >= {"invoices", "qt_jobs", "qt_queues", "qt_schema"} and rows == [(7,)]


def test_a_corrupt_database(cli: Run, db: str) -> None:
    q = Queuetopia(db)
    q.create_jobs([("q", "a", {"pad": "x" * 2000}) for _ in range(50)])
    q.close()
    data = bytearray(Path(db).read_bytes())
    assert len(data) > 8 * 4096  # checkpointed into the main file by close()
    data[4096:8 * 4096] = b"\xff" * (7 * 4096)  # pages 2 to 8: the tables' b-trees
    Path(db).write_bytes(bytes(data))
    result = cli("--db", db, "jobs")
    assert result.code == 1
    assert one_line_error(result).startswith(f"queuetopia-lite: {db}: ")
    assert "corrupt" in result.err


def test_a_folder_is_not_a_database(cli: Run, tmp_path: Path) -> None:
    for argv in (["jobs"], ["enqueue", "q", "a"]):
        result = cli("--db", str(tmp_path), *argv)
        assert result.code == 1
        assert one_line_error(result).startswith(f"queuetopia-lite: {tmp_path}: ")


def test_a_missing_folder(cli: Run, tmp_path: Path) -> None:
    db = str(tmp_path / "nowhere" / "jobs.db")
    result = cli("--db", db, "enqueue", "q", "a")
    assert result.code == 1
    assert "cannot open the database file" in one_line_error(result)
    assert not (tmp_path / "nowhere").exists()


def test_a_read_only_database_loses_nothing(cli: Run, db: str) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root writes read-only files")
    assert cli("--db", db, "enqueue", "q", "a").code == 0
    os.chmod(db, 0o444)
    result = cli("--db", db, "enqueue", "q", "b")
    assert result.code == 1
    assert "read-only" in one_line_error(result)
    os.chmod(db, 0o644)
    assert [job.action for job in Queuetopia(db).list_jobs()] == ["a"]


def test_retry_and_cancel_leave_the_database_unchanged_when_refused(cli: Run, db: str) -> None:
    assert cli("--db", db, "enqueue", "q", "ok").code == 0
    assert cli("--db", db, "worker", "--performer", PERFORMER, "--drain").code == 0
    before = [job.to_dict() for job in Queuetopia(db).list_jobs()]
    assert cli("--db", db, "cancel", "1").code == 1
    assert cli("--db", db, "retry", "1").code == 1
    assert [job.to_dict() for job in Queuetopia(db).list_jobs()] == before


@pytest.mark.parametrize(("spec", "message"), [
    ("no_such_module_here:performer", "cannot import 'no_such_module_here': No module named"),
    ("cli_performer:nothing", "'cli_performer' has no attribute 'nothing'"),
    ("cli_performer:performer.nothing", "has no attribute 'performer.nothing'"),
    ("cli_performer:not_a_performer", "not a performer"),
    ("cli_performer", "expected MODULE:ATTRIBUTE"),
    (":performer", "expected MODULE:ATTRIBUTE"),
    ("cli_broken_performer:performer",
     "importing 'cli_broken_performer' raised RuntimeError: this module is broken on purpose"),
])
def test_a_performer_that_cannot_be_loaded(cli: Run, db: str, spec: str, message: str) -> None:
    result = cli("--db", db, "worker", "--performer", spec)
    assert result.code == 1
    line = one_line_error(result)
    assert line.startswith(f"queuetopia-lite: --performer {spec!r}: ")
    assert message in line
    assert not os.path.exists(db)
