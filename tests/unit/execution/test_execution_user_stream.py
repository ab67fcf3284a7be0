"""The live client learns fills from the user data stream (against the simulator), catches
up over REST after a reconnect, and polls only while the stream cannot be had."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from execution_helpers import API_KEY, API_SECRET, StreamRig, running, until

from algostream.execution.binance_client import BinanceCredentials, BinanceRestClient
from algostream.execution.retry import RetryPolicy
from algostream.execution.router import ExecutionRouter
from algostream.model import OrderStatus
from algostream.sim import SimExchange, SimMarket, SimServer
from algostream.sim.trading import SIMULATOR_KEY, trading_setup

D = Decimal


@pytest.fixture
async def live() -> AsyncIterator[StreamRig]:
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
        yield StreamRig(server, ExecutionRouter(binance=client), client)
    await server.stop()


async def test_a_resting_order_filled_later_arrives_on_the_stream(live: StreamRig) -> None:
    stream = live.stream()
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        ask = await live.sell_at_ask("rest-1")
        assert live.fills() == []
        live.cross()
        await until(lambda: bool(live.fills()), "fill from the stream")
    fill = live.fills()[0]
    assert (fill.status, fill.fill_qty, fill.fill_price) == (
        OrderStatus.FILLED,
        D("0.01"),
        ask + D("0.01"),
    )
    assert fill.fee == fill.fill_price * D("0.01") * D("0.001") and fill.fee_currency == "USDT"
    assert fill.reason == "" and live.polls == 0  # an exact fill from the report, no polling
    assert stream.stats.events >= 3  # NEW, TRADE, outboundAccountPosition at least


async def test_a_fill_while_the_stream_is_down_is_caught_up_after_reconnect(
    live: StreamRig,
) -> None:
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()  # the test decides when the reconnect may happen

    async def no_poll() -> None:  # only the reconnect's catch-up may find the fill
        live.polls += 1

    stream = live.stream(sleep=gated_sleep, on_poll=no_poll)
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        await live.sell_at_ask("rest-2")
        await stream.drop()
        await until(lambda: stream.stats.drops == 1, "drop noticed")
        live.cross()  # the fill happens while nobody listens
        await asyncio.sleep(0)
        assert live.fills() == [] and not stream.live.is_set()
        gate.set()
        await until(lambda: bool(live.fills()), "caught up after reconnect")
        await until(stream.live.is_set, "stream up again")
    assert stream.stats.connects == 2
    fill = live.fills()[0]
    assert (fill.status, fill.fill_qty) == (OrderStatus.FILLED, D("0.01"))
    assert fill.reason.startswith("reconciled from venue order state")


async def test_polling_is_the_fallback_while_there_is_no_stream(live: StreamRig) -> None:
    stream = live.stream(ws_url="ws://127.0.0.1:9")  # nothing listens there
    async for _ in running(stream):
        await live.sell_at_ask("rest-3")
        live.cross()
        await until(lambda: bool(live.fills()), "fill found by polling")
    assert live.polls >= 1 and stream.stats.connects == 0
    assert live.fills()[0].status is OrderStatus.FILLED


async def test_stale_reports_after_a_catch_up_change_nothing(live: StreamRig) -> None:
    await live.sell_at_ask("rest-4")
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


async def test_keepalive_extends_the_key_and_a_refused_one_reconnects(live: StreamRig) -> None:
    sim = live.server.app[SIMULATOR_KEY]
    stream = live.stream(keepalive_s=0.05)
    async for _ in running(stream):
        await until(lambda: stream.stats.keepalives >= 2, "keepalives sent")
        (key,) = sim.listen_keys.live()
        sim.listen_keys.close({"listenKey": key})  # e.g. expired while we were away
        await until(lambda: stream.stats.connects == 2, "reconnected with a new key")
        await until(stream.live.is_set, "stream up again")
        assert sim.listen_keys.live() != [key]
        await live.sell_at_ask("rest-5")
        live.cross()
        await until(lambda: bool(live.fills()), "fills flow on the new key")
    assert live.fills()[0].reason == ""


async def test_a_cancel_made_elsewhere_arrives_as_cancelled(live: StreamRig) -> None:
    """Binance's report of a cancel names the cancel in ``c`` and the order in ``C``."""
    stream = live.stream()
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        await live.sell_at_ask("rest-6")
        await live.client.cancel_order("BTCUSDT", "rest-6")  # not through the router
        await until(lambda: bool(live.events), "cancel from the stream")
    (event,) = live.events
    assert (event.client_order_id, event.status) == ("rest-6", OrderStatus.CANCELLED)
