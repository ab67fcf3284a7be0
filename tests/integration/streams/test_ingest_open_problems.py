"""An ingestor killed while an instrument was DISCONNECTED (or GAP) left the gate REDUCING:
its successor's first snapshot was "a first sync, not a recovery" and no RESYNCED came
(issue 28, item 1). A new ingestor reads the tail of ``book.integrity`` and keeps such
instruments degraded, so its first snapshot announces RESYNCED for them, and only them.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from algostream.config import load_settings
from algostream.ingest.feed import feed_event
from algostream.ingest.run import ingest, open_problems
from algostream.model import BookIntegrity, IntegrityKind
from algostream.sim import SimExchange, SimMarket, SimServer
from tests.kafka_kit import decoded, produce, read_until

BTC, ETH = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"


async def test_a_new_ingestor_clears_what_a_killed_one_left_open(
    provisioned: Any, kafka_env: dict[str, str]
) -> None:
    now = time.time_ns()
    earlier = [
        *feed_event(IntegrityKind.DISCONNECTED, [BTC, ETH], now, "connection lost"),
        *feed_event(IntegrityKind.RESYNCED, [ETH], now + 1, "live again"),
    ]
    await produce(provisioned, "book.integrity", [record for _, record in earlier])
    assert await open_problems(provisioned.kafka) == {BTC: IntegrityKind.DISCONNECTED}

    server = SimServer(SimExchange(SimMarket.create(("BTCUSDT", "ETHUSDT"), 7), rate=100))
    port = await server.start()
    s = load_settings(
        env=kafka_env
        | {
            "ALGOSTREAM__MARKET_DATA__SYMBOLS": json.dumps(["BTCUSDT", "ETHUSDT"]),
            "ALGOSTREAM__MARKET_DATA__WEBSOCKET_URL": f"ws://127.0.0.1:{port}/stream",
            "ALGOSTREAM__MARKET_DATA__REST_URL": f"http://127.0.0.1:{port}",
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(ingest(s, stop))
    try:

        def resynced(msgs: list[Any]) -> bool:
            events = decoded(msgs, BookIntegrity)
            return any(e.kind is IntegrityKind.RESYNCED and e.ts_init > now + 1 for e in events)  # type: ignore[attr-defined]

        msgs = await read_until(s, "book.integrity", resynced, timeout_s=60)
        # both books are live (tops need both snapshots): read on until ETH's snapshot too
        await read_until(s, "md.book", lambda m: len(m) > 50, timeout_s=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await server.stop()
    msgs = await read_until(s, "book.integrity", lambda m: False, timeout_s=2)
    new = [e for e in decoded(msgs, BookIntegrity) if e.ts_init > now + 1]
    assert [(e.instrument, e.kind) for e in new] == [(BTC, IntegrityKind.RESYNCED)], new  # type: ignore[attr-defined]
    assert await open_problems(provisioned.kafka) == {}
