"""The queuetopia_lite demo: three queues on a local SQLite file, one blocked by a failing job.

Run it with ``scripts/demo``. It creates ``demo.db`` in the current folder (anew each run).
"""

from __future__ import annotations

import os
import sys
import time

from queuetopia_lite import Job, Performer, Queuetopia

DB = os.environ.get("DEMO_DB", "demo.db")
T0 = time.monotonic()


def say(text: str) -> None:
    # One write per line: workers and the hook thread print at once.
    sys.stdout.write(f"[{time.monotonic() - T0:5.2f} s] {text}\n")
    sys.stdout.flush()


class DemoPerformer(Performer):
    """Actions of the demo; retries come fast (0.4 s) so the demo is short."""

    def backoff(self, job: Job) -> float:
        return 0.4

    def handle_failed_job(self, job: Job) -> None:
        first_line = (job.error or "").splitlines()[0]
        say(f"  ! job {job.id} in {job.queue!r} failed attempt {job.attempts}/"
            f"{job.max_attempts}: {first_line}")


performer = DemoPerformer()


@performer.action("send_mail")
def send_mail(job: Job) -> None:
    say(f"mails:    sent mail to {job.params['to']}")


@performer.action("resize")
def resize(job: Job) -> None:
    time.sleep(0.05)
    say(f"images:   resized {job.params['file']}")


@performer.action("charge")
def charge(job: Job) -> None:
    if job.params["card"] == "expired":
        raise RuntimeError(f"card declined for order {job.params['order']}")
    say(f"payments: charged order {job.params['order']}")


def show_queues(q: Queuetopia) -> None:
    for status in q.queues():
        head = status.head
        extra = ""
        if status.state.value == "blocked" and head is not None:
            extra = f" by job {head.id} (attempts {head.attempts}), next retry at " \
                    f"{status.next_run_at:%H:%M:%S.%f}"[:-3]
        say(f"  queue {status.queue:<9} {status.state.value:<9} pending={status.pending}{extra}")


def main() -> int:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(DB + suffix):
            os.remove(DB + suffix)
    q = Queuetopia(DB, performer, max_workers=3, poll_interval=5)
    say(f"database {DB}: enqueuing jobs in three queues")
    q.create_jobs([("mails", "send_mail", {"to": f"user{i}@example.com"}) for i in range(3)])
    q.create_jobs([("images", "resize", {"file": f"photo{i}.jpg"}) for i in range(3)])
    q.create_job("payments", "charge", {"order": 1, "card": "expired"}, max_attempts=3)
    q.create_job("payments", "charge", {"order": 2, "card": "ok"})
    with q:
        time.sleep(0.3)
        say("while it runs: the payments queue is blocked by its failing head")
        show_queues(q)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            s.pending for s in q.queues()
        ):
            time.sleep(0.05)
    say("all done. What happened, per job:")
    for job in reversed(q.list_jobs()):
        error = (job.error or "").splitlines()[0] if job.error else ""
        say(f"  job {job.id} {job.queue:<9} {job.action:<10} {job.state.value:<7} "
            f"attempts={job.attempts} {error}")
    say("queues at the end:")
    show_queues(q)
    q.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
