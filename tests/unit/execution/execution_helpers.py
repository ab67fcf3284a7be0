"""Helpers for the execution tests: record factories, a fake clock, the venue handle."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from aiohttp import web
from pydantic import SecretStr

from algostream.config import ExecutionConfig
from algostream.execution.binance_client import BinanceCredentials, BinanceRestClient
from algostream.execution.retry import RetryPolicy
from algostream.execution.router import ExecutionRouter
from algostream.execution.usdm_client import UsdmRestClient
from algostream.execution.usdm_stream import check_event
from algostream.execution.user_stream import UserDataStream
from algostream.model import (
    BookTop,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from algostream.sim import SimServer
from algostream.sim.trading import TradingSimulator
from algostream.sim.usdm_trading import UsdmTradingSimulator, add_usdm_trading_routes

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


@dataclass
class StreamRig:
    """A live router and its client on the simulator, fed by a :class:`UserDataStream`
    (spot: ``/ws``; USD-M: ``/fstream``, each event checked as the worker checks it)."""

    server: SimServer
    router: ExecutionRouter
    client: BinanceRestClient
    instrument: str = INSTRUMENT
    futures: bool = False
    events: list[OrderEvent] = field(default_factory=list)
    raw: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0

    def stream(self, ws_url: str | None = None, **kwargs: Any) -> UserDataStream:
        async def on_event(event: dict[str, Any]) -> None:
            if self.futures:
                check_event(event, futures=True)
            self.raw.append(event)
            self.events += self.router.on_user_event(event, 1)

        async def catch_up() -> None:
            self.events += await self.router.catch_up(1)

        async def poll() -> None:
            self.polls += 1
            await catch_up()

        kwargs.setdefault("on_poll", poll)
        default_url = self.server.ws_url + ("/fstream" if self.futures else "")
        return UserDataStream(
            self.client,
            ws_url or default_url,
            on_event=on_event,
            on_connected=catch_up,
            backoff=RetryPolicy(attempts=3, base_delay_s=0.05, max_delay_s=0.1),
            poll_interval_s=0.05,
            **kwargs,
        )

    async def sell_at_ask(self, coid: str) -> Decimal:
        """A LIMIT SELL resting at the best ask (filled when a bid crosses it)."""
        ask = self.server.exchange.market.book("BTCUSDT")[1][0][0]
        request = make_request(
            coid, side=Side.SELL, qty="0.01", order_type=OrderType.LIMIT, limit=str(ask),
            instrument=self.instrument,
        )  # fmt: skip
        placed = await self.router.submit(request, 1)
        assert [e.status for e in placed] == [OrderStatus.ACCEPTED]
        return ask

    def cross(self) -> None:
        """A bid one tick over the best ask: the resting SELL fills now, at that bid."""
        self.server.exchange.send_crossed("BTCUSDT")

    def fills(self) -> list[OrderEvent]:
        return [e for e in self.events if e.fill_qty > 0]


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait for ``check`` under a deadline (``what`` names it in the failure)."""
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.01)  # polling a condition under a deadline
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


async def running(stream: UserDataStream) -> AsyncIterator[asyncio.Task[None]]:
    """``async for _ in running(stream)``: the stream runs for the loop's body."""
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def usdm_sim_client(
    book: StaticBook, clock: FakeClock, **routes: Any
) -> AsyncIterator[tuple[UsdmTradingSimulator, UsdmRestClient]]:
    """The simulated USD-M trading routes (``routes``: their options beside a 10,000 USDT
    wallet) on a real HTTP server over ``book``, and a signed client of it on ``clock``."""
    app = web.Application()
    routes.setdefault("wallet", D("10000"))
    sim = add_usdm_trading_routes(app, book, API_KEY, API_SECRET, clock_ms=clock.now_ms, **routes)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with httpx.AsyncClient() as http:
            yield (
                sim,
                UsdmRestClient(
                    http,
                    BinanceCredentials(api_key=API_KEY, api_secret=API_SECRET),
                    base_url=f"http://{host}:{port}",
                    rate_limit_per_second=1000,
                    retry=RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.1),
                    clock_ms=clock.now_ms,
                    sleep=clock.sleep,
                    rng=random.Random(1),
                ),
            )
    finally:
        await runner.cleanup()
