"""`queues` and `jobs` with 2,000 queues, at 80 and 200 columns; `job ID` with its error history."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cli_helpers import Run
from cli_performer import performer

from queuetopia_lite import Job, Queuetopia
from queuetopia_lite.cli.render import job_detail

QUEUES = 2000
RUNNING, SCHEDULED = 3, 10
IDLE = QUEUES - 1 - RUNNING - SCHEDULED
SUMMARY = f"{QUEUES:,} queues: 1 blocked, {RUNNING} running, {SCHEDULED} scheduled, {IDLE:,} idle"


def name(i: int) -> str:
    """37 characters: whole at 200 columns, too long for 80 (they differ only at the end)."""
    return f"tenant_photo_thumbnails_uploads_{i:05d}"


BLOCKED = name(1234)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with 2,000 queues in every state (real runs, real claims); read only."""
    db = str(tmp_path_factory.mktemp("many") / "jobs.db")
    q = Queuetopia(db, performer, durability="normal")
    idle = [i for i in range(QUEUES) if i != 1234][:IDLE]
    q.create_jobs([(name(i), "ok") for i in idle]
                  + [(BLOCKED, "fail", {"message": "card declined for order 7"})])
    assert q.drain() == IDLE + 1
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    rest = [i for i in range(QUEUES) if i != 1234][IDLE:]
    q.create_jobs([(name(i), "ok") for i in rest[:SCHEDULED]], scheduled_at=later)
    # Claimed below by a made-up worker: a Queuetopia without the performer creates them.
    Queuetopia(db, durability="normal").create_jobs(
        [(name(i), "resize_thumbnail") for i in rest[SCHEDULED:]])
    claimed = q.backend.step(q.scope, time.time(), claim=RUNNING, owner="box:4242", lease=3600)
    assert len(claimed.claimed) == RUNNING
    q.close()
    return db


