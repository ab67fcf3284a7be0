"""The ingestor against the real simulator, in-process: what the Binance and Coinbase
adapter tests share (a rig per test, polling with a deadline)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from algostream.config import MarketDataConfig
from algostream.ingest.feed import Ingestor
from algostream.kafka.publisher import ListPublisher
from algostream.sim import SimExchange, SimMarket, SimServer

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@dataclass
class Rig:
    server: SimServer
    exchange: SimExchange
    market: SimMarket
    ingestor: Ingestor
    adapter: Any
    out: ListPublisher
    stop: asyncio.Event
    task: asyncio.Task[Any]


async def until(cond: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)  # poll interval, bounded by the deadline


async def launch(
    adapter_for: Callable[[MarketDataConfig], Any],
    path: str,
    out: ListPublisher | None = None,
    **cfg: Any,
) -> Rig:
    """A simulator (SYMBOLS, 300 events/s) and an ingestor reading ``ws://...{path}``
    through the adapter ``adapter_for`` makes of the config (``cfg``: its keys), publishing
    to ``out`` (a new :class:`ListPublisher` by default)."""
    market = SimMarket.create(SYMBOLS, 11, levels=40)
    exchange = SimExchange(market, rate=300)
    server = SimServer(exchange)
    port = await server.start()
    md = MarketDataConfig(
        **{
            "symbols": SYMBOLS,
            "websocket_url": f"ws://127.0.0.1:{port}{path}",
            "rest_url": f"http://127.0.0.1:{port}",
            "reconnect_delay_ms": 20,
            "max_reconnect_delay_ms": 200,
        }
        | cfg
    )
    adapter = adapter_for(md)
    out = out if out is not None else ListPublisher()
    ingestor = Ingestor(md, adapter, out, httpx.AsyncClient(timeout=5))
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    return Rig(server, exchange, market, ingestor, adapter, out, stop, task)


async def shut(r: Rig) -> None:
    r.stop.set()
    await asyncio.wait_for(r.task, 10)
    await r.ingestor.http.aclose()
    await r.server.stop()
