"""Retry policy: bounded attempts, exponential backoff with jitter; clock and sleep injected.

>>> import random
>>> p = RetryPolicy(attempts=3, base_delay_s=1.0, max_delay_s=10.0)
>>> d = p.delay(2, random.Random(1))
>>> 2.0 <= d <= 4.0
True
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from algostream.config import ExecutionConfig
from algostream.execution.errors import TransientError

T = TypeVar("T")

#: ``await sleep(seconds)``; ``asyncio.sleep`` in production, a fake clock in tests.
Sleep = Callable[[float], Awaitable[None]]
#: Wall clock in unix milliseconds.
ClockMs = Callable[[], int]


def wall_clock_ms() -> int:
    """The process wall clock in unix ms (the default, injected at the edge only)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` retries after the first try; delay ``base * 2**n`` capped, equal jitter."""

    attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0

    @classmethod
    def from_config(cls, config: ExecutionConfig) -> RetryPolicy:
        """Take ``retry_attempts`` and ``retry_delay_ms`` from the execution section."""
        return cls(attempts=config.retry_attempts, base_delay_s=config.retry_delay_ms / 1000)

    def delay(self, retry_index: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry_index`` (0-based): in [cap/2, cap]."""
        cap = min(self.max_delay_s, self.base_delay_s * float(2.0**retry_index))
        return cap / 2 + rng.uniform(0.0, cap / 2)

    def wait_s(self, retry_index: int, rng: random.Random, retry_after_s: float | None) -> float:
        """:meth:`delay`, but never less than the venue's ``Retry-After`` when it sent one."""
        delay = self.delay(retry_index, rng)
        return max(delay, retry_after_s) if retry_after_s is not None else delay


async def with_retries(
    send: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Sleep,
    rng: random.Random,
    *,
    limited: type[Exception],
    repeat: bool = True,
    resync: tuple[type[Exception], Callable[[], Awaitable[Any]]] | None = None,
) -> T:
    """``send()`` with at most ``policy.attempts`` retries: the venue clients' one loop.

    A ``limited`` error (the venue's 429/418, with its ``retry_after_s``) waits at least
    what the venue asked; a :class:`TransientError` (timeout, 5xx, connection: outcome
    unknown) is retried only if ``repeat`` (a request safe to send twice); ``resync``'s
    error (Binance -1021) runs its coroutine (the clock sync) before the retry. The last
    attempt's error is raised as it is.
    """
    retryable = (TransientError, limited) + ((resync[0],) if resync else ())
    for attempt in range(policy.attempts + 1):
        try:
            return await send()
        except retryable as exc:
            if attempt == policy.attempts or (isinstance(exc, TransientError) and not repeat):
                raise
            if resync is not None and isinstance(exc, resync[0]):
                await resync[1]()
            else:
                await sleep(policy.wait_s(attempt, rng, getattr(exc, "retry_after_s", None)))
    raise AssertionError("unreachable")  # pragma: no cover
