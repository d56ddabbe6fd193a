"""The text saved in a job's ``error``: bounded, its first line a summary."""

from __future__ import annotations

import traceback

from .errors import QueuetopiaError

MAX_ERROR_CHARS = 16_000  # the traceback's middle is cut beyond this


def error_text(exc: BaseException) -> str:
    """``Type: message`` on the first line, then the traceback, bounded in size."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the failure
        message = "<unprintable message>"
    if isinstance(exc, QueuetopiaError):
        return message  # our own errors (unknown action...) need no traceback
    summary = f"{type(exc).__name__}: {message}".splitlines()[0] if message else type(exc).__name__
    try:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        trace = "(traceback unavailable)"
    text = summary + "\n" + trace
    if len(text) > MAX_ERROR_CHARS:
        keep = MAX_ERROR_CHARS // 2
        text = text[:keep] + "\n[... cut ...]\n" + text[-keep:]
    return text
