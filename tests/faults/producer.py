"""A producer process: creates jobs forever, logging each acknowledged id (fsynced).

Usage: python -m tests.faults.producer DB LOG NAME

An id is logged only after create_job returned, so every logged id must be in
any later consistent copy of the database.
"""

from __future__ import annotations

import sys

from queuetopia_lite import Queuetopia

from .worker import append


def main() -> None:
    db, log, name = sys.argv[1:4]
    q = Queuetopia(db)  # the default durability
    n = 0
    while True:
        job = q.create_job(f"{name}{n % 5}", "ok", {"n": n})
        append(log, str(job.id))
        n += 1


if __name__ == "__main__":
    main()
