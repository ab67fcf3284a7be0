"""The live client learns fills from the user data stream (against the simulator), catches
up over REST after a reconnect, and polls only while the stream cannot be had."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from execution_helpers import API_KEY, API_SECRET, make_request

from algostream.execution.binance_client import BinanceCredentials, BinanceRestClient
from algostream.execution.retry import RetryPolicy
from algostream.execution.router import ExecutionRouter
from algostream.execution.user_stream import UserDataStream
from algostream.model import OrderEvent, OrderStatus, OrderType, Side
from algostream.sim import SimExchange, SimMarket, SimServer
from algostream.sim.trading import SIMULATOR_KEY, trading_setup

D = Decimal


@dataclass
class Live:
    server: SimServer
    router: ExecutionRouter
    client: BinanceRestClient
    events: list[OrderEvent] = field(default_factory=list)
    polls: int = 0

    def stream(self, ws_url: str | None = None, **kwargs: Any) -> UserDataStream:
        async def on_event(event: dict[str, Any]) -> None:
            self.events += self.router.on_user_event(event, 1)

        async def catch_up() -> None:
            self.events += await self.router.catch_up(1)

        async def poll() -> None:
            self.polls += 1
            await catch_up()

        kwargs.setdefault("on_poll", poll)
        return UserDataStream(
            self.client,
            ws_url or self.server.ws_url,
            on_event=on_event,
            on_connected=catch_up,
            backoff=RetryPolicy(attempts=3, base_delay_s=0.05, max_delay_s=0.1),
            poll_interval_s=0.05,
            **kwargs,
        )

    async def rest_sell_at_ask(self, coid: str) -> Decimal:
        """A LIMIT SELL resting at the best ask (filled when a bid crosses it)."""
        ask = self.server.exchange.market.book("BTCUSDT")[1][0][0]
        request = make_request(
            coid, side=Side.SELL, qty="0.01", order_type=OrderType.LIMIT, limit=str(ask)
        )
        placed = await self.router.submit(request, 1)
        assert [e.status for e in placed] == [OrderStatus.ACCEPTED]
        return ask

    def cross(self) -> None:
        """A bid one tick over the best ask: the resting SELL fills now, at that bid."""
        self.server.exchange.send_crossed("BTCUSDT")


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)  # polling a condition under a deadline


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    market = SimMarket.create(["BTCUSDT"], seed=9, levels=20)
    balances = {"BTC": D("1"), "USDT": D("10000")}
    setup = trading_setup(API_KEY, API_SECRET, balances=balances)
    server = SimServer(SimExchange(market, rate=0), setup=[setup])
    await server.start()
    async with httpx.AsyncClient() as http:
        creds = BinanceCredentials(api_key=API_KEY, api_secret=API_SECRET)
        client = BinanceRestClient(
            http,
            creds,
            base_url=server.http_url,
            rate_limit_per_second=1000,
            retry=RetryPolicy(attempts=2, base_delay_s=0.05, max_delay_s=0.1),
        )
        yield Live(server, ExecutionRouter(binance=client), client)
    await server.stop()


async def running(stream: UserDataStream) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def fills(live: Live) -> list[OrderEvent]:
    return [e for e in live.events if e.fill_qty > 0]


async def test_a_resting_order_filled_later_arrives_on_the_stream(live: Live) -> None:
    stream = live.stream()
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        ask = await live.rest_sell_at_ask("rest-1")
        assert fills(live) == []
        live.cross()
        await until(lambda: bool(fills(live)), "fill from the stream")
    fill = fills(live)[0]
    assert (fill.status, fill.fill_qty, fill.fill_price) == (
        OrderStatus.FILLED,
        D("0.01"),
        ask + D("0.01"),
    )
    assert fill.fee == fill.fill_price * D("0.01") * D("0.001") and fill.fee_currency == "USDT"
    assert fill.reason == "" and live.polls == 0  # an exact fill from the report, no polling
    assert stream.stats.events >= 3  # NEW, TRADE, outboundAccountPosition at least


async def test_a_fill_while_the_stream_is_down_is_caught_up_after_reconnect(live: Live) -> None:
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()  # the test decides when the reconnect may happen

    async def no_poll() -> None:  # only the reconnect's catch-up may find the fill
        live.polls += 1

    stream = live.stream(sleep=gated_sleep, on_poll=no_poll)
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        await live.rest_sell_at_ask("rest-2")
        await stream.drop()
        await until(lambda: stream.stats.drops == 1, "drop noticed")
        live.cross()  # the fill happens while nobody listens
        await asyncio.sleep(0)
        assert fills(live) == [] and not stream.live.is_set()
        gate.set()
        await until(lambda: bool(fills(live)), "caught up after reconnect")
        await until(stream.live.is_set, "stream up again")
    assert stream.stats.connects == 2
    fill = fills(live)[0]
    assert (fill.status, fill.fill_qty) == (OrderStatus.FILLED, D("0.01"))
    assert fill.reason.startswith("reconciled from venue order state")


async def test_polling_is_the_fallback_while_there_is_no_stream(live: Live) -> None:
    stream = live.stream(ws_url="ws://127.0.0.1:9")  # nothing listens there
    async for _ in running(stream):
        await live.rest_sell_at_ask("rest-3")
        live.cross()
        await until(lambda: bool(fills(live)), "fill found by polling")
    assert live.polls >= 1 and stream.stats.connects == 0
    assert fills(live)[0].status is OrderStatus.FILLED


async def test_stale_reports_after_a_catch_up_change_nothing(live: Live) -> None:
    await live.rest_sell_at_ask("rest-4")
    live.cross()
    caught = await live.router.catch_up(1)
    assert [e.status for e in caught] == [OrderStatus.FILLED]
    report: dict[str, Any] = {
        "e": "executionReport",
        "E": 5,
        "T": 5,
        "c": "rest-4",
        "C": "",
        "x": "TRADE",
        "X": "FILLED",
        "i": 1,
        "l": "0.01",
        "z": "0.01",
        "L": "1",
        "n": "0",
        "N": "USDT",
        "Z": "1",
    }
    assert live.router.on_user_event(report, 1) == []
    assert live.router.on_user_event({"e": "outboundAccountPosition", "B": []}, 1) == []


async def test_keepalive_extends_the_key_and_a_refused_one_reconnects(live: Live) -> None:
    sim = live.server.app[SIMULATOR_KEY]
    stream = live.stream(keepalive_s=0.05)
    async for _ in running(stream):
        await until(lambda: stream.stats.keepalives >= 2, "keepalives sent")
        (key,) = sim.listen_keys.live()
        sim.listen_keys.close({"listenKey": key})  # e.g. expired while we were away
        await until(lambda: stream.stats.connects == 2, "reconnected with a new key")
        await until(stream.live.is_set, "stream up again")
        assert sim.listen_keys.live() != [key]
        await live.rest_sell_at_ask("rest-5")
        live.cross()
        await until(lambda: bool(fills(live)), "fills flow on the new key")
    assert fills(live)[0].reason == ""


async def test_a_cancel_made_elsewhere_arrives_as_cancelled(live: Live) -> None:
    """Binance's report of a cancel names the cancel in ``c`` and the order in ``C``."""
    stream = live.stream()
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        await live.rest_sell_at_ask("rest-6")
        await live.client.cancel_order("BTCUSDT", "rest-6")  # not through the router
        await until(lambda: bool(live.events), "cancel from the stream")
    (event,) = live.events
    assert (event.client_order_id, event.status) == ("rest-6", OrderStatus.CANCELLED)
