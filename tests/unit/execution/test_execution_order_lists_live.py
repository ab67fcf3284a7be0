"""OCO and bracket lists on live venues without a native OCO (USD-M futures; Coinbase),
end to end on the simulators (real HTTP): the execution stage places both legs and
cancels one when the other fills, places a bracket's exits once its entry has filled,
and after a restart rebuilds the lists from ``orders.approved`` / ``orders.events`` and
finishes what the restart interrupted."""

from __future__ import annotations

from decimal import Decimal as D

import httpx
from execution_helpers import StaticBook, levels, make_request
from test_execution_coinbase import INSTRUMENT, Coinbase, client, http, venue
from test_execution_coinbase_edit import router as coinbase_router
from test_execution_usdm_order_types import Fut, fut, long

from algostream.execution.reconcile import rebuild_local
from algostream.execution.router import ExecutionRouter
from algostream.model import OrderEvent, OrderRequest, OrderStatus, OrderType, Side

__all__ = ["client", "fut", "http", "venue"]  # fixtures shared with those modules

PERP = "BINANCE_USDM:BTCUSDT"
S = OrderStatus


def bracket(coid: str = "br", entry: OrderType = OrderType.MARKET, **kw: object) -> OrderRequest:
    fields: dict[str, object] = {
        "instrument": PERP, "ts_event": 1, "ts_init": 1, "record_id": f"a-{coid}",
        "lineage_id": f"p-{coid}", "account": "paper", "client_order_id": coid,
        "strategy": "t", "side": Side.BUY, "order_type": entry, "quantity": D("0.1"),
        "order_list": "BRACKET", "take_profit": D(30500), "stop_loss": D(29500),
    } | kw  # fmt: skip
    return OrderRequest.model_validate(fields)


def oco(
    coid: str = "oc", instrument: str = PERP, tp: str = "30500", sl: str = "29500"
) -> OrderRequest:
    return OrderRequest(
        instrument=instrument, ts_event=1, ts_init=1, record_id=f"a-{coid}",
        lineage_id=f"p-{coid}", account="paper", client_order_id=coid, strategy="t",
        side=Side.SELL, order_type=OrderType.LIMIT, quantity=D("0.1"), limit_price=D(tp),
        order_list="OCO", take_profit=D(tp), stop_loss=D(sl), reduce_only=True,
    )  # fmt: skip


def seen(events: list[OrderEvent]) -> list[tuple[str, str]]:
    return [(e.client_order_id, e.status.value) for e in events]


async def test_an_emulated_oco_cancels_the_stop_when_the_take_profit_fills(fut: Fut) -> None:
    await long(fut)
    events = await fut.router.submit(oco(), 1)
    assert seen(events) == [("oc-sl", "ACCEPTED"), ("oc-tp", "ACCEPTED")]  # the stop first
    assert {e.list_id for e in events} == {"oc"}
    assert await fut.router.submit(oco(), 2) == []  # a replayed approval places nothing
    fut.book.bids = [(D("30600.0"), D("1"))]
    events = await fut.router.catch_up(3)
    assert seen(events) == [("oc-tp", "FILLED"), ("oc-sl", "CANCELLED")]
    assert "OCO: oc-tp filled" in events[1].reason
    assert [o.status for o in fut.sim.orders.values()] == ["FILLED", "CANCELED", "FILLED"]
    assert await fut.client.positions() == {"BTCUSDT": D("0")}


async def test_a_bracket_places_its_exits_once_the_entry_fills_then_stops_out(fut: Fut) -> None:
    events = await fut.router.submit(bracket(), 1)
    assert seen(events) == [
        ("br", "ACCEPTED"), ("br", "FILLED"), ("br-sl", "ACCEPTED"), ("br-tp", "ACCEPTED")
    ]  # fmt: skip
    legs = [o for o in fut.sim.orders.values() if o.client_order_id.startswith("br-")]
    assert [(o.type, o.side, o.qty, o.reduce_only) for o in legs] == [
        ("STOP_MARKET", "SELL", D("0.1"), True), ("LIMIT", "SELL", D("0.1"), True)
    ]  # fmt: skip
    fut.prices.last = D(29400)
    fut.sim.on_market_event()
    events = await fut.router.catch_up(2)
    assert seen(events) == [("br-sl", "TRIGGERED"), ("br-sl", "FILLED"), ("br-tp", "CANCELLED")]
    assert await fut.client.positions() == {"BTCUSDT": D("0")}


async def test_a_take_profit_that_fills_at_once_cancels_the_stop_placed_first(
    fut: Fut,
) -> None:
    await long(fut)
    events = await fut.router.submit(oco(tp="29990"), 1)  # at or below the bid: it takes
    assert seen(events) == [
        ("oc-sl", "ACCEPTED"), ("oc-tp", "ACCEPTED"), ("oc-tp", "FILLED"), ("oc-sl", "CANCELLED")
    ]  # fmt: skip
    assert await fut.client.positions() == {"BTCUSDT": D("0")}


async def test_a_bracket_whose_entry_fills_nothing_places_no_exits(fut: Fut) -> None:
    entry = bracket(entry=OrderType.LIMIT, limit_price=D(29800))
    assert seen(await fut.router.submit(entry, 1)) == [("br", "ACCEPTED")]
    events = await fut.router.cancel("br", 2)
    assert seen(events) == [("br", "CANCELLED")]
    assert len(fut.sim.orders) == 1


