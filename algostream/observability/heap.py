"""The cyclic garbage collector in the long-running processes (workers, ingestor).

Measured on a market worker draining an ``md.book`` backlog (``gc.callbacks``): ~10% of
its time went to the collector, six full (generation 2) collections in ~5 s of ~50 ms
each, every one walking the whole heap built at start-up (Faust, aiokafka, the pydantic
models, the recovered tables: objects that live as long as the process), plus ~800 young
collections. Each full collection also stopped the event loop for those ~50 ms, a tail
latency of its own. The hot paths free what they allocate by reference counting; cycles
are rare. So, once a process has started (and after each rebalance, when a worker has
recovered its tables), :func:`settle` collects once and moves everything alive into the
permanent generation (``gc.freeze``: no later collection walks it again), and the
thresholds are raised so that young collections are rare (:data:`THRESHOLDS`; same-backlog
A/B in ``bench/BENCHMARKS.md``, profiling row 19).

:func:`watch` times every collection into ``algostream_gc_pause_seconds{generation}``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from algostream.observability import metrics

#: ``gc.set_threshold``: a young collection per 20,000 net allocations of container
#: objects (Python's default 700), older generations every 20 younger collections (10).
#: A drain of ~100,000 book updates then runs with no collection at all.
THRESHOLDS = (20_000, 20, 20)

_started: list[float] = []


def settle() -> None:
    """Collect, freeze what is alive (start-up and recovered state) and raise the
    thresholds. Called once a process is up, and again after each worker rebalance."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started.append(time.perf_counter())
    elif _started:
        metrics.GC_PAUSE_SECONDS.labels(generation=str(info["generation"])).observe(
            time.perf_counter() - _started.pop()
        )


def watch() -> None:
    """Time every collection of this process into ``algostream_gc_pause_seconds``."""
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)
