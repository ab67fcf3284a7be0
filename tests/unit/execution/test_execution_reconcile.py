"""Reconciliation: local order state brought in line with the venue's."""

from __future__ import annotations

from decimal import Decimal as D

from execution_helpers import make_request

from algostream.execution.orders import ManagedOrder
from algostream.execution.reconcile import (
    VenueOrder,
    balances_from_binance,
    reconcile_balances,
    reconcile_orders,
)
from algostream.model import OrderStatus, OrderType

S = OrderStatus


def _accepted(coid: str, qty: str = "2") -> ManagedOrder:
    order = ManagedOrder(
        make_request(coid=coid, qty=qty, order_type=OrderType.LIMIT, limit="101"), venue="BINANCE"
    )
    order.accept(1, f"v-{coid}")
    return order


def _binance(coid: str, status: str, executed: str, quote: str, **extra: object) -> dict:
    return {
        "symbol": "BTCUSDT",
        "orderId": 7,
        "clientOrderId": coid,
        "status": status,
        "executedQty": executed,
        "cummulativeQuoteQty": quote,
        "updateTime": 5,
        **extra,
    }


def test_venue_filled_while_we_think_accepted_emits_the_fill() -> None:
    local = {"a": _accepted("a")}
    venue = {"a": VenueOrder.from_binance(_binance("a", "FILLED", "2", "201"))}
    result = reconcile_orders(local, venue, ts_event=9)
    (event,) = result.events
    assert (event.status, event.fill_qty, event.fill_price, event.cum_qty) == (
        S.FILLED,
        D(2),
        D("100.5"),
        D(2),
    )
    assert "reconciled" in event.reason and event.lineage_id == "approved-a"
    assert local["a"].status is S.FILLED and not result.discrepancies


def test_partial_then_cancelled_at_venue() -> None:
    local = {"a": _accepted("a")}
    local["a"].fill(D("100"), D("0.5"), D(0), 2)
    venue = {"a": VenueOrder.from_binance(_binance("a", "CANCELED", "1.5", "150.5"))}
    events = reconcile_orders(local, venue, ts_event=9).events
    assert [(e.status, e.fill_qty) for e in events] == [
        (S.PARTIALLY_FILLED, D(1)),
        (S.CANCELLED, D(0)),
    ]
    assert events[0].fill_price == D("100.5")  # (150.5 - 50) / 1


def test_new_order_seen_at_venue_is_accepted_with_detailed_fills() -> None:
    order = ManagedOrder(make_request(coid="n", qty="1"), venue="BINANCE")
    fills = [
        {"price": "100", "qty": "0.4", "commission": "0.0004", "commissionAsset": "BTC"},
        {"price": "101", "qty": "0.6", "commission": "0.0006", "commissionAsset": "BTC"},
    ]
    venue = {"n": VenueOrder.from_binance(_binance("n", "FILLED", "1", "100.6", fills=fills))}
    events = reconcile_orders({"n": order}, venue, ts_event=3).events
    assert [(e.status, e.fill_price, e.fee) for e in events] == [
        (S.ACCEPTED, None, D(0)),
        (S.PARTIALLY_FILLED, D(100), D("0.0004")),
        (S.FILLED, D(101), D("0.0006")),
    ]
    assert events[0].venue_order_id == "7"


def test_missing_at_venue_and_unknown_sides_are_reported() -> None:
    new = ManagedOrder(make_request(coid="never"))
    gone = _accepted("gone")
    quiet = _accepted("quiet")
    stranger = VenueOrder.from_binance(_binance("stranger", "NEW", "0", "0"))
    result = reconcile_orders(
        {"never": new, "gone": gone, "quiet": quiet},
        {"stranger": stranger},
        ts_event=4,
        missing={"never", "gone"},
    )
    assert [(e.client_order_id, e.status) for e in result.events] == [
        ("never", S.REJECTED),
        ("gone", S.CANCELLED),
    ]
    assert result.unknown_at_venue == ["quiet"]
    assert [v.client_order_id for v in result.unknown_locally] == ["stranger"]


def test_local_fills_beyond_venue_are_a_discrepancy_not_an_event() -> None:
    local = {"a": _accepted("a")}
    local["a"].fill(D("100"), D("1"), D(0), 2)
    venue = {"a": VenueOrder.from_binance(_binance("a", "NEW", "0", "0"))}
    result = reconcile_orders(local, venue, ts_event=5)
    assert result.events == []
    assert (
        len(result.discrepancies) == 1 and "exceeds venue executedQty 0" in result.discrepancies[0]
    )


def test_in_sync_orders_produce_nothing() -> None:
    local = {"a": _accepted("a")}
    venue = {"a": VenueOrder.from_managed(local["a"])}
    assert reconcile_orders(local, venue, ts_event=5).events == []


def test_balances() -> None:
    account = {
        "balances": [
            {"asset": "BTC", "free": "1.5", "locked": "0.5"},
            {"asset": "USDT", "free": "100", "locked": "0"},
        ]
    }
    venue = balances_from_binance(account)
    assert venue == {"BTC": D(2), "USDT": D(100)}
    diffs = reconcile_balances(
        {"BTC": D(2), "USDT": D("99.99"), "ETH": D(1)}, venue, tolerance=D("0.001")
    )
    assert [(d.asset, d.difference) for d in diffs] == [("ETH", D(-1)), ("USDT", D("0.01"))]