def queues(cli: Run, db: str, columns: int, *args: str) -> list[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", str(columns))
        result = cli("--db", db, "queues", *args)
    assert result.code == 0, result.err
    lines: list[str] = result.out.splitlines()
    return lines


def rows(lines: list[str]) -> list[str]:
    """The table's rows (a row starts with a queue name), without the summary and header."""
    return [line for line in lines[2:] if line.startswith("tenant")]


def test_at_80_columns_names_are_cut_in_the_middle_and_the_detail_wraps(
        cli: Run, many: str) -> None:
    lines = queues(cli, many, 80)
    assert lines[0] == SUMMARY
    assert lines[1].split() == ["QUEUE", "STATE", "PENDING", "HEAD", "DETAIL"]
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    shown = rows(lines)
    assert len(shown) == 50
    # Blocked first, then running, then the rest; each name keeps its distinct end.
    assert [row.split()[1] for row in shown[:1 + RUNNING + SCHEDULED]] == (
        ["BLOCKED"] + ["running"] * RUNNING + ["scheduled"] * SCHEDULED)
    assert shown[0].startswith("tenant_pho...ads_01234  BLOCKED ")
    assert all("..." in row.split()[0] for row in shown)
    assert len({row.split()[0] for row in shown}) == 50
    # The blocked queue's detail is whole, over as many lines as it needs.
    start = lines.index(shown[0])
    column = lines[1].index("DETAIL")
    detail = [lines[start][column:]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * column):
            break
        detail.append(line.strip())
    text = " ".join(detail)
    assert re.search(r"by job \d+, attempt 1/20, next retry in (59 min|1 h)$", text), text
    assert lines[start + len(detail)] == "    error: RuntimeError: card declined for order 7"
    more = lines.index(f"... and {QUEUES - 50:,} more (--limit 0 shows all)")
    assert lines[more + 1].startswith(f"1 blocked: {BLOCKED} (")  # wrapped, not cut
    assert lines[-1].endswith("act on it)")


def test_at_200_columns_names_and_details_are_whole(cli: Run, many: str) -> None:
    lines = queues(cli, many, 200)
    assert lines[0] == SUMMARY
    assert all(len(line) <= 200 for line in lines)
    shown = rows(lines)
    assert len(shown) == 50
    assert shown[0].split()[:2] == [BLOCKED, "BLOCKED"]
    assert re.search(r"next retry in (59 min|1 h)$", shown[0])
    running = [row for row in shown if row.split()[1] == "running"]
    assert len(running) == RUNNING
    assert all(re.search(r"resize_thumbnail +by box:4242, lease until in (59 min|1 h)$", row)
               for row in running)
    assert all("..." not in row for row in shown)
    # Every line is a table row, the blocked queue's error, or the closing notes: no wrapping.
    assert len(lines) == 2 + 50 + 1 + 2


def test_blocked_shows_only_the_blocked_queues(cli: Run, many: str) -> None:
    lines = queues(cli, many, 200, "--blocked")
    assert lines[0] == SUMMARY  # the counts still cover every queue
    assert [row.split()[0] for row in rows(lines)] == [BLOCKED]
    assert not any("more" in line for line in lines)


def test_limit_shows_that_many_and_says_how_many_more(cli: Run, many: str) -> None:
    lines = queues(cli, many, 200, "--limit", "5")
    assert len(rows(lines)) == 5
    assert f"... and {QUEUES - 5:,} more (--limit 0 shows all)" in lines
    everything = queues(cli, many, 200, "--limit", "0")
    assert len(rows(everything)) == QUEUES
    assert not any(line.startswith("... and") for line in everything)


def test_json_is_unchanged_every_queue_by_name(cli: Run, many: str) -> None:
    statuses = json.loads("\n".join(queues(cli, many, 80, "--json")))
    assert [s["queue"] for s in statuses] == sorted(name(i) for i in range(QUEUES))
    assert {s["state"] for s in statuses} == {"blocked", "running", "scheduled", "idle"}
    blocked = json.loads("\n".join(queues(cli, many, 80, "--json", "--blocked")))
    assert [s["queue"] for s in blocked] == [BLOCKED]
    assert len(json.loads("\n".join(queues(cli, many, 80, "--json", "--limit", "3")))) == 3


def test_jobs_shows_queue_names_whole_when_they_fit(cli: Run, many: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "200")
        wide = cli("--db", many, "jobs", "--limit", "20").out.splitlines()
        patch.setenv("COLUMNS", "80")
        narrow = cli("--db", many, "jobs", "--limit", "20").out.splitlines()
    assert all(line.split()[1].startswith("tenant_photo_thumbnails_uploads_")
               for line in wide[1:21])
    assert all(len(line) <= 80 for line in narrow)
    assert all("..." in line.split()[1] for line in narrow[1:21])
    assert {line.split()[1][-5:] for line in narrow[1:21]} == {
        line.split()[1][-5:] for line in wide[1:21]}  # the distinct ends stay visible


# -- job ID: the error history ------------------------------------------------------


NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
HISTORY = [
    {"attempt": 1, "at": NOW.timestamp() - 600, "by": "vm:10726",
     "error": "RuntimeError: card declined\nTraceback (most recent call last): ..."},
    {"attempt": 2, "at": (NOW - timedelta(minutes=5)).isoformat(), "by": "vm:10727",
     "error": "TimeoutError: gateway did not answer within 30 s"},
]


def a_job(**fields: Any) -> dict[str, Any]:
    return dict(id=7, scope="default", queue="payments", action="charge", params={"order": 7},
                scheduled_at=NOW, timeout=60.0, max_backoff=86400.0, max_attempts=20,
                attempts=2, attempted_at=NOW, attempted_by="vm:10727", next_attempt_at=NOW,
                done_at=None, error=HISTORY[-1]["error"], state="retrying", created_at=NOW,
                **fields)


def expected_history() -> list[str]:
    return ["errors:          2 failed attempts",
            "  attempt 1  2030-01-01T11:50:00+00:00 (10 min ago)  by vm:10726",
            "    RuntimeError: card declined",
            "  attempt 2  2030-01-01T11:55:00+00:00 (5 min ago)  by vm:10727",
            "    TimeoutError: gateway did not answer within 30 s"]


def test_job_detail_shows_the_error_history_when_the_job_has_one() -> None:
    # A Job with an errors field (whatever Job itself has), to pin down the renderer.
    @dataclasses.dataclass(frozen=True)
    class JobWithErrors(Job):
        errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    from queuetopia_lite import JobState

    job = JobWithErrors(**{**a_job(errors=HISTORY), "state": JobState.RETRYING})
    lines = job_detail(job, NOW, 100).splitlines()
    start = lines.index("errors:          2 failed attempts")
    assert lines[start:start + 5] == expected_history()
    assert lines[start + 5] == "error:"
    plain = job_detail(dataclasses.replace(job, errors=[]), NOW, 100)
    assert "errors:" not in plain


def test_job_command_shows_the_errors_of_a_real_job(cli: Run, db: str) -> None:
    if "errors" not in {f.name for f in dataclasses.fields(Job)}:
        pytest.skip("Job has no `errors` field on this branch (another change adds it); "
                    "the renderer is covered with a Job subclass above")
    q = Queuetopia(db, performer, durability="normal")
    job = q.create_job("payments", "fail", {"message": "card declined", "backoff": 0},
                       max_attempts=2)
    q.drain()  # both attempts fail (no backoff)
    q.close()
    out = cli("--db", db, "job", str(job.id)).out
    assert "errors:" in out and "RuntimeError: card declined" in out
