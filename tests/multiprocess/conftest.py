"""The multi-process tests use the fault suite's worker processes and fixture."""

from __future__ import annotations

from ..faults.conftest import workers

__all__ = ["workers"]
