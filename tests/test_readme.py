"""The README's quickstart and demo run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_block_after(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {heading}"
    return match.group(1)


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(python_block_after("## Quickstart"), "README quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert out.count("mail to") == 5
    assert "'done', 1)" in out and "available" not in out


def test_web_app_example_commits_the_order_with_its_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code = python_block_after("### A web application (SQLite)")
    exec(compile(code, "README web app example", "exec"), {})
    out = capsys.readouterr().out
    assert "charging order 1 for 9.5" in out
    # The rolled-back order left no job.
    assert "[('payments_customer_42', {'order_id': 1}, 'done')]" in out


def test_demo_runs_and_shows_the_blocked_queue(tmp_path: Path) -> None:
    env = {**os.environ, "DEMO_DB": os.fspath(tmp_path / "demo.db")}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    out = result.stdout
    assert "queue payments  blocked" in out
    assert "failed attempt 3/3" in out
    assert "charged order 2" in out
    assert re.search(r"job 7 payments\s+charge\s+failed\s+attempts=3", out)


def test_asyncio_example_runs_async_and_sync_actions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(python_block_after("## asyncio"), "README asyncio example", "exec"), {})
    out = capsys.readouterr().out
    # Each site's pages in order (one queue per site), the thumbnail on its own.
    assert out.count("fetched https://example.com/") == 3
    fetched = [line for line in out.splitlines() if line.startswith("fetched")]
    assert fetched == [f"fetched https://example.com/{n}" for n in range(3)]
    assert "thumbnail of cat.png" in out
    assert "[{'job': 1}, {'job': 2}, {'job': 3}]" in out


def test_events_example_counts_and_gauges(tmp_path: Path) -> None:
    from queuetopia_lite import Job, Queuetopia

    def perform(job: Job) -> None:
        if job.action == "bad":
            raise RuntimeError("boom")

    q = Queuetopia(tmp_path / "jobs.db", perform)
    scope: dict[str, object] = {"q": q}
    exec(compile(python_block_after("## Events and dead workers"), "README events", "exec"),
         scope)
    q.create_job("good", "ok")
    q.create_job("stuck", "bad")
    assert q.drain() == 2
    metrics = scope["metrics"]
    assert callable(metrics)
    text = metrics()
    assert 'queuetopia_jobs_total{kind="job_succeeded",action="ok"} 1' in text
    assert 'queuetopia_jobs_total{kind="job_failed",action="bad"} 1' in text
    assert "queuetopia_blocked_queues 1" in text
    q.close()
