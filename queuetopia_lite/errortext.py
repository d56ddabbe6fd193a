"""The text saved in a job's ``error``: bounded, its first line a summary."""

from __future__ import annotations

import traceback

from .errors import QueuetopiaError

MAX_ERROR_CHARS = 16_000  # the traceback's middle is cut beyond this


def error_text(exc: BaseException) -> str:
    """``Type: message`` on the first line, then the traceback, bounded in size."""
    if isinstance(exc, QueuetopiaError):
        return str(exc)  # our own errors (unknown action...) need no traceback
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    text = summary + "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(text) > MAX_ERROR_CHARS:
        keep = MAX_ERROR_CHARS // 2
        text = text[:keep] + "\n[... cut ...]\n" + text[-keep:]
    return text
