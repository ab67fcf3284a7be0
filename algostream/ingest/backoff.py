"""Capped, jittered exponential backoff for reconnects (pure; randomness injected).

>>> import random
>>> b = Backoff(base_ms=100, cap_ms=1000, rng=random.Random(1))
>>> [round(b.next_delay_s(), 3) <= 1.0 for _ in range(6)]
[True, True, True, True, True, True]
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay n is ``uniform(0.5, 1.0) * min(cap, base * 2**n)`` ("equal jitter")."""

    base_ms: int
    cap_ms: int
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay_s(self) -> float:
        ceiling = min(self.cap_ms, self.base_ms * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return float(ceiling * self.rng.uniform(0.5, 1.0)) / 1000.0

    def reset(self) -> None:
        self.attempt = 0
