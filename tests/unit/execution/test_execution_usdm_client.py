"""Signed ``/fapi/v1/order`` against the simulator's futures trading (real HTTP): shorts,
reduce-only, leverage, post-only (GTX), refusals with the venue's codes, safe retries,
and positions read back for reconciliation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal as D

import pytest
from execution_helpers import FakeClock, StaticBook, levels, usdm_sim_client

from algostream.execution.errors import BinanceError, OrderRejectedError
from algostream.execution.usdm_client import UsdmNewOrder, UsdmRestClient, venue_order_from_usdm
from algostream.model import OrderStatus, OrderType, Side, TimeInForce
from algostream.sim.usdm_trading import UsdmTradingSimulator


@dataclass
class Futures:
    sim: UsdmTradingSimulator
    client: UsdmRestClient
    book: StaticBook


@pytest.fixture
async def fut() -> AsyncIterator[Futures]:
    clock = FakeClock()
    book = StaticBook(bids=levels(("30000.0", "2")), asks=levels(("30000.5", "2")))
    async with usdm_sim_client(book, clock) as (sim, client):
        yield Futures(sim, client, book)


def new(
    coid: str, side: Side, qty: str, kind: OrderType = OrderType.MARKET, **kw: object
) -> UsdmNewOrder:
    return UsdmNewOrder("BTCUSDT", side, kind, D(qty), coid, **kw)  # type: ignore[arg-type]


async def test_a_sell_opens_a_short_and_positions_read_back(fut: Futures) -> None:
    await fut.client.set_leverage("BTCUSDT", 10)
    answer = await fut.client.new_order(new("f1", Side.SELL, "0.1"))
    venue = venue_order_from_usdm(answer)
    assert venue.status is OrderStatus.FILLED and venue.executed_qty == D("0.1")
    assert venue.cum_quote == D("3000.00")
    assert await fut.client.positions() == {"BTCUSDT": D("-0.1")}


async def test_venue_refusals_are_definite(fut: Futures) -> None:
    await fut.client.new_order(new("f1", Side.SELL, "0.1"))
    with pytest.raises(OrderRejectedError) as info:
        await fut.client.new_order(new("r1", Side.SELL, "0.1", reduce_only=True))
    assert info.value.code == -2022
    with pytest.raises(OrderRejectedError) as info:
        await fut.client.new_order(new("m1", Side.BUY, "20"))
    assert info.value.code == -2019
    with pytest.raises(BinanceError) as err:
        await fut.client.set_leverage("BTCUSDT", 150)
    assert err.value.code == -4028 and "150" in err.value.message
    with pytest.raises(OrderRejectedError) as info:
        await fut.client.new_order(new("g1", Side.BUY, "0.1", OrderType.LIMIT,
                                       price=D("30001"), post_only=True))  # fmt: skip
    assert info.value.code == -5022
    rests = await fut.client.new_order(new("g2", Side.BUY, "0.1", OrderType.LIMIT,
                                           price=D("29990"), post_only=True))  # fmt: skip
    assert rests["status"] == "NEW" and rests["timeInForce"] == "GTX"


@pytest.mark.parametrize("fault", ["5xx_after_place", "5xx_before"])
async def test_an_unknown_outcome_is_queried_and_never_placed_twice(
    fut: Futures, fault: str
) -> None:
    fut.sim.inject(fault)
    answer = await fut.client.new_order(new("u1", Side.SELL, "0.1"))
    assert answer["clientOrderId"] == "u1" and fut.sim.placements("u1") == 1
    assert await fut.client.positions() == {"BTCUSDT": D("-0.1")}


async def test_resting_limit_fills_when_the_book_crosses_and_cancels(fut: Futures) -> None:
    order = new("l1", Side.BUY, "0.1", OrderType.LIMIT, price=D("29990"),
                time_in_force=TimeInForce.GTC)  # fmt: skip
    assert (await fut.client.new_order(order))["status"] == "NEW"
    fut.book.asks = levels(("29989.0", "1"))
    found = await fut.client.query_order("BTCUSDT", "l1")
    assert found is not None and found["status"] == "FILLED"
    await fut.client.new_order(new("l2", Side.BUY, "0.1", OrderType.LIMIT, price=D("29000")))
    cancelled = await fut.client.cancel_order("BTCUSDT", "l2")
    assert venue_order_from_usdm(cancelled).status is OrderStatus.CANCELLED


async def test_positions_are_reconciled_with_the_venue_on_start(fut: Futures) -> None:
    from algostream.execution.futures import FuturesAccount, reconcile_positions

    await fut.client.new_order(new("p1", Side.SELL, "0.3"))
    local = FuturesAccount(wallet=D("10000"))
    local.fill("BINANCE_USDM:BTCUSDT", Side.SELL, D("0.1"), D("30000"))  # one fill missed
    (diff,) = reconcile_positions(local, await fut.client.positions())
    assert diff.instrument == "BINANCE_USDM:BTCUSDT"
    assert (diff.local, diff.venue) == (D("-0.1"), D("-0.3"))
    local.fill("BINANCE_USDM:BTCUSDT", Side.SELL, D("0.2"), D("30000"))
    assert reconcile_positions(local, await fut.client.positions()) == []


async def test_the_venue_liquidates_and_the_user_stream_says_so(fut: Futures) -> None:
    """The simulated venue closes an isolated long the mark has gone through with an
    ``autoclose-*`` order; its ``ORDER_TRADE_UPDATE``s make a LIQUIDATED fill event."""
    import orjson

    from algostream.execution.futures import MarginMode
    from algostream.execution.router import ExecutionRouter

    frames: list[dict[str, object]] = []
    fut.sim.listen_keys.publish = lambda key, frame: frames.append(orjson.loads(frame))
    await fut.client.new_listen_key()
    await fut.client.set_leverage("BTCUSDT", 10)
    fut.sim.account.position("BINANCE_USDM:BTCUSDT", mode=MarginMode.ISOLATED)
    await fut.client.new_order(new("long", Side.BUY, "1"))  # at 30000.5, margin 3000.05
    # P = (30000.5 - 3000.05) / (1 - 0.004) = 27109.09...: a mid of 27000.5 is through it
    fut.book.bids, fut.book.asks = levels(("27000", "2")), levels(("27001", "2"))
    assert await fut.client.positions("BTCUSDT") == {"BTCUSDT": D(0)}
    closes = [f for f in frames if f["e"] == "ORDER_TRADE_UPDATE"
              and str(f["o"]["c"]).startswith("autoclose-")]  # type: ignore[index]  # fmt: skip
    assert [f["o"]["x"] for f in closes] == ["NEW", "TRADE"]  # type: ignore[index]
    router = ExecutionRouter(binance=fut.client, venue="BINANCE_USDM")
    events = [e for f in closes for e in router.on_user_event(f, 1)]
    (fill,) = [e for e in events if e.fill_qty]
    assert (fill.side, fill.fill_qty) == (Side.SELL, D(1))
    assert fill.fill_price == (D("30000.5") - D("3000.05")) / D("0.996")
    assert fill.reason.startswith("LIQUIDATED: the venue's order autoclose-")
    account = [f for f in frames if f["e"] == "ACCOUNT_UPDATE"][-1]
    assert account["a"]["P"][0]["pa"] == "0"  # type: ignore[index]