async def test_after_a_restart_the_lists_are_rebuilt_and_finished(fut: Fut) -> None:
    """The worker placed a resting bracket entry and died; the entry filled meanwhile.
    A new router, given what the topics say, places the exits; an OCO whose take-profit
    filled while it was down gets its stop cancelled."""
    entry = bracket(entry=OrderType.LIMIT, limit_price=D(29800))
    first = await fut.router.submit(entry, 1)
    await long(fut, "0.1")
    protect = oco("oc", tp="30400", sl="29000")
    first += await fut.router.submit(protect, 2)
    fut.book.asks = [(D("29700.0"), D("1"))]  # the entry fills...
    fut.book.bids = [(D("30450.0"), D("1"))]  # ... and so does the OCO's take-profit
    fut.sim.on_market_event()

    again = ExecutionRouter(binance=fut.client, venue="BINANCE_USDM")
    local = rebuild_local([entry, protect], first, venue="BINANCE_USDM")
    assert sorted(local) == ["br", "oc-sl", "oc-tp"]  # legs from the events, no "oc" itself
    events = await again.adopt(local, 3)  # nothing it knows of has moved yet
    assert events == []
    events = await again.catch_up(4)
    assert seen(events)[:2] == [("br", "FILLED"), ("oc-tp", "FILLED")]  # while it was down
    assert sorted(seen(events)[2:]) == [
        ("br-sl", "ACCEPTED"), ("br-tp", "ACCEPTED"),  # the bracket: its exits
        ("oc-sl", "CANCELLED"),  # the OCO: its other leg
    ]  # fmt: skip
    assert {(e.client_order_id, e.list_id) for e in events} >= {("br-tp", "br"), ("oc-sl", "oc")}


async def test_a_filled_entry_without_exits_gets_them_on_adopt(fut: Fut) -> None:
    first = await fut.router.submit(bracket(), 1)
    entry_only = [e for e in first if e.client_order_id == "br"]  # died before the exits
    for coid in ("br-sl", "br-tp"):  # (undo them at the venue: they were never placed)
        order = next(o for o in fut.sim.orders.values() if o.client_order_id == coid)
        del fut.sim.orders[order.order_id]
    again = ExecutionRouter(binance=fut.client, venue="BINANCE_USDM")
    events = await again.adopt(rebuild_local([bracket()], entry_only), 2)
    assert seen(events) == [("br-sl", "ACCEPTED"), ("br-tp", "ACCEPTED")]


def stop_limit_cfg(v: Coinbase, coid: str) -> dict[str, str]:
    """The ``stop_limit_stop_limit_gtc`` configuration the venue holds for ``coid``."""
    sim = next(o for o in v.engine.orders.values() if o.client_order_id == coid)
    return dict(v.sim.order_json(sim)["order_configuration"]["stop_limit_stop_limit_gtc"])


def move(v: Coinbase, bid: str, ask: str) -> None:
    book = v.engine._book
    assert isinstance(book, StaticBook)
    book.bids, book.asks = levels((bid, "5")), levels((ask, "5"))
    v.engine.on_market_event()


async def test_a_coinbase_oco_places_its_stop_as_a_stop_limit_and_the_take_profit_cancels_it(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    r = coinbase_router(http, venue)
    events = await r.submit(oco(instrument=INSTRUMENT, tp="101", sl="99"), 1)
    assert seen(events) == [("oc-sl", "ACCEPTED"), ("oc-tp", "ACCEPTED")]
    assert {e.list_id for e in events} == {"oc"}
    # the stop-limit Coinbase holds: stop 99, limit 50 bps lower (98.505), down to the tick
    assert stop_limit_cfg(venue, "oc-sl") == {
        "base_size": "0.10000000", "limit_price": "98.50000000",
        "stop_price": "99.00000000", "stop_direction": "STOP_DIRECTION_STOP_DOWN",
    }  # fmt: skip
    sl = r.tracked("oc-sl")
    assert sl is not None and sl.request.order_type is OrderType.STOP_LIMIT
    assert sl.request.limit_price == D("98.5")
    (sl_event,) = [e for e in events if e.client_order_id == "oc-sl"]  # no silent change:
    assert (sl_event.order_type, sl_event.stop_price, sl_event.limit_price) == (  # it says so
        OrderType.STOP_LIMIT, D(99), D("98.5")
    )  # fmt: skip
    move(venue, "101.50", "101.51")
    events = await r.catch_up(2)
    assert seen(events) == [("oc-tp", "FILLED"), ("oc-sl", "CANCELLED")]
    assert "OCO: oc-tp filled" in events[-1].reason
    assert [o.status for o in venue.engine.orders.values()] == ["CANCELED", "FILLED"]


async def test_a_coinbase_bracket_stops_out_at_its_stop_limit_and_cancels_the_take_profit(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    r = coinbase_router(http, venue)
    entry = make_request("bk", Side.BUY, "0.1", instrument=INSTRUMENT).model_copy(
        update={"order_list": "BRACKET", "take_profit": D(101), "stop_loss": D(99)}
    )
    events = await r.submit(entry, 1)
    assert seen(events) == [
        ("bk", "ACCEPTED"), ("bk", "FILLED"), ("bk-sl", "ACCEPTED"), ("bk-tp", "ACCEPTED")
    ]  # fmt: skip
    assert stop_limit_cfg(venue, "bk-sl")["limit_price"] == "98.50000000"
    move(venue, "98.90", "98.91")  # through the stop: it triggers, its limit takes the bid
    events = await r.catch_up(2)
    assert seen(events)[-2:] == [("bk-sl", "FILLED"), ("bk-tp", "CANCELLED")]
    filled = next(e for e in events if e.status is S.FILLED)
    assert filled.fill_price == D("98.90") and filled.cum_qty == D("0.1")
    assert await r.submit(entry, 3) == []  # a replayed approval places nothing
