"""The command line: ``queuetopia-lite`` and ``python -m queuetopia_lite``.

Usage: ``queuetopia-lite [--db PATH_OR_URL] [--scope S] COMMAND ...``; ``--help``
lists the commands. Exit status: 0 on success, 2 for bad input (usage, invalid
arguments), 1 when the database or the job says no (missing or unreadable
file, unknown job id, a job in the wrong state, a performer that cannot be
loaded), 130 after Ctrl-C outside ``worker``. Every error is one line on
stderr, without a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from ..errors import InvalidJobError, QueuetopiaError
from .commands import COMMANDS
from .parser import PROG, UsageError, parse
from .worker import PerformerLoadError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (errors are printed, never raised)."""
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        return COMMANDS[args.command](args)
    except SystemExit as exc:  # --help and --version print, then exit
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        return _fail(str(exc), 2)
    except InvalidJobError as exc:
        return _fail(f"{PROG}: {exc}", 2)
    except (QueuetopiaError, PerformerLoadError) as exc:
        return _fail(f"{PROG}: {exc}", 1)
    except KeyboardInterrupt:
        return _fail(f"{PROG}: interrupted", 130)
    except BrokenPipeError:
        # The reader went away (`jobs | head`): not an error. Point stdout at
        # devnull so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _fail(message: str, status: int) -> int:
    # One line, whatever the message holds: stderr is read by people and by logs.
    print(" ".join(message.split()), file=sys.stderr)
    return status
