"""USD-M stop / take-profit orders and order modify, end to end on the simulator's
futures trading (a real HTTP server): STOP_MARKET, STOP, TAKE_PROFIT_MARKET and
TAKE_PROFIT with ``workingType`` (the simulated mark or last price triggers them),
``closePosition``, reduce-only; ``PUT /fapi/v1/order`` through the client and the router;
what the venue refuses is refused naming it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal as D

import pytest
from execution_helpers import FakeClock, StaticBook, levels, usdm_sim_client

from algostream.execution.errors import AmendRejectedError, BinanceError
from algostream.execution.router import ExecutionRouter
from algostream.execution.usdm_client import UsdmNewOrder, UsdmRestClient, venue_order_from_usdm
from algostream.model import OrderRequest, OrderStatus, OrderType, Side
from algostream.sim.usdm_trading import UsdmTradingSimulator

PERP = "BINANCE_USDM:BTCUSDT"


@dataclass
class Prices:
    """The simulated mark and last trade prices the test moves (None: the book's mid)."""

    mark: D | None = None
    last: D | None = None
    calls: list[str] = field(default_factory=list)

    def mark_of(self, symbol: str) -> D | None:
        self.calls.append("mark")
        return self.mark

    def last_of(self, symbol: str) -> D | None:
        self.calls.append("last")
        return self.last


@dataclass
class Fut:
    sim: UsdmTradingSimulator
    client: UsdmRestClient
    book: StaticBook
    prices: Prices
    router: ExecutionRouter


@pytest.fixture
async def fut() -> AsyncIterator[Fut]:
    clock = FakeClock()
    book = StaticBook(bids=levels(("30000.0", "2")), asks=levels(("30000.5", "2")))
    prices = Prices()
    async with usdm_sim_client(
        book, clock, mark_price=prices.mark_of, last_price=prices.last_of
    ) as (sim, client):
        router = ExecutionRouter(binance=client, venue="BINANCE_USDM")
        yield Fut(sim, client, book, prices, router)


def new(coid: str, side: Side, qty: str, kind: OrderType, **kw: object) -> UsdmNewOrder:
    return UsdmNewOrder("BTCUSDT", side, kind, D(qty), coid, **kw)  # type: ignore[arg-type]


def request(coid: str, side: Side, qty: str, kind: OrderType, **kw: object) -> OrderRequest:
    return OrderRequest(
        instrument=PERP, ts_event=1, ts_init=1, record_id=f"a-{coid}", lineage_id=f"p-{coid}",
        account="paper", client_order_id=coid, strategy="t", side=side, order_type=kind,
        quantity=D(qty), **kw,
    )  # fmt: skip


async def long(fut: Fut, qty: str = "0.1") -> None:
    answer = await fut.client.new_order(new("open", Side.BUY, qty, OrderType.MARKET))
    assert answer["status"] == "FILLED"


async def test_a_stop_market_on_the_mark_price_closes_a_long(fut: Fut) -> None:
    await long(fut)
    order = new("sl", Side.SELL, "0.1", OrderType.STOP_MARKET, stop_price=D(29000),
                reduce_only=True, working_type="MARK_PRICE")  # fmt: skip
    placed = await fut.client.new_order(order)
    assert (placed["status"], placed["type"], placed["workingType"]) == (
        "NEW", "STOP_MARKET", "MARK_PRICE"
    )  # fmt: skip
    assert placed["stopPrice"] == "29000" and placed["reduceOnly"] is True
    fut.prices.last = D(28000)  # the last price is through it: not what this one watches
    fut.sim.on_market_event()
    assert fut.sim.orders[2].status == "NEW"
    fut.prices.mark = D("28999.9")
    fut.sim.on_market_event()
    got = await fut.client.query_order("BTCUSDT", "sl")
    assert got is not None
    assert (got["status"], got["type"], got["origType"]) == ("FILLED", "MARKET", "STOP_MARKET")
    assert got["avgPrice"] == "30000.0"  # a market order on the book once triggered
    assert await fut.client.positions() == {"BTCUSDT": D("0")}


async def test_contract_price_take_profit_limit_works_as_a_limit(fut: Fut) -> None:
    await long(fut)
    order = new("tp", Side.SELL, "0.1", OrderType.TAKE_PROFIT_LIMIT, price=D(30100),
                stop_price=D(30050), reduce_only=True, working_type="CONTRACT_PRICE")  # fmt: skip
    placed = await fut.client.new_order(order)
    assert (placed["type"], placed["price"], placed["stopPrice"]) == (
        "TAKE_PROFIT",
        "30100",
        "30050",
    )
    fut.prices.mark = D(31000)  # the mark is through it: not what this one watches
    fut.sim.on_market_event()
    assert fut.sim.orders[2].working_as is None
    fut.prices.last = D(30060)  # triggered: a SELL LIMIT at 30100 rests (bid 30000)
    fut.sim.on_market_event()
    assert (fut.sim.orders[2].working_as, fut.sim.orders[2].status) == ("LIMIT", "NEW")
    fut.book.bids = levels(("30100.0", "1"))
    fut.sim.on_market_event()
    assert fut.sim.orders[2].status == "FILLED"
    assert fut.sim.orders[2].fills == [(D("30100.0"), D("0.1"))]  # at its limit, not lower


async def test_close_position_takes_the_whole_position_when_triggered(fut: Fut) -> None:
    await long(fut, "0.3")
    order = new("cp", Side.SELL, "0", OrderType.STOP_MARKET, stop_price=D(29000),
                close_position=True)  # fmt: skip
    placed = await fut.client.new_order(order)
    assert placed["closePosition"] is True and placed["origQty"] == "0"
    fut.prices.last = D(28900)  # CONTRACT_PRICE, the default
    fut.sim.on_market_event()
    assert fut.sim.orders[2].status == "FILLED" and fut.sim.orders[2].qty == D("0.3")
    assert await fut.client.positions() == {"BTCUSDT": D("0")}


async def test_a_stop_that_would_trigger_at_once_is_refused(fut: Fut) -> None:
    fut.prices.last = D(31500)  # a buy stop at 31000 below the last price: it would fire now
    with pytest.raises(BinanceError) as info:
        await fut.client.new_order(
            new("x", Side.BUY, "0.1", OrderType.STOP_MARKET, stop_price=D(31000))
        )
    assert info.value.code == -2021 and "immediately trigger" in info.value.message
    assert not fut.sim.orders


async def test_close_position_with_a_limit_type_is_refused_before_sending(fut: Fut) -> None:
    order = new("x", Side.SELL, "0", OrderType.STOP_LIMIT, price=D(1), stop_price=D(2),
                close_position=True)  # fmt: skip
    with pytest.raises(Exception, match="closePosition with order_type=STOP_LIMIT"):
        order.params()


async def test_the_router_sends_stop_types_with_the_configured_working_type(fut: Fut) -> None:
    await long(fut)
    fut.client.working_type = "MARK_PRICE"
    sl = request("rsl", Side.SELL, "0.1", OrderType.STOP_MARKET, stop_price=D(29500),
                 reduce_only=True)  # fmt: skip
    events = await fut.router.submit(sl, 5)
    assert [e.status for e in events] == [OrderStatus.ACCEPTED]
    assert fut.sim.orders[2].working_type == "MARK_PRICE"
    fut.prices.mark = D(29400)
    fut.sim.on_market_event()
    events = await fut.router.refresh("rsl", 6)
    assert [(e.status, e.fill_qty) for e in events] == [
        (OrderStatus.TRIGGERED, D(0)), (OrderStatus.FILLED, D("0.1"))
    ]  # fmt: skip


async def test_modify_moves_a_limit_order_and_a_crossing_price_fills(fut: Fut) -> None:
    buy = request("lim", Side.BUY, "0.1", OrderType.LIMIT, limit_price=D(29000))
    assert [e.status for e in await fut.router.submit(buy, 1)] == [OrderStatus.ACCEPTED]
    events = await fut.router.amend("lim", 2, price=D(29500), quantity=D("0.2"))
    assert [e.status for e in events] == [OrderStatus.ACCEPTED]
    assert (events[0].limit_price, events[0].quantity) == (D(29500), D("0.2"))
    assert "amended: price 29000 -> 29500" in events[0].reason
    assert (fut.sim.orders[1].price, fut.sim.orders[1].qty) == (D(29500), D("0.2"))
    events = await fut.router.amend("lim", 3, price=D(30600))  # crosses the ask
    assert [(e.status, e.fill_price) for e in events] == [
        (OrderStatus.ACCEPTED, None), (OrderStatus.FILLED, D("30000.5"))
    ]  # fmt: skip
    assert venue_order_from_usdm(fut.sim.orders[1].as_json()).executed_qty == D("0.2")


async def test_an_edit_the_venue_cannot_make_is_refused_naming_it(fut: Fut) -> None:
    await long(fut)
    sl = request("s", Side.SELL, "0.1", OrderType.STOP_MARKET, stop_price=D(29000),
                 reduce_only=True)  # fmt: skip
    await fut.router.submit(sl, 1)
    with pytest.raises(AmendRejectedError, match="order_type=STOP_MARKET"):
        await fut.router.amend("s", 2, price=D(28000))
    with pytest.raises(BinanceError) as info:  # the venue says so too
        await fut.client.modify_order("BTCUSDT", "s", Side.SELL, D("0.1"), D(28000))
    assert info.value.code == -4145 and "STOP_MARKET" in info.value.message
    buy = request("b", Side.BUY, "0.1", OrderType.LIMIT, limit_price=D(29000))
    await fut.router.submit(buy, 3)
    # nothing to change (-5027: an earlier attempt did it): the order as it is
    same = await fut.client.modify_order("BTCUSDT", "b", Side.BUY, D("0.1"), D(29000))
    assert (same["status"], same["price"]) == ("NEW", "29000")
    with pytest.raises(AmendRejectedError, match="the order is unknown"):
        await fut.router.amend("nobody", 4, price=D(1))
