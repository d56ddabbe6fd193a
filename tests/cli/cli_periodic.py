"""A performer module declaring a periodic job, importable as ``cli_periodic:performer``."""

from __future__ import annotations

from queuetopia_lite import Performer

performer = Performer()
performer.register("beat", lambda job: None)
performer.periodic("beat", 1.0, "beats", "beat")  # the worker loads it with the module
