"""Sharding the symbol list over several ingestors (``algostream ingest --shard K/N`` or
``market_data.shard = "K/N"``).

Every shard is given the same symbol list; shard ``K`` of ``N`` (1-based) takes the
symbols at positions ``K-1, K-1+N, K-1+2N, ...`` of the list sorted and without
duplicates (upper case). So the ``N`` shards together take every symbol exactly once
(no overlap, no gap), their sizes differ by at most one, and the split does not depend on
the order the list was written in. Each shard is its own process with its own WebSocket
connection, reconnect backoff and snapshot requests, so the exchange's per-connection
limits (Binance: 1024 streams on one connection) apply to each shard's share.

>>> shard_symbols(["ethusdt", "BTCUSDT", "SOLUSDT", "ADAUSDT", "BTCUSDT"], "2/2")
('BTCUSDT', 'SOLUSDT')
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; raises ``ValueError`` naming the value otherwise."""
    m = _SPEC.match(spec)
    if m is None:
        raise ValueError(f"shard {spec!r}: expected K/N, e.g. 2/4 (shard 2 of 4)")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise ValueError(f"shard {spec!r}: K must be between 1 and N")
    return k, n


def shard_symbols(symbols: Iterable[str], spec: str | None) -> tuple[str, ...]:
    """The symbols shard ``spec`` ingests (all of them, sorted, when ``spec`` is None)."""
    every = sorted({s.strip().upper() for s in symbols})
    if spec is None:
        return tuple(every)
    k, n = parse_shard(spec)
    return tuple(every[k - 1 :: n])
