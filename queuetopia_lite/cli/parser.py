"""The command line's grammar: argparse parsers and the parsing of values."""

from __future__ import annotations

import argparse
import math
import os
import re
from datetime import datetime, timezone
from typing import NoReturn, Sequence

from ..job import JobState
from ..validation import NOT_GIVEN

PROG = "queuetopia-lite"
DB_ENV = "QUEUETOPIA_DB"
TOKEN_ENV = "QUEUETOPIA_DASHBOARD_TOKEN"

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h|d|w)?\s*", re.IGNORECASE)


class UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing usage and exiting.

    main() prints the message as one line: an error must not scroll a usage
    block over the terminal.
    """

    def error(self, message: str) -> NoReturn:
        """Raise the problem as a UsageError naming this (sub)command."""
        raise UsageError(f"{self.prog}: {message} (see --help)")


def duration(text: str) -> float:
    """Seconds from '30s', '15m', '2h', '7d', '1w', '1.5h' or plain '90' (seconds)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"bad duration {text!r}: expected e.g. 30s, 15m, 2h, 7d or plain seconds")
    value = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: too large")
    return value


def timeout(text: str) -> float | None:
    """A job timeout: a positive duration, or 'none' for no limit."""
    if text.strip().lower() == "none":
        return None
    value = duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive (or 'none' for no limit)")
    return value


def instant(text: str) -> datetime:
    """An ISO 8601 instant with its timezone ('Z' or an offset), as aware UTC."""
    try:
        # Python 3.10's fromisoformat does not take a trailing Z.
        value = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text.strip()))
        value.astimezone(timezone.utc)  # out of range once in UTC? (OverflowError)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"bad instant {text!r}: expected ISO 8601, e.g. 2030-01-31T09:00:00Z") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no timezone: add Z (UTC) or an offset such as +02:00")
    return value.astimezone(timezone.utc)


def count(text: str) -> int:
    """A non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive(text: str) -> int:
    """An integer of at least 1."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: the system picks a free one)."""
    value = count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


def seconds(text: str) -> float:
    """A positive duration."""
    value = duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build() -> Parser:
    """The whole command line: global options, then one subcommand."""
    # --db and --scope are also accepted after the command name; SUPPRESS keeps a
    # subcommand from overwriting a value given before it.
    common = Parser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--scope", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    parser = Parser(prog=PROG, description="Operate queuetopia_lite job queues.")
    parser.add_argument("--db", default=os.environ.get(DB_ENV) or None, metavar="PATH_OR_URL",
                        help=f"SQLite file or postgresql:// URL (default: ${DB_ENV})")
    parser.add_argument("--scope", default="default", help="the scope of the jobs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, *, json: bool = False) -> Parser:
        p: Parser = sub.add_parser(name, help=help_text, description=help_text,
                                   parents=[common])
        if json:
            p.add_argument("--json", action="store_true", help="print JSON (keys: see README)")
        return p

    command("migrate", "create or upgrade the database schema and print its version")

    p = command("enqueue", "store a job at the end of QUEUE and print its id")
    p.add_argument("queue", metavar="QUEUE")
    p.add_argument("action", metavar="ACTION")
    p.add_argument("params", nargs="?", default="{}", metavar="PARAMS_JSON",
                   help="a JSON object (default: {})")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--at", type=instant, metavar="ISO8601", help="run at this instant")
    when.add_argument("--in", dest="delay", type=duration, metavar="DURATION",
                      help="run after this long (e.g. 90, 30s, 15m, 2h)")
    # Options not given take the action's defaults (with --performer), else the global ones.
    p.add_argument("--timeout", type=timeout, default=NOT_GIVEN, metavar="DURATION",
                   help="attempt time limit, or 'none' (default: the action's, or 60 s)")
    p.add_argument("--max-backoff", type=duration, default=NOT_GIVEN, metavar="DURATION",
                   help="longest pause between attempts (default: the action's, or 1 d)")
    p.add_argument("--max-attempts", type=count, default=NOT_GIVEN, metavar="N",
                   help="attempts before the job fails for good (default: the action's, or 20)")
    p.add_argument("--unique-key", metavar="KEY",
                   help="if a waiting job has this key, print its id and store nothing")
    p.add_argument("--performer", metavar="MODULE:ATTRIBUTE",
                   help="refuse actions this performer does not know; take its defaults")

    p = command("worker", "run jobs until SIGINT or SIGTERM (logs go to stderr)")
    p.add_argument("--performer", required=True, metavar="MODULE:ATTRIBUTE",
                   help="the performer, e.g. myapp.jobs:performer")
    p.add_argument("--max-workers", type=positive, default=8, metavar="N",
                   help="queues run at once (default: 8)")
    p.add_argument("--poll-interval", type=seconds, default=60.0, metavar="DURATION",
                   help="periodic poll (default: 60 s; new jobs wake the worker anyway)")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO")
    p.add_argument("--drain", action="store_true",
                   help="run the jobs due now in this thread, then exit (no timeouts)")
    p.add_argument("--driver", choices=["apsw", "sqlite3"], default=None,
                   help="SQLite library (default: apsw); sqlite3 when the performer's "
                        "code opens the same file through Python's sqlite3")

    p = command("jobs", "list jobs, newest first", json=True)
    p.add_argument("--queue")
    p.add_argument("--action")
    p.add_argument("--state", choices=[s.value for s in JobState])
    p.add_argument("--limit", type=count, default=100, metavar="N", help="default: 100")

    p = command("job", "show one job, its full error included", json=True)
    p.add_argument("id", type=int, metavar="ID")

    p = command("queues", "a summary, then the queues: blocked first, then running, then the "
                "rest", json=True)
    p.add_argument("--blocked", action="store_true", help="only the blocked queues")
    p.add_argument("--limit", type=count, default=None, metavar="N",
                   help="queues listed (default: 50; 0: all; with --json: all)")
    command("stats", "counts by state, oldest pending job, blocked queues", json=True)

    p = command("retry", "make a job runnable now (attempts kept)")
    p.add_argument("id", type=int, metavar="ID")
    p = command("cancel", "cancel an unfinished job; its queue moves on")
    p.add_argument("id", type=int, metavar="ID")

    p = command("prune", "delete done jobs finished longer ago than DURATION")
    p.add_argument("--older-than", type=duration, required=True, metavar="DURATION",
                   help="e.g. 7d, 12h, 30m, 90s or plain seconds")

    p = command("dashboard", "serve a web dashboard of the queues until SIGINT or SIGTERM")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=port, default=8765, help="TCP port (default: 8765; 0: any "
                   "free one)")
    p.add_argument("--read-only", action="store_true", help="no retry or cancel buttons")
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV) or None, metavar="SECRET",
                   help=f"a secret every request must carry (default: ${TOKEN_ENV}); needed "
                   "for a non-loopback --host")
    p.add_argument("--refresh", type=duration, default=5.0, metavar="DURATION",
                   help="how often pages refresh themselves (default: 5 s; 0: never)")

    p = command("backup", "copy the live database to PATH (online backup; safe while "
                "workers run)")
    p.add_argument("path", metavar="PATH")
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; a missing database is a usage error."""
    args = build().parse_args(list(argv))
    if not args.db:
        raise UsageError(f"{PROG}: no database: give --db PATH_OR_URL or set ${DB_ENV}")
    return args
