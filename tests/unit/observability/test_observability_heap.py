"""The garbage collector settings of the long-running processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from algostream.observability import heap, metrics


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if heap._timed in gc.callbacks:
        gc.callbacks.remove(heap._timed)


def test_settle_freezes_what_is_alive_and_raises_the_thresholds(restore_gc: None) -> None:
    kept = [[i] for i in range(100)]  # containers alive at the call
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == heap.THRESHOLDS
    assert heap.THRESHOLDS[0] > 700  # above Python's default


def test_watch_times_each_collection_by_generation(restore_gc: None) -> None:
    get = metrics.REGISTRY.get_sample_value
    labels = {"generation": "2"}
    before = get("algostream_gc_pause_seconds_count", labels) or 0.0
    heap.watch()
    heap.watch()  # once only
    gc.collect()
    assert get("algostream_gc_pause_seconds_count", labels) >= before + 1
    young = get("algostream_gc_pause_seconds_count", {"generation": "0"}) or 0.0
    gc.collect(0)
    assert get("algostream_gc_pause_seconds_count", {"generation": "0"}) >= young + 1
