"""Shared timing helpers for the benchmarks (percentiles of per-call latencies)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    name: str
    n: int
    p50_us: float
    p99_us: float
    p999_us: float
    mean_us: float

    def row(self, target: str = "") -> str:
        return (
            f"| {self.name} | {self.n} | {self.p50_us:.1f} | {self.p99_us:.1f} | "
            f"{self.p999_us:.1f} | {self.mean_us:.1f} | {target} |"
        )


HEADER = (
    "| what | n | p50 µs | p99 µs | p99.9 µs | mean µs | target |\n|---|---|---|---|---|---|---|"
)


def summarize(name: str, samples_ns: list[int] | np.ndarray) -> Latency:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return Latency(
        name,
        int(arr.size),
        float(np.percentile(arr, 50)),
        float(np.percentile(arr, 99)),
        float(np.percentile(arr, 99.9)),
        float(arr.mean()),
    )


def time_calls(name: str, fn: Callable[[int], object], n: int, warmup: int = 200) -> Latency:
    """Call ``fn(i)`` ``n`` times (after a warm-up) and summarise per-call latency."""
    for i in range(warmup):
        fn(i)
    samples = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        fn(warmup + i)
        samples[i] = clock() - start
    return summarize(name, samples)
