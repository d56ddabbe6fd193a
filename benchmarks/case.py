"""Run one benchmark case in this process and print its result as JSON.

Usage: python benchmarks/case.py MODULE FUNCTION '{"n": 2000, ...}'
The suite (run.py) starts every case this way, in its own temporary folder.
"""

from __future__ import annotations

import importlib
import json
import sys

from _common import peak_rss_mb

MARKER = "RESULT "


def main(argv: list[str]) -> None:
    module, function, raw_args = argv[1], argv[2], argv[3] if len(argv) > 3 else "{}"
    fn = getattr(importlib.import_module(module), function)
    result = fn(**json.loads(raw_args))
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    print(MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
