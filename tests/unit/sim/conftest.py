"""Fixtures for the simulator tests: real servers on 127.0.0.1 ephemeral ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from algostream.sim import SimExchange, SimMarket, SimServer

StartSim = Callable[..., Awaitable[SimServer]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Start simulators (stopped at teardown): ``await start_sim(rate=..., seed=...)``."""
    servers: list[SimServer] = []

    async def start(
        *,
        symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
        seed: int = 7,
        source: Any = None,
        **kwargs: Any,
    ) -> SimServer:
        market = source if source is not None else SimMarket.create(symbols, seed, levels=50)
        server = SimServer(SimExchange(market, **kwargs))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
