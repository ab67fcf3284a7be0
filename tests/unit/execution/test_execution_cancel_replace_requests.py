"""A strategy's CANCEL / REPLACE request (an approved ``OrderRequest`` with ``action``)
on the paper broker (spot, and futures under its account) and live through the router on
the venue simulator: the target CANCELLED, the replacement ACCEPTED under the request's
id, a replayed request changing nothing, a target no longer open refused naming it."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from execution_helpers import INSTRUMENT, levels, live_router, make_top

from algostream.execution.futures import FuturesAccount
from algostream.execution.futures_paper import FuturesPaperBroker
from algostream.execution.order_lists import OrderLists
from algostream.execution.paper import PaperBroker
from algostream.model import OrderRequest, OrderType, Side
from algostream.model.enums import OrderAction

PERP = "BINANCE_USDM:BTCUSDT"


def request(coid: str, price: str | None = "99", qty: str = "1", inst: str = INSTRUMENT,
            **kw: Any) -> OrderRequest:  # fmt: skip
    fields: dict[str, Any] = {
        "instrument": inst, "ts_event": 1, "ts_init": 1, "record_id": f"a-{coid}",
        "lineage_id": f"p-{coid}", "account": "paper", "client_order_id": coid,
        "strategy": "s", "side": Side.BUY, "order_type": OrderType.LIMIT, "quantity": qty,
        "limit_price": price,
    } | kw  # fmt: skip
    return OrderRequest(**fields)


def replace(coid: str, target: str, price: str, qty: str = "1", **kw: Any) -> OrderRequest:
    return request(coid, price, qty, action=OrderAction.REPLACE, target_id=target, **kw)


def cancel(coid: str, target: str, **kw: Any) -> OrderRequest:
    return request(coid, action=OrderAction.CANCEL, target_id=target, **kw)


def seen(events: list[Any]) -> list[tuple[str, str, D | None]]:
    return [(e.client_order_id, e.status.value, e.limit_price) for e in events]


def spot() -> OrderLists:
    lists = OrderLists(PaperBroker(fee_rate=D("0")))
    lists.on_book_top(make_top(levels(("99.5", "5")), levels(("100.5", "5")), 1))
    return lists


def test_paper_replace_then_cancel_and_replays_change_nothing() -> None:
    lists = spot()
    lists.submit(request("o1"), 2)
    moved = lists.submit(replace("o2", "o1", "99.2", "2"), 3)
    assert seen(moved) == [("o1", "CANCELLED", D(99)), ("o2", "ACCEPTED", D("99.2"))]
    assert moved[0].reason == "replaced by o2"
    assert lists.submit(replace("o2", "o1", "99.2", "2"), 4) == []
    gone = lists.submit(cancel("x1", "o2"), 5)
    assert seen(gone) == [("o2", "CANCELLED", D("99.2"))]
    assert gone[0].reason == "cancelled by request x1"
    assert lists.submit(cancel("x1", "o2"), 6) == []
    assert lists.broker.open_orders() == []


def test_paper_replace_that_crosses_fills_and_a_late_request_is_refused() -> None:
    lists = spot()
    lists.submit(request("o1"), 2)
    events = lists.submit(replace("o2", "o1", "101"), 3)  # crosses the ask: fills at 100.5
    assert seen(events)[:2] == [("o1", "CANCELLED", D(99)), ("o2", "ACCEPTED", D(101))]
    assert events[-1].status.value == "FILLED" and events[-1].fill_price == D("100.5")
    (refused,) = lists.submit(cancel("x1", "o2"), 4)
    assert refused.client_order_id == "x1" and refused.status.value == "REJECTED"
    assert "CANCEL of 'o2': the order is FILLED" in refused.reason
    assert lists.submit(cancel("x1", "o2"), 5) == []  # remembered, not answered twice
    (late,) = lists.submit(replace("o3", "o1", "98"), 6)
    assert late.status.value == "REJECTED" and "'o1' is CANCELLED" in late.reason


def test_futures_paper_replace_is_checked_by_the_futures_account() -> None:
    fp = FuturesPaperBroker(PaperBroker(fee_rate=D("0")), FuturesAccount(wallet=D("1000")))
    fp.account.position(PERP, leverage=10)
    lists = OrderLists(fp.broker, venue=fp)
    lists.on_book_top(make_top(levels(("29999.5", "5")), levels(("30000.5", "5")), 1,
                               instrument=PERP))  # fmt: skip
    lists.submit(request("f1", "29000", "0.1", PERP), 2)
    moved = lists.submit(replace("f2", "f1", "29500", "0.2", inst=PERP), 3)
    assert seen(moved) == [("f1", "CANCELLED", D(29000)), ("f2", "ACCEPTED", D(29500))]
    # 5 BTC at 10x needs ~14750 of margin, the wallet has 1000: refused by the account
    (ok, refused) = lists.submit(replace("f3", "f2", "29500", "5", inst=PERP), 4)
    assert seen([ok]) == [("f2", "CANCELLED", D(29500))]
    assert refused.client_order_id == "f3" and refused.status.value == "REJECTED"
    assert "MARGIN" in refused.reason


async def test_live_replace_and_cancel_requests_through_the_router(http: Any, venue: Any) -> None:
    router = live_router(http, venue)
    await router.submit(request("lr1", "99.00"), 5)
    moved = await router.submit(replace("lr2", "lr1", "99.50"), 6)
    assert seen(moved) == [("lr1", "CANCELLED", D(99)), ("lr2", "ACCEPTED", D("99.5"))]
    assert await router.submit(replace("lr2", "lr1", "99.50"), 7) == []
    assert venue.sim.placements("lr2") == 1
    gone = await router.submit(cancel("lx1", "lr2"), 8)
    assert seen(gone) == [("lr2", "CANCELLED", D("99.5"))]
    assert await router.submit(cancel("lx1", "lr2"), 9) == []
    (refused,) = await router.submit(cancel("lx2", "nope"), 10)
    assert refused.status.value == "REJECTED" and "'nope': the order is unknown" in refused.reason


def test_a_cancel_request_for_an_oco_cancels_both_legs() -> None:
    lists = spot()
    tp = request("o-tp", "103", side=Side.SELL)
    sl = request("o-sl", side=Side.SELL, order_type=OrderType.STOP_MARKET, limit_price=None,
                 stop_price="97")  # fmt: skip
    lists.submit_oco("o1", tp, sl, 2)
    events = lists.submit(cancel("x1", "o1"), 3)
    assert [(e.client_order_id, e.status.value) for e in events] == [
        ("o-tp", "CANCELLED"),
        ("o-sl", "CANCELLED"),
    ]
    assert events[0].reason == "cancelled by x1" and lists.open_lists() == []
    assert lists.submit(cancel("x1", "o1"), 4) == []


def test_a_cancel_request_is_not_an_order_to_reconcile_on_start() -> None:
    from algostream.execution.reconcile import rebuild_local

    lists = spot()
    placed = lists.submit(request("o1"), 2)
    gone = lists.submit(cancel("x1", "o1"), 3)
    local = rebuild_local([request("o1"), cancel("x1", "o1")], placed + gone)
    assert set(local) == {"o1"} and not local["o1"].is_open
