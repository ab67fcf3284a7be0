"""A simulator serving market data and the trading API on 127.0.0.1, with a fresh account,
for third-party clients (ccxt, python-binance, plain websockets) to drive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from algostream.sim import SimExchange, SimMarket, SimServer
from algostream.sim.trading import SIMULATOR_KEY, TradingSimulator, trading_setup

KEY = "conformanceKey0123456789abcdefABCDEF0123456789abcdefABCDEF012345"
SECRET = "conformanceSecret0123456789abcdefABCDEF0123456789abcdefABCDEF01"
BALANCES = {"USDT": Decimal("100000"), "BTC": Decimal("2"), "ETH": Decimal("10")}
FEE = Decimal("0.001")


@dataclass
class Venue:
    server: SimServer
    sim: TradingSimulator

    @property
    def api(self) -> str:
        """The REST base as ccxt wants it (``.../api/v3``)."""
        return f"{self.server.http_url}/api/v3"

    def best(self, symbol: str = "BTCUSDT") -> tuple[Decimal, Decimal]:
        """(best bid, best ask) now."""
        bids, asks = self.server.exchange.market.book(symbol)
        return bids[0][0], asks[0][0]


@asynccontextmanager
async def running_venue(events: int = 3000, **exchange: Any) -> AsyncIterator[Venue]:
    """A paused synthetic market (``events`` generated up front, so trades and klines
    exist) with the trading API on; nothing moves unless the test moves it."""
    market = SimMarket.create(["BTCUSDT", "ETHUSDT"], seed=21, levels=30)
    ex = SimExchange(market, rate=0, **exchange)
    ex.emit_events(events)
    server = SimServer(ex, setup=[trading_setup(KEY, SECRET, balances=dict(BALANCES))])
    await server.start()
    try:
        yield Venue(server, server.app[SIMULATOR_KEY])
    finally:
        await server.stop()
