"""OCO, bracket and cancel-replace over the paper broker: each leg's lifecycle, one
cancelling the other, exits released after the entry, refusals named."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from execution_helpers import INSTRUMENT, levels, live_router, make_top

from algostream.execution.errors import ExecutionError
from algostream.execution.order_lists import OrderLists
from algostream.execution.paper import PaperBroker
from algostream.model import OrderRequest, OrderType, Side, TradeTick


def request(coid: str, side: Side, kind: OrderType, qty: str = "1", **kw: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "instrument": INSTRUMENT, "ts_event": 1, "ts_init": 1, "record_id": f"a-{coid}",
        "lineage_id": f"p-{coid}", "account": "paper", "client_order_id": coid,
        "strategy": "s", "side": side, "order_type": kind, "quantity": qty,
    } | kw  # fmt: skip
    return OrderRequest(**fields)


def lists_at(bid: str, ask: str) -> OrderLists:
    lists = OrderLists(PaperBroker(fee_rate=D("0")))
    lists.on_book_top(make_top(levels((bid, "5")), levels((ask, "5")), 1))
    return lists


def seen(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.client_order_id, e.status.value) for e in events]


def test_oco_fill_of_one_leg_cancels_the_other() -> None:
    lists = lists_at("99.5", "100.5")
    tp = request("o-tp", Side.SELL, OrderType.LIMIT, limit_price="103")
    sl = request("o-sl", Side.SELL, OrderType.STOP_MARKET, stop_price="97")
    assert seen(lists.submit_oco("o1", tp, sl, 2)) == [("o-tp", "ACCEPTED"), ("o-sl", "ACCEPTED")]
    events = lists.on_book_top(make_top(levels(("96.5", "5")), levels(("97.0", "5")), 3))
    assert seen(events) == [("o-sl", "TRIGGERED"), ("o-sl", "FILLED"), ("o-tp", "CANCELLED")]
    assert events[-1].reason == "OCO: o-sl filled" and lists.open_lists() == []


def test_a_partial_fill_cancels_the_other_leg_too() -> None:
    lists = lists_at("99.5", "100.5")
    a = request("p-a", Side.SELL, OrderType.LIMIT, qty="2", limit_price="101")
    b = request("p-b", Side.SELL, OrderType.STOP_MARKET, qty="2", stop_price="95")
    lists.submit_oco("p1", a, b, 2)
    trade = TradeTick(instrument=INSTRUMENT, ts_event=3, ts_init=3, record_id="t", lineage_id="r",
                      trade_id="1", price="101.5", size="1", aggressor_side=Side.BUY)  # fmt: skip
    events = lists.on_trade(trade)
    assert seen(events) == [("p-a", "PARTIALLY_FILLED"), ("p-b", "CANCELLED")]


def test_bracket_releases_exits_after_the_entry_and_they_are_oco() -> None:
    lists = lists_at("99.5", "100.5")
    entry = request("b1", Side.BUY, OrderType.MARKET, qty="2")
    events = lists.submit_bracket(entry, D("104"), D("98"), 2)
    assert seen(events) == [("b1", "ACCEPTED"), ("b1", "FILLED"), ("b1-tp", "ACCEPTED"),
                            ("b1-sl", "ACCEPTED")]  # fmt: skip
    tp = lists.broker.get("b1-tp")
    assert tp is not None and tp.request.quantity == D("2") and tp.request.reduce_only
    assert tp.request.side is Side.SELL and tp.request.limit_price == D("104")
    events = lists.on_book_top(make_top(levels(("104.2", "5")), levels(("104.4", "5")), 3))
    assert seen(events) == [("b1-tp", "FILLED"), ("b1-sl", "CANCELLED")]


def test_a_bracket_whose_entry_never_fills_drops_its_exits() -> None:
    lists = lists_at("99.5", "100.5")
    entry = request("b2", Side.BUY, OrderType.LIMIT, limit_price="95")
    lists.submit_bracket(entry, D("104"), D("90"), 2)
    assert seen(lists.cancel_list("b2", 3)) == [("b2", "CANCELLED")]
    assert lists.broker.get("b2-tp") is None and lists.open_lists() == []


def test_a_bracket_must_bracket_its_entry() -> None:
    lists = lists_at("99.5", "100.5")
    with pytest.raises(ExecutionError, match="do not bracket a BUY entry"):
        lists.submit_bracket(request("b3", Side.BUY, OrderType.MARKET), D("98"), D("104"), 2)


def test_cancel_replace_moves_an_open_order_and_refuses_a_filled_one() -> None:
    lists = lists_at("99.5", "100.5")
    lists.broker.submit(request("r1", Side.BUY, OrderType.LIMIT, limit_price="98"), 2)
    new = request("r2", Side.BUY, OrderType.LIMIT, limit_price="99")
    assert seen(lists.cancel_replace("r1", new, 3)) == [("r1", "CANCELLED"), ("r2", "ACCEPTED")]
    lists.broker.submit(request("r3", Side.BUY, OrderType.MARKET), 4)  # filled at once
    (refused,) = lists.cancel_replace("r3", request("r4", Side.BUY, OrderType.MARKET), 5)
    assert refused.status.value == "REJECTED" and "'r3' is FILLED, not replaced" in refused.reason
    # never placed; remembered as REJECTED, so a replayed request is not answered twice
    r4 = lists.broker.get("r4")
    assert r4 is not None and r4.status.value == "REJECTED" and not r4.is_open
    assert lists.cancel_replace("r3", request("r4", Side.BUY, OrderType.MARKET), 6) == []


async def test_live_cancel_replace_through_the_router(http: Any, venue: Any) -> None:
    router = live_router(http, venue)
    old = request("lr1", Side.BUY, OrderType.LIMIT, limit_price="99.00")
    await router.submit(old, 5)
    new = request("lr2", Side.BUY, OrderType.LIMIT, limit_price="99.50")
    assert seen(await router.replace("lr1", new, 6)) == [("lr1", "CANCELLED"), ("lr2", "ACCEPTED")]
    (refused,) = await router.replace("lr1", request("lr3", Side.BUY, OrderType.MARKET), 7)
    assert refused.status.value == "REJECTED" and "'lr1' is CANCELLED" in refused.reason
    assert venue.sim.placements("lr3") == 0
