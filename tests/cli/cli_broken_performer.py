"""A performer module that raises while it is imported (for the CLI tests)."""

from __future__ import annotations

raise RuntimeError("this module is broken on purpose\nsecond line")
