"""The exceptions queuetopia_lite raises."""

from __future__ import annotations


class QueuetopiaError(Exception):
    """Base class of every error raised by queuetopia_lite."""


class InvalidJobError(QueuetopiaError, ValueError):
    """A bad argument: the message names the field, and nothing was stored."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class JobNotFoundError(QueuetopiaError, LookupError):
    """No job with this id exists in this scope."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class JobStateError(QueuetopiaError):
    """The operator action does not apply to the job in its current state."""


class DatabaseError(QueuetopiaError):
    """The database cannot be used (locked, read-only, full, corrupt, not ours).

    The message names the file; whatever was already stored is still there.
    ``retryable`` is True when waiting may cure it (locked, full, I/O error) and
    False when it needs a person (read-only, corrupt, not a database).
    """

    def __init__(self, path: str, problem: str, *, retryable: bool = True) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.retryable = retryable


def check_schema_version(location: str, found: int, known: int, *, exact: bool) -> None:
    """Refuse a schema newer than this code knows (and, if ``exact``, an older one)."""
    if found > known:
        raise DatabaseError(location, f"schema version {found} is newer than this "
                            f"queuetopia_lite knows ({known}): upgrade queuetopia_lite",
                            retryable=False)
    if exact and found != known:
        raise DatabaseError(location, f"schema version {found}, expected {known}: run "
                            "`queuetopia-lite migrate`", retryable=False)


class UnknownActionError(QueuetopiaError, LookupError):
    """The performer has no action of this name (recorded as a job failure)."""

    def __init__(self, action: str) -> None:
        super().__init__(f"unknown action {action!r}")
        self.action = action
