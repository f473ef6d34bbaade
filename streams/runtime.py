"""Process-wide settings of the commands that run the engine (replay, worker, benchmarks)."""

from __future__ import annotations

import gc

#: Young-generation threshold: the engine allocates many small, long-lived objects (consumer
#: states, timers), so the default (700) runs the cyclic collector every few events.
GC_THRESHOLD = (50_000, 20, 20)


def tune_gc() -> None:
    """Collect young garbage less often, and move what start-up allocated (modules, rules,
    Faust's objects) out of the collector's sight for good."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
