"""Every command in-process through main(argv), against real SQLite files."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cli_helpers import Run, one_line_error, wait_for

from queuetopia_lite import JobState, QueueState, Queuetopia
from queuetopia_lite.sqlite.backend import SCHEMA_VERSION

JOB_KEYS = {"id", "scope", "queue", "action", "params", "scheduled_at", "timeout", "max_backoff",
            "max_attempts", "attempts", "attempted_at", "attempted_by", "next_attempt_at",
            "done_at", "error", "state", "created_at", "errors", "unique_key"}
QUEUE_KEYS = {"queue", "state", "pending", "head", "locked_by", "locked_until", "blocked_since",
              "next_run_at", "holder_alive"}
PERFORMER = "cli_performer:performer"


def enqueue(cli: Run, db: str, *args: str) -> int:
    result = cli("--db", db, "enqueue", *args)
    assert result.code == 0, result.err
    return int(result.out)


def block(cli: Run, db: str, queue: str = "payments", message: str = "card declined") -> int:
    """A failing job that blocks ``queue`` for an hour after its first attempt."""
    job_id = enqueue(cli, db, queue, "fail", json.dumps({"message": message}))
    drained = cli("--db", db, "worker", "--performer", PERFORMER, "--drain")
    assert drained.code == 0, drained.err
    return job_id


# -- migrate ------------------------------------------------------------------------


def test_migrate_creates_the_schema_and_prints_its_version(cli: Run, db: str) -> None:
    first = cli("--db", db, "migrate")
    assert (first.code, first.out) == (0, f"schema version {SCHEMA_VERSION} ({db})\n")
    again = cli("--db", db, "migrate")
    assert (again.code, again.out) == (0, first.out)
    assert Queuetopia(db, migrate=False).list_jobs() == []


# -- enqueue ------------------------------------------------------------------------


def test_enqueue_prints_the_id_and_stores_the_job(cli: Run, db: str) -> None:
    first = enqueue(cli, db, "mails", "send", '{"to": "a@b.c"}', "--timeout", "5",
                    "--max-backoff", "10m", "--max-attempts", "3")
    second = enqueue(cli, db, "mails", "send")
    assert second == first + 1
    job = Queuetopia(db).get_job(first)
    assert job is not None
    assert (job.queue, job.action, dict(job.params)) == ("mails", "send", {"to": "a@b.c"})
    assert (job.timeout, job.max_backoff, job.max_attempts) == (5.0, 600.0, 3)
    assert job.state == JobState.AVAILABLE


def test_enqueue_at_an_instant_and_in_a_delay(cli: Run, db: str) -> None:
    at = enqueue(cli, db, "q", "a", "--at", "2031-02-03T04:05:06Z")
    before = datetime.now(timezone.utc)
    later = enqueue(cli, db, "q", "a", "--in", "2h", "--timeout", "none")
    after = datetime.now(timezone.utc)
    q = Queuetopia(db)
    job_at, job_later = q.get_job(at), q.get_job(later)
    assert job_at is not None and job_later is not None
    assert job_at.scheduled_at == datetime(2031, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    assert before + timedelta(hours=2) <= job_later.scheduled_at <= after + timedelta(hours=2)
    assert job_later.state == JobState.SCHEDULED
    assert job_later.timeout is None


def test_enqueue_with_an_offset_stores_utc(cli: Run, db: str) -> None:
    job_id = enqueue(cli, db, "q", "a", "--at", "2031-02-03T06:05:06+02:00")
    job = Queuetopia(db).get_job(job_id)
    assert job is not None
    assert job.scheduled_at == datetime(2031, 2, 3, 4, 5, 6, tzinfo=timezone.utc)


def test_global_options_also_after_the_command_and_from_the_environment(
        cli: Run, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("enqueue", "q", "a", "--db", db).code == 0
    monkeypatch.setenv("QUEUETOPIA_DB", db)
    listed = cli("jobs", "--json")
    assert [job["queue"] for job in json.loads(listed.out)] == ["q"]


def test_scopes_do_not_see_each_other(cli: Run, db: str) -> None:
    enqueue(cli, db, "q", "a")
    assert cli("--db", db, "--scope", "other", "enqueue", "q2", "b").code == 0
    default = json.loads(cli("--db", db, "jobs", "--json").out)
    other = json.loads(cli("--db", db, "jobs", "--json", "--scope", "other").out)
    assert [j["queue"] for j in default] == ["q"]
    assert [(j["queue"], j["scope"]) for j in other] == [("q2", "other")]
    assert one_line_error(cli("--db", db, "--scope", "other", "job", "1")).endswith(
        "job 1 not found")


# -- jobs and job -------------------------------------------------------------------


def test_jobs_lists_newest_first_with_filters(cli: Run, db: str) -> None:
    ids = [enqueue(cli, db, "mails", "send"), enqueue(cli, db, "images", "resize"),
           enqueue(cli, db, "mails", "send", "--in", "1h")]
    table = cli("--db", db, "jobs")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["ID", "QUEUE", "ACTION", "STATE", "TRIES", "WHEN", "LAST",
                                "ERROR"]
    assert [int(line.split()[0]) for line in lines[1:]] == ids[::-1]
    assert "starts in 59 min" in lines[1] or "starts in 1 h" in lines[1]
    mails = cli("--db", db, "jobs", "--queue", "mails", "--json")
    assert [j["id"] for j in json.loads(mails.out)] == [ids[2], ids[0]]
    scheduled = cli("--db", db, "jobs", "--state", "scheduled", "--json")
    assert [j["id"] for j in json.loads(scheduled.out)] == [ids[2]]
    resize = cli("--db", db, "jobs", "--action", "resize", "--json")
    assert [j["id"] for j in json.loads(resize.out)] == [ids[1]]
    limited = cli("--db", db, "jobs", "--limit", "1")
    assert len(limited.out.splitlines()) == 3  # header, one job, the "--limit" hint
    assert "--limit" in limited.out.splitlines()[-1]


def test_jobs_json_has_the_documented_keys_and_absolute_instants(cli: Run, db: str) -> None:
    enqueue(cli, db, "mails", "send", '{"to": "é@b.c"}')
    (job,) = json.loads(cli("--db", db, "jobs", "--json").out)
    assert set(job) == JOB_KEYS
    assert job["params"] == {"to": "é@b.c"}
    assert job["state"] == "available"
    created = datetime.fromisoformat(job["created_at"])
    assert created.utcoffset() == timedelta(0)


def test_jobs_on_an_empty_database(cli: Run, queue: Queuetopia, db: str) -> None:
    assert cli("--db", db, "jobs").out == "no jobs\n"
    assert cli("--db", db, "jobs", "--json").out == "[]\n"
    assert cli("--db", db, "queues").out == "no queues\n"


def test_job_shows_every_field_and_the_full_error(cli: Run, db: str) -> None:
    job_id = block(cli, db, message="card declined\nsecond line of the message")
    shown = cli("--db", db, "job", str(job_id))
    assert shown.code == 0
    fields = dict(line.split(":", 1) for line in shown.out.splitlines()
                  if line and not line.startswith(" ") and line != "error:")
    assert fields["state"].strip() == "retrying"
    assert fields["attempts"].strip() == "1 of 20"
    assert "(in 59 min)" in fields["next_attempt_at"] or "(in 1 h)" in fields["next_attempt_at"]
    assert "  RuntimeError: card declined" in shown.out
    assert "Traceback" in shown.out  # the stored traceback, shown in full
    as_json = json.loads(cli("--db", db, "job", str(job_id), "--json").out)
    assert set(as_json) == JOB_KEYS
    assert as_json["id"] == job_id and as_json["attempts"] == 1
    assert as_json["error"].startswith("RuntimeError: card declined")


def test_job_unknown_id_fails_in_one_line(cli: Run, queue: Queuetopia, db: str) -> None:
    for argv in (["job", "42"], ["job", "42", "--json"], ["retry", "42"], ["cancel", "42"]):
        result = cli("--db", db, *argv)
        assert result.code == 1
        assert one_line_error(result) == "queuetopia-lite: job 42 not found"


# -- queues -------------------------------------------------------------------------


def test_queues_makes_a_blocked_queue_obvious(cli: Run, db: str) -> None:
    job_id = block(cli, db, "payments", "card declined for order 1")
    enqueue(cli, db, "payments", "ok")
    enqueue(cli, db, "reports", "ok", "--in", "2h")
    enqueue(cli, db, "mails", "ok")
    shown = cli("--db", db, "queues")
    assert shown.code == 0
    summary, *lines = shown.out.splitlines()
    assert summary == "3 queues: 1 blocked, 1 available, 1 scheduled"
    assert lines[0].split() == ["QUEUE", "STATE", "PENDING", "HEAD", "DETAIL"]
    assert [line.split()[0] for line in lines[1:4:2]] == ["payments", "mails"]  # blocked first
    rows = {line.split()[0]: line for line in lines[1:] if not line.startswith(" ")}
    payments = rows["payments"]
    assert payments.split()[1:4] == ["BLOCKED", "2", f"#{job_id}"]
    assert f"by job {job_id}, attempt 1/20" in payments
    assert "since now" in payments or "s ago" in payments
    assert "next retry in 59 min" in payments or "next retry in 1 h" in payments
    error_line = lines[lines.index(payments) + 1]
    assert error_line == "    error: RuntimeError: card declined for order 1"
    assert "next start in 1 h 59 min" in rows["reports"] or "in 2 h" in rows["reports"]
    assert rows["mails"].split()[1] == "available"
    assert lines[-1].startswith("1 blocked: payments")


def test_queues_shows_a_queue_held_after_its_head_failed_for_good(cli: Run, db: str) -> None:
    enqueue(cli, db, "payments", "fail", '{"backoff": 600}', "--max-attempts", "1")
    nxt = enqueue(cli, db, "payments", "ok")
    assert cli("--db", db, "worker", "--performer", PERFORMER, "--drain").code == 0
    row = cli("--db", db, "queues").out.splitlines()[2]
    assert row.split()[:4] == ["payments", "BLOCKED", "1", f"#{nxt}"]
    assert "held after a job failed for good" in row
    assert "moves on in 10 min" in row or "moves on in 9 min" in row


def test_queues_json(cli: Run, db: str) -> None:
    job_id = block(cli, db, "payments")
    enqueue(cli, db, "mails", "ok")
    statuses = {s["queue"]: s for s in json.loads(cli("--db", db, "queues", "--json").out)}
    assert set(statuses) == {"payments", "mails"}
    payments = statuses["payments"]
    assert set(payments) == QUEUE_KEYS
    assert payments["state"] == "blocked"
    assert payments["head"]["id"] == job_id and set(payments["head"]) == JOB_KEYS
    assert datetime.fromisoformat(payments["blocked_since"]).utcoffset() == timedelta(0)
    assert payments["next_run_at"] == payments["head"]["next_attempt_at"]
    assert statuses["mails"]["state"] == "available"


def test_queues_shows_a_running_queue_by_whom_and_lease(
        cli: Run, db: str, queue: Queuetopia) -> None:
    job = queue.create_job("mails", "ok")
    now = datetime.now(timezone.utc).timestamp()
    claimed = queue.backend.step(queue.scope, now, claim=1, owner="box:4242", lease=600)
    assert [c.job.id for c in claimed.claimed] == [job.id]
    row = cli("--db", db, "queues").out.splitlines()[2]
    assert row.split()[:4] == ["mails", "running", "1", f"#{job.id}"]
    assert "by box:4242, lease until in 10 min" in row or "lease until in 9 min" in row
    (status,) = json.loads(cli("--db", db, "queues", "--json").out)
    assert (status["state"], status["locked_by"]) == ("running", "box:4242")


def test_output_fits_100_columns_with_long_names_and_errors(cli: Run, db: str) -> None:
    long_queue = "q" * 150
    block(cli, db, long_queue, "x" * 300)
    enqueue(cli, db, long_queue, "a" * 150, json.dumps({"k": "v" * 500}))
    enqueue(cli, db, "line\nbreak", "tab\taction")
    for command in ("jobs", "queues", "stats", "job 1", "job 2"):
        out = cli("--db", db, *command.split()).out
        assert out
        lines = [line for line in out.splitlines() if not line.startswith("  ")]
        assert max(len(line) for line in lines) <= 100, command
    jobs = cli("--db", db, "jobs").out.splitlines()
    assert len(jobs) == 4  # the newline in a queue name does not break the table


# -- retry, cancel, prune -------------------------------------------------------------


def test_retry_makes_a_blocked_job_runnable_now(cli: Run, db: str) -> None:
    job_id = block(cli, db)
    retried = cli("--db", db, "retry", str(job_id))
    assert retried.code == 0
    assert retried.out == f"job {job_id} is available (attempts so far: 1/20)\n"
    job = Queuetopia(db).get_job(job_id)
    assert job is not None and (job.state, job.attempts) == (JobState.AVAILABLE, 1)


def test_retry_of_a_done_job_is_refused(cli: Run, db: str) -> None:
    job_id = enqueue(cli, db, "q", "ok")
    assert cli("--db", db, "worker", "--performer", PERFORMER, "--drain").code == 0
    result = cli("--db", db, "retry", str(job_id))
    assert result.code == 1
    assert one_line_error(result) == f"queuetopia-lite: job {job_id} is done: nothing to retry"


def test_cancel_unblocks_the_queue(cli: Run, db: str) -> None:
    blocker = block(cli, db, "payments")
    nxt = enqueue(cli, db, "payments", "ok")
    cancelled = cli("--db", db, "cancel", str(blocker))
    assert cancelled.code == 0
    assert cancelled.out == f"job {blocker} cancelled; queue 'payments' moves on\n"
    (status,) = Queuetopia(db).queues()
    assert status.state == QueueState.AVAILABLE
    assert status.head is not None and status.head.id == nxt
    again = cli("--db", db, "cancel", str(blocker))
    assert one_line_error(again) == f"queuetopia-lite: job {blocker} is already cancelled"
    drained = cli("--db", db, "worker", "--performer", PERFORMER, "--drain")
    assert "1 job ran" in drained.err
    job = Queuetopia(db).get_job(nxt)
    assert job is not None and job.state == JobState.DONE


def test_prune_deletes_old_done_jobs_only(cli: Run, db: str) -> None:
    done = enqueue(cli, db, "q", "ok")
    pending = enqueue(cli, db, "other", "ok", "--in", "1h")
    assert cli("--db", db, "worker", "--performer", PERFORMER, "--drain").code == 0
    kept = cli("--db", db, "prune", "--older-than", "7d")
    assert kept.out == "deleted 0 done jobs finished more than 7 d ago\n"
    pruned = cli("--db", db, "prune", "--older-than", "0")
    assert pruned.out == "deleted 1 done job finished more than 0 s ago\n"
    q = Queuetopia(db)
    assert q.get_job(done) is None
    assert q.get_job(pending) is not None


# -- stats ----------------------------------------------------------------------------


def test_stats_counts_oldest_pending_and_blocked_queues(cli: Run, db: str) -> None:
    blocker = block(cli, db, "payments")
    enqueue(cli, db, "payments", "ok")
    enqueue(cli, db, "mails", "ok", "--in", "1h")
    text = cli("--db", db, "stats")
    assert text.code == 0
    counts = dict(line.split() for line in text.out.splitlines()[1:9])
    assert counts == {"scheduled": "1", "available": "1", "running": "0", "retrying": "1",
                      "done": "0", "failed": "0", "cancelled": "0", "total": "3"}
    assert "queues:          2 (1 blocked, 1 scheduled)" in text.out
    assert f"oldest pending:  job {blocker} in payments (retrying)" in text.out
    assert "blocked queues:  payments" in text.out
    stats = json.loads(cli("--db", db, "stats", "--json").out)
    assert stats["counts"] == {s.value: int(counts[s.value]) for s in JobState}
    assert (stats["total"], stats["queues"]) == (3, 2)
    assert stats["oldest_pending"]["id"] == blocker
    assert [s["queue"] for s in stats["blocked_queues"]] == ["payments"]


def test_stats_of_an_empty_database(cli: Run, queue: Queuetopia, db: str) -> None:
    stats = json.loads(cli("--db", db, "stats", "--json").out)
    assert (stats["total"], stats["oldest_pending"], stats["blocked_queues"]) == (0, None, [])
    assert "oldest pending:  -" in cli("--db", db, "stats").out


# -- worker --drain (the running worker is tested in a subprocess) ---------------------


def test_worker_drain_runs_due_jobs_and_logs_them(cli: Run, db: str) -> None:
    ok = enqueue(cli, db, "q", "ok")
    later = enqueue(cli, db, "q2", "ok", "--in", "1h")
    drained = cli("--db", db, "worker", "--performer", PERFORMER, "--drain")
    assert drained.code == 0
    assert f"job {ok} done: q/ok" in drained.err
    assert "1 job ran" in drained.err
    q = Queuetopia(db)
    states = {job.id: job.state for job in q.list_jobs()}
    assert states == {ok: JobState.DONE, later: JobState.SCHEDULED}


def test_worker_on_the_sqlite3_driver(cli: Run, db: str) -> None:
    ok = enqueue(cli, db, "q", "ok")
    drained = cli("--db", db, "worker", "--performer", PERFORMER, "--drain", "--driver", "sqlite3")
    assert drained.code == 0 and f"job {ok} done: q/ok" in drained.err


def test_worker_logs_failures_with_the_next_retry(cli: Run, db: str) -> None:
    job_id = enqueue(cli, db, "payments", "fail", '{"message": "declined"}')
    drained = cli("--db", db, "worker", "--performer", PERFORMER, "--drain")
    assert (f"job {job_id} failed: payments/fail attempt 1/20: RuntimeError: declined "
            "(retry in 1 h; the queue waits)") in drained.err


def test_worker_logs_a_final_failure(cli: Run, db: str) -> None:
    job_id = enqueue(cli, db, "payments", "fail", '{"backoff": 0}', "--max-attempts", "1")
    drained = cli("--db", db, "worker", "--performer", PERFORMER, "--drain")
    assert f"job {job_id} failed for good: payments/fail after 1 attempts" in drained.err
    job = Queuetopia(db).get_job(job_id)
    assert job is not None and job.state == JobState.FAILED


def test_help_exits_zero(cli: Run) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in ("migrate", "enqueue", "worker", "jobs", "job", "queues", "stats", "retry",
                    "cancel", "prune"):
        assert command in result.out




def test_backup_copies_the_database(cli: Run, db: str, tmp_path: Path) -> None:
    job = enqueue(cli, db, "q", "ok")
    copy = os.fspath(tmp_path / "copy.db")
    result = cli("--db", db, "backup", copy)
    assert result.code == 0 and result.out == f"backed up {db} to {copy}\n"
    copied = Queuetopia(copy).get_job(job)
    assert copied is not None and copied.queue == "q"


def test_job_shows_a_long_raw_error_printable_and_within_100_columns(cli: Run, db: str) -> None:
    job = enqueue(cli, db, "q", "ok")

    def perform(_: object) -> None:
        raise RuntimeError("\x1b[31mRED " + "x" * 300 + "\nsecond line")

    assert Queuetopia(db, perform).drain() == 1
    result = cli("--db", db, "job", str(job))
    assert result.code == 0
    assert "\x1b" not in result.out
    assert max(len(line) for line in result.out.splitlines()) <= 100
    assert result.out.count("x") >= 300  # the whole error, wrapped, not cut


# -- job control (SPEC 12) -------------------------------------------------------------


def test_enqueue_with_a_performer_takes_the_action_defaults_and_refuses_unknown_actions(
        cli: Run, db: str) -> None:
    job_id = enqueue(cli, db, "payments", "charge", "--performer", PERFORMER)
    q = Queuetopia(db)
    job = q.get_job(job_id)
    assert job is not None and (job.max_attempts, job.timeout) == (5, 30.0)
    own = q.get_job(enqueue(cli, db, "payments", "charge", "--performer", PERFORMER,
                            "--max-attempts", "2", "--timeout", "none"))
    assert own is not None and (own.max_attempts, own.timeout) == (2, None)
    plain = q.get_job(enqueue(cli, db, "payments", "charge"))  # without --performer
    assert plain is not None and plain.max_attempts == 20
    refused = cli("--db", db, "enqueue", "payments", "chrage", "--performer", PERFORMER)
    assert "unknown action 'chrage'" in one_line_error(refused)
    assert "charge" in refused.err
    assert len(q.list_jobs()) == 3


def test_enqueue_with_a_unique_key_prints_the_waiting_job(cli: Run, db: str) -> None:
    first = enqueue(cli, db, "sync", "ok", "--unique-key", "device-7")
    assert enqueue(cli, db, "sync", "ok", "--unique-key", "device-7") == first
    assert enqueue(cli, db, "sync", "ok", "--unique-key", "device-8") != first
    bad = cli("--db", db, "enqueue", "sync", "ok", "--unique-key", "")
    assert "unique_key" in one_line_error(bad)


def test_job_shows_each_failed_attempt(cli: Run, db: str) -> None:
    job_id = enqueue(cli, db, "payments", "charge", "--performer", PERFORMER)
    assert cli("--db", db, "worker", "--performer", PERFORMER, "--drain").code == 0
    shown = cli("--db", db, "job", str(job_id)).out
    assert "errors:          1 failed attempt" in shown
    assert "  attempt 1  " in shown and "    card expired" in shown
    data = json.loads(cli("--db", db, "job", str(job_id), "--json").out)
    (entry,) = data["errors"]
    assert entry["attempt"] == 1 and entry["error"] == "card expired" and ":" in entry["by"]
    assert datetime.fromisoformat(entry["at"]).utcoffset() == timedelta(0)
    assert data["state"] == "failed"


def test_worker_runs_the_periodic_jobs_of_its_performer_module(cli: Run, db: str) -> None:
    q = Queuetopia(db)

    def drained_a_beat() -> bool:
        drained = cli("--db", db, "worker", "--performer", "cli_periodic:performer", "--drain")
        assert drained.code == 0, drained.err
        return bool(q.list_jobs(queue="beats", state="done"))

    wait_for(drained_a_beat, "a periodic job run by `worker --drain`")
