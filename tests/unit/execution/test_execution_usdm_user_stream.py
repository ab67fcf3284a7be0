"""The USD-M user data stream against the simulator (real HTTP and WebSocket servers):
``/fapi/v1/listenKey``, ``ORDER_TRADE_UPDATE`` fills with their commission exactly once
(a replayed trade changes nothing), ``ACCOUNT_UPDATE`` positions, a fill while the stream
is down caught up over REST after reconnect, and a key expiry answered with a new key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from execution_helpers import API_KEY, API_SECRET, StreamRig, running, until

from algostream.execution.binance_client import BinanceCredentials
from algostream.execution.retry import RetryPolicy
from algostream.execution.router import ExecutionRouter
from algostream.execution.usdm_client import UsdmRestClient
from algostream.execution.usdm_stream import UnknownUserEventError, check_event
from algostream.model import OrderStatus, Side
from algostream.sim import SimExchange, SimMarket, SimServer
from algostream.sim.server import apply_fault
from algostream.sim.usdm_trading import USDM_SIMULATOR_KEY, usdm_trading_setup

D = Decimal
PERP = "BINANCE_USDM:BTCUSDT"


@pytest.fixture
async def live() -> AsyncIterator[StreamRig]:
    market = SimMarket.create(["BTCUSDT"], seed=9, levels=20)
    server = SimServer(SimExchange(market, rate=0), setup=[usdm_trading_setup(API_KEY, API_SECRET)])
    await server.start()
    async with httpx.AsyncClient() as http:
        client = UsdmRestClient(
            http,
            BinanceCredentials(api_key=API_KEY, api_secret=API_SECRET),
            base_url=server.http_url,
            rate_limit_per_second=1000,
            retry=RetryPolicy(attempts=2, base_delay_s=0.05, max_delay_s=0.1),
        )
        yield StreamRig(
            server, ExecutionRouter(binance=client), client, instrument=PERP, futures=True
        )
    await server.stop()


async def test_listen_key_endpoints_follow_binance(live: StreamRig) -> None:
    key = await live.client.new_listen_key()
    assert len(key) == 60 and await live.client.new_listen_key() == key  # same while live
    await live.client.keepalive_listen_key(key)
    await live.client.close_listen_key(key)
    with pytest.raises(Exception, match="-1125"):
        await live.client.keepalive_listen_key(key)


async def test_a_resting_order_fills_on_the_stream_with_its_commission(live: StreamRig) -> None:
    stream = live.stream()
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        ask = await live.sell_at_ask("f-rest-1")
        assert live.fills() == []
        live.cross()
        await until(lambda: bool(live.fills()), "fill from the stream")
        await until(lambda: live.router.venue_account is not None, "ACCOUNT_UPDATE")
    (fill,) = live.fills()
    price = ask + D("0.01")  # the crossing bid, one tick over the ask
    assert (fill.status, fill.fill_qty, fill.fill_price) == (OrderStatus.FILLED, D("0.01"), price)
    assert fill.fee == price * D("0.01") * D("0.0004") and fill.fee_currency == "USDT"
    assert fill.reason == "" and live.polls == 0
    # every event carries the instrument's venue, as the market data does (not BINANCE)
    assert {e.venue for e in live.events} == {"BINANCE_USDM"}
    kinds = [e["e"] for e in live.raw]
    assert "ORDER_TRADE_UPDATE" in kinds and "ACCOUNT_UPDATE" in kinds
    account = live.router.venue_account
    assert account is not None and account.reason == "ORDER"
    (pos,) = account.positions
    assert (pos.symbol, pos.qty, pos.entry_price, pos.position_side) == (
        "BTCUSDT", D("-0.01"), price, "BOTH",
    )  # fmt: skip
    # the same trade again (a replayed frame after a reconnect) is not a second fill
    trade = next(e for e in live.raw if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE")
    assert live.router.on_user_event(trade, 2) == []


async def test_a_fill_while_the_stream_is_down_is_caught_up_once(live: StreamRig) -> None:
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()  # the test decides when the reconnect may happen

    async def no_poll() -> None:
        live.polls += 1

    stream = live.stream(sleep=gated_sleep, on_poll=no_poll)
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        await live.sell_at_ask("f-rest-2")
        await apply_fault(live.server.exchange, {"kind": "disconnect", "abrupt": True})
        await until(lambda: stream.stats.drops == 1, "drop noticed")
        live.cross()  # filled while nobody listens
        await asyncio.sleep(0)
        assert live.fills() == []
        gate.set()
        await until(lambda: bool(live.fills()), "caught up after reconnect")
        await until(stream.live.is_set, "stream up again")
    (fill,) = live.fills()
    assert (fill.status, fill.fill_qty) == (OrderStatus.FILLED, D("0.01"))
    assert fill.reason.startswith("reconciled from venue order state")
    assert stream.stats.connects == 2
    assert {e.venue for e in live.events} == {"BINANCE_USDM"}


async def test_an_expired_key_is_replaced(live: StreamRig) -> None:
    sim = live.server.app[USDM_SIMULATOR_KEY]
    stream = live.stream()
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        (first,) = sim.listen_keys.live()
        done = await apply_fault(live.server.exchange, {"kind": "expire_listen_keys"})
        assert done == {"kind": "expire_listen_keys", "expired": 1}
        await until(lambda: stream.stats.connects == 2, "reconnected with a new key")
        await until(stream.live.is_set, "up again")
        (second,) = sim.listen_keys.live()
        assert second != first
        await live.sell_at_ask("f-rest-3")  # the new key carries events
        live.cross()
        await until(lambda: bool(live.fills()), "fill on the new key")


def test_unknown_events_and_spot_events_on_futures_name_themselves() -> None:
    assert check_event({"e": "ORDER_TRADE_UPDATE"}, futures=True) == "ORDER_TRADE_UPDATE"
    with pytest.raises(UnknownUserEventError, match=r"'executionReport'.*USD-M"):
        check_event({"e": "executionReport"}, futures=True)
    with pytest.raises(UnknownUserEventError, match=r"'ACCOUNT_UPDATE'.*spot"):
        check_event({"e": "ACCOUNT_UPDATE"}, futures=False)
    with pytest.raises(UnknownUserEventError, match="None"):
        check_event({"x": 1}, futures=True)


async def test_a_venue_liquidation_order_reaches_the_events_as_liquidated(live: StreamRig) -> None:
    """Binance's own close (client id ``autoclose-*``, as its docs and ccxt describe it):
    no order of ours, yet its fill moves our position, so it becomes a fill event."""

    def update(x: str, status: str, last: str, cum: str, trade: int) -> dict[str, Any]:
        return {"e": "ORDER_TRADE_UPDATE", "E": 1700, "T": 1700, "o": {
            "s": "BTCUSDT", "c": "autoclose-1596107620040000020", "S": "BUY", "o": "LIMIT",
            "f": "IOC", "q": "0.02", "p": "31000", "ap": "31000" if trade else "0",
            "sp": "0", "x": x, "X": status, "i": 99, "l": last, "z": cum,
            "L": "31000" if trade else "0", "N": "USDT", "n": "0.3", "T": 1700, "t": trade,
            "R": True, "ps": "BOTH", "rp": "-20"}}  # fmt: skip

    router = ExecutionRouter(binance=live.client, venue="BINANCE_USDM", account="acct")
    (accepted,) = router.on_user_event(update("NEW", "NEW", "0", "0", 0), 1)
    assert accepted.status is OrderStatus.ACCEPTED
    events = router.on_user_event(update("TRADE", "PARTIALLY_FILLED", "0.01", "0.01", 5), 2)
    events += router.on_user_event(update("TRADE", "FILLED", "0.01", "0.02", 6), 3)
    events += router.on_user_event(update("TRADE", "FILLED", "0.01", "0.02", 6), 4)  # again
    fills = [e for e in events if e.fill_qty]
    assert [(e.side, e.fill_qty, e.fill_price, e.fee) for e in fills] == [
        (Side.BUY, D("0.01"), D(31000), D("0.3")),
        (Side.BUY, D("0.01"), D(31000), D("0.3")),
    ]
    assert all(e.reason.startswith("LIQUIDATED: the venue's order autoclose-") for e in fills)
    assert fills[-1].status is OrderStatus.FILLED
    assert {(e.instrument, e.account, e.strategy) for e in fills} == {(PERP, "acct", "liquidation")}


async def test_a_bad_event_is_a_dead_letter_naming_it_and_a_good_one_is_not(
    live: StreamRig,
) -> None:
    router = ExecutionRouter(binance=live.client, venue="BINANCE_USDM")
    events, letter = router.on_stream_event({"e": "NEW_THING", "E": 7}, 9, futures=True)
    assert events == [] and letter is not None
    assert (letter.source_topic, letter.offset, letter.error_type) == (
        "user_stream:binance_usdm", 7, "UnknownUserEventError",
    )  # fmt: skip
    assert "e='NEW_THING'" in letter.reason and '"NEW_THING"' in letter.payload
    # a known type with a broken field names the field
    broken = {"e": "ACCOUNT_UPDATE", "E": 8, "a": {"B": [{"a": "USDT", "wb": "x"}]}}
    _, letter = router.on_stream_event(broken, 9, futures=True)
    assert letter is not None and "wb='x'" in letter.reason
    # spot's event on the futures stream, and the reverse
    _, letter = router.on_stream_event({"e": "executionReport", "E": 1}, 9, futures=True)
    assert letter is not None and "USD-M" in letter.reason
    assert router.on_stream_event({"e": "MARGIN_CALL", "E": 1}, 9, futures=True) == ([], None)
