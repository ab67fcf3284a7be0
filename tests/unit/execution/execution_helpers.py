"""Helpers for the execution tests: record factories, a fake clock, the venue handle."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from pydantic import SecretStr

from algostream.config import ExecutionConfig
from algostream.execution.binance_client import BinanceCredentials, BinanceRestClient
from algostream.execution.retry import RetryPolicy
from algostream.execution.router import ExecutionRouter
from algostream.model import BookTop, OrderRequest, OrderType, Side, TimeInForce
from algostream.sim.trading import TradingSimulator

D = Decimal
INSTRUMENT = "BINANCE:BTCUSDT"
API_KEY = "test-api-key-0123456789"
API_SECRET = "test-secret-must-never-leak-9876543210"
FILTERS = {
    "BTCUSDT": {
        "tickSize": "0.01",
        "stepSize": "0.001",
        "minQty": "0.001",
        "minNotional": "5",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
    },
}
Levels = list[tuple[Decimal, Decimal]]


def levels(*pairs: tuple[str, str]) -> Levels:
    return [(D(p), D(q)) for p, q in pairs]


def make_request(
    coid: str = "c1",
    side: Side = Side.BUY,
    qty: str = "1",
    order_type: OrderType = OrderType.MARKET,
    limit: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    mid: str | None = None,
    instrument: str = INSTRUMENT,
) -> OrderRequest:
    return OrderRequest(
        instrument=instrument,
        ts_event=1,
        ts_init=1,
        record_id=f"approved-{coid}",
        lineage_id=f"proposed-{coid}",
        account="paper",
        client_order_id=coid,
        strategy="test",
        side=side,
        order_type=order_type,
        quantity=qty,
        limit_price=limit,
        time_in_force=tif,
        arrival_mid=mid,
    )


def make_top(
    bids: Sequence[tuple[Decimal, Decimal]],
    asks: Sequence[tuple[Decimal, Decimal]],
    ts: int = 10,
    instrument: str = INSTRUMENT,
) -> BookTop:
    return BookTop(
        instrument=instrument,
        ts_event=ts,
        ts_init=ts,
        record_id=f"top-{ts}",
        lineage_id=f"book-{ts}",
        bids=tuple(bids),
        asks=tuple(asks),
        update_id=ts,
    )


@dataclass
class FakeClock:
    """Unix-ms clock shared by client and server; ``sleep`` advances it without waiting."""

    now: int = 1_700_000_000_000
    sleeps: list[float] = field(default_factory=list)

    def now_ms(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += int(seconds * 1000)
        await asyncio.sleep(0)


@dataclass
class StaticBook:
    """A book provider the test can move."""

    bids: Levels
    asks: Levels

    def __call__(self, symbol: str) -> tuple[Levels, Levels]:
        if symbol != "BTCUSDT":
            raise KeyError(symbol)
        return self.bids, self.asks


@dataclass
class Venue:
    sim: TradingSimulator
    url: str
    book: StaticBook
    clock: FakeClock


def make_client(
    http: httpx.AsyncClient,
    venue: Venue,
    *,
    attempts: int = 3,
    secret: str = API_SECRET,
    timeout_s: float = 2.0,
    max_weight_1m: int = 6000,
) -> BinanceRestClient:
    creds = BinanceCredentials(api_key=API_KEY, api_secret=secret)
    return BinanceRestClient(
        http,
        creds,
        base_url=venue.url,
        rate_limit_per_second=1000,
        retry=RetryPolicy(attempts=attempts, base_delay_s=0.1, max_delay_s=1.0),
        timeout_s=timeout_s,
        clock_ms=venue.clock.now_ms,
        sleep=venue.clock.sleep,
        rng=random.Random(7),
        max_weight_1m=max_weight_1m,
    )


def live_router(http: httpx.AsyncClient, venue: Venue) -> ExecutionRouter:
    """A live router on the venue simulator (fake clock, fast retries)."""
    config = ExecutionConfig(
        paper_trading=False,
        exchange_api_url=venue.url,
        api_key=SecretStr(API_KEY),
        api_secret=SecretStr(API_SECRET),
        retry_delay_ms=10,
        rate_limit_per_second=1000,
        request_timeout_ms=2000,
    )
    return ExecutionRouter.from_config(
        config, http, clock_ms=venue.clock.now_ms, sleep=venue.clock.sleep, rng=random.Random(1)
    )
