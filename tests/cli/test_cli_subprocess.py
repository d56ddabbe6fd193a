"""The real command line in subprocesses: a worker runs jobs, stops on signals, and a
blocked queue flows again after `cancel`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from cli_helpers import wait_for

from queuetopia_lite import JobState, QueueState, Queuetopia

HERE = Path(__file__).resolve().parent
PERFORMER = "cli_performer:performer"
EXIT_TIMEOUT = 30.0  # seconds a stopped worker may take before the test fails


def env() -> dict[str, str]:
    """The environment of the subprocesses: the test performer is importable."""
    paths = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "QUEUETOPIA_DB": ""}


def cli(db: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m queuetopia_lite --db DB ...` to its end."""
    return subprocess.run([sys.executable, "-m", "queuetopia_lite", "--db", db, *argv],
                          capture_output=True, text=True, env=env(), timeout=EXIT_TIMEOUT)


@pytest.fixture
def worker(db: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A running `worker` subprocess; its stderr goes to tmp_path/worker.log."""
    assert cli(db, "migrate").returncode == 0
    with open(tmp_path / "worker.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "queuetopia_lite", "--db", db, "worker", "--performer",
             PERFORMER, "--max-workers", "2"],
            stdout=subprocess.DEVNULL, stderr=log, text=True, env=env())
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def job_state(db: str, job_id: int) -> JobState | None:
    q = Queuetopia(db, migrate=False)
    try:
        job = q.get_job(job_id)
        return None if job is None else job.state
    finally:
        q.close()


def queue_state(db: str, name: str) -> QueueState | None:
    q = Queuetopia(db, migrate=False)
    try:
        return next((s.state for s in q.queues() if s.queue == name), None)
    finally:
        q.close()


def enqueue(db: str, *argv: str) -> int:
    done = cli(db, "enqueue", *argv)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_worker_runs_a_job_and_sigterm_stops_it_with_exit_0(
        db: str, tmp_path: Path, worker: subprocess.Popen[str]) -> None:
    job_id = enqueue(db, "mails", "ok")
    wait_for(lambda: job_state(db, job_id) == JobState.DONE, "the job to be done")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=EXIT_TIMEOUT) == 0
    log = (tmp_path / "worker.log").read_text()
    assert "worker started on" in log
    assert f"job {job_id} done: mails/ok" in log
    assert "worker stopped after" in log
    assert "Traceback" not in log


def test_sigint_lets_the_running_job_finish_and_saves_it(
        db: str, tmp_path: Path, worker: subprocess.Popen[str]) -> None:
    release = tmp_path / "release"
    job_id = enqueue(db, "slow", "wait_for_file", json.dumps({"path": str(release)}))
    wait_for(lambda: job_state(db, job_id) == JobState.RUNNING, "the job to run")
    worker.send_signal(signal.SIGINT)
    release.touch()
    assert worker.wait(timeout=EXIT_TIMEOUT) == 0
    assert job_state(db, job_id) == JobState.DONE
    assert queue_state(db, "slow") == QueueState.IDLE


def test_a_blocked_queue_flows_again_after_cancel(
        db: str, tmp_path: Path, worker: subprocess.Popen[str]) -> None:
    blocker = enqueue(db, "payments", "fail", '{"message": "card declined"}')
    follower = enqueue(db, "payments", "ok")
    other = enqueue(db, "mails", "ok")
    wait_for(lambda: queue_state(db, "payments") == QueueState.BLOCKED, "payments blocked")
    wait_for(lambda: job_state(db, other) == JobState.DONE, "the other queue to flow")
    assert job_state(db, follower) == JobState.AVAILABLE  # waits behind the blocker

    shown = cli(db, "queues")
    assert shown.returncode == 0
    payments = next(line for line in shown.stdout.splitlines() if line.startswith("payments"))
    assert payments.split()[1:4] == ["BLOCKED", "2", f"#{blocker}"]
    assert "error: RuntimeError: card declined" in shown.stdout

    cancelled = cli(db, "cancel", str(blocker))
    assert cancelled.returncode == 0, cancelled.stderr
    wait_for(lambda: job_state(db, follower) == JobState.DONE, "the queue to flow again")
    assert job_state(db, blocker) == JobState.CANCELLED
    assert queue_state(db, "payments") == QueueState.IDLE

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=EXIT_TIMEOUT) == 0
    log = (tmp_path / "worker.log").read_text()
    assert f"job {blocker} failed: payments/fail attempt 1/20: RuntimeError: card declined" in log
    assert f"job {follower} done: payments/ok" in log


def test_console_script_and_module_agree(db: str) -> None:
    result = cli(db, "jobs")
    assert result.returncode == 1
    assert result.stderr == (f"queuetopia-lite: {db}: no such database file "
                             "(`migrate` or `enqueue` creates one)\n")
    assert not os.path.exists(db)
