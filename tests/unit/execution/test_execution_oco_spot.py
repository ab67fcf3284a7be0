"""Binance spot's native OCO (``POST /api/v3/orderList/oco``) from an approved OCO order,
end to end on the simulated venue (a real HTTP server): both legs tracked with the list
id, the venue expiring one when the other is activated, safe retries, refusals named."""

from __future__ import annotations

from decimal import Decimal as D

import httpx
from execution_helpers import Venue, levels, live_router, make_client

from algostream.execution.binance_client import NewOco
from algostream.model import OrderRequest, OrderStatus, OrderType, Side
from algostream.sim.trading import FaultKind

S = OrderStatus


def oco(
    coid: str = "oco1", side: Side = Side.SELL, tp: str = "101", sl: str = "99"
) -> OrderRequest:
    return OrderRequest(
        instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=1, record_id=f"approved-{coid}",
        lineage_id=f"proposed-{coid}", account="paper", client_order_id=coid, strategy="t",
        side=side, order_type=OrderType.LIMIT, quantity=D("0.5"), limit_price=D(tp),
        order_list="OCO", take_profit=D(tp), stop_loss=D(sl), reduce_only=True,
    )  # fmt: skip


def statuses(events: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(e.client_order_id, e.status.value) for e in events]


async def test_an_oco_places_both_legs_at_once(venue: Venue, http: httpx.AsyncClient) -> None:
    router = live_router(http, venue)
    events = await router.submit(oco(), now_ns=5)
    assert statuses(events) == [("oco1-tp", "ACCEPTED"), ("oco1-sl", "ACCEPTED")]
    assert {e.list_id for e in events} == {"oco1"}
    assert venue.sim.requests.count(("POST", "/api/v3/orderList/oco")) == 1
    placed = sorted(venue.sim.orders.values(), key=lambda o: o.order_id)
    assert [(o.type, o.order_list_id) for o in placed] == [("LIMIT_MAKER", 1), ("STOP_LOSS", 1)]
    assert await router.submit(oco(), now_ns=6) == []  # a replayed approval: nothing sent


async def test_the_stop_triggers_and_the_venue_expires_the_take_profit(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    router = live_router(http, venue)
    await router.submit(oco(), now_ns=5)
    venue.book.bids = levels(("98.90", "5"))
    venue.book.asks = levels(("99.00", "5"))
    events = await router.catch_up(now_ns=7)
    assert statuses(events) == [
        ("oco1-tp", "EXPIRED"), ("oco1-sl", "TRIGGERED"), ("oco1-sl", "FILLED")
    ]  # fmt: skip
    fill = events[2]
    assert (fill.fill_price, fill.fill_qty, fill.list_id) == (D("98.90"), D("0.5"), "oco1")
    assert all(not o.is_open for o in venue.sim.orders.values())


async def test_the_take_profit_fills_and_the_stop_expires(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    router = live_router(
        http,
        venue,
    )
    await router.submit(oco(side=Side.BUY, tp="99", sl="101.5"), now_ns=5)
    buy = sorted(venue.sim.orders.values(), key=lambda o: o.order_id)
    assert [o.type for o in buy] == ["STOP_LOSS", "LIMIT_MAKER"]  # a BUY's stop is above
    venue.book.asks = levels(("98.50", "5"))
    venue.book.bids = levels(("98.40", "5"))
    events = await router.catch_up(now_ns=7)
    assert statuses(events) == [("oco1-tp", "FILLED"), ("oco1-sl", "EXPIRED")]


async def test_prices_on_the_wrong_side_are_refused_naming_why(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    events = await live_router(http, venue).submit(oco(tp="99.5", sl="99"), now_ns=5)
    assert statuses(events) == [("oco1-tp", "REJECTED"), ("oco1-sl", "REJECTED")]
    assert "-2010" in events[0].reason and "relationship of the prices" in events[0].reason
    assert not venue.sim.orders


async def test_an_unknown_outcome_is_found_by_the_legs_ids_not_sent_twice(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.ERROR_AFTER_PLACE)
    events = await live_router(http, venue).submit(oco(), now_ns=5)
    assert statuses(events) == [("oco1-tp", "ACCEPTED"), ("oco1-sl", "ACCEPTED")]
    assert venue.sim.requests.count(("POST", "/api/v3/orderList/oco")) == 1
    assert len(venue.sim.orders) == 2


async def test_the_client_sends_binance_s_documented_parameters(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    client = make_client(http, venue)
    legs = await client.new_oco(
        NewOco("BTCUSDT", Side.SELL, D("0.5"), "L", "L-tp", D(102), "L-sl", D(98))
    )
    assert [(x["clientOrderId"], x["type"], x["orderListId"]) for x in legs] == [
        ("L-tp", "LIMIT_MAKER", 1), ("L-sl", "STOP_LOSS", 1)
    ]  # fmt: skip
    assert legs[1]["stopPrice"] == "98.00000000"


async def test_a_bracket_entry_then_its_exits_as_one_native_oco(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    router = live_router(http, venue)
    entry = OrderRequest(
        instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=1, record_id="a-bk",
        lineage_id="p-bk", account="paper", client_order_id="bk", strategy="t",
        side=Side.BUY, order_type=OrderType.MARKET, quantity=D("0.5"),
        order_list="BRACKET", take_profit=D(102), stop_loss=D(98),
    )  # fmt: skip
    events = await router.submit(entry, now_ns=5)
    assert statuses(events) == [
        ("bk", "ACCEPTED"), ("bk", "FILLED"), ("bk-tp", "ACCEPTED"), ("bk-sl", "ACCEPTED")
    ]  # fmt: skip
    assert venue.sim.requests.count(("POST", "/api/v3/orderList/oco")) == 1
    legs = sorted(venue.sim.orders.values(), key=lambda o: o.order_id)[1:]
    assert [(o.type, o.side, o.orig_qty, o.order_list_id) for o in legs] == [
        ("LIMIT_MAKER", "SELL", D("0.5"), 1), ("STOP_LOSS", "SELL", D("0.5"), 1)
    ]  # fmt: skip
