"""Order lifecycle state machine: legal and illegal transitions, event contents."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from execution_helpers import make_request

from algostream.execution.errors import IllegalTransitionError, OrderStateError
from algostream.execution.orders import ManagedOrder, can_transition
from algostream.model import OrderEvent, OrderStatus, OrderType, Side

S = OrderStatus
# The lifecycle as specified (written out independently of the implementation's table).
LEGAL = {
    (S.NEW, S.ACCEPTED), (S.NEW, S.REJECTED),
    (S.ACCEPTED, S.PARTIALLY_FILLED), (S.ACCEPTED, S.FILLED), (S.ACCEPTED, S.CANCELLED),
    (S.ACCEPTED, S.EXPIRED), (S.ACCEPTED, S.TRIGGERED),
    (S.TRIGGERED, S.PARTIALLY_FILLED), (S.TRIGGERED, S.FILLED), (S.TRIGGERED, S.CANCELLED),
    (S.TRIGGERED, S.EXPIRED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED), (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.CANCELLED), (S.PARTIALLY_FILLED, S.EXPIRED),
}  # fmt: skip


def _order_in(status: OrderStatus, qty: str = "4") -> ManagedOrder:
    """Drive a fresh order into ``status`` through legal steps."""
    order = ManagedOrder(make_request(qty=qty))
    if status is S.NEW:
        return order
    if status is S.REJECTED:
        order.reject("no", 1)
        return order
    order.accept(1, "v1")
    if status is S.TRIGGERED:
        order.trigger("stop reached", 2)
    elif status is S.PARTIALLY_FILLED:
        order.fill(D("10"), D("1"), D("0"), 2)
    elif status is S.FILLED:
        order.fill(D("10"), D(qty), D("0"), 2)
    elif status is S.CANCELLED:
        order.cancel("user", 2)
    elif status is S.EXPIRED:
        order.expire("ioc", 2)
    assert order.status is status
    return order


def _attempt(order: ManagedOrder, to: OrderStatus) -> OrderEvent:
    if to is S.ACCEPTED:
        return order.accept(5, "v2")
    if to is S.REJECTED:
        return order.reject("r", 5)
    if to is S.CANCELLED:
        return order.cancel("c", 5)
    if to is S.EXPIRED:
        return order.expire("e", 5)
    if to is S.TRIGGERED:
        return order.trigger("t", 5)
    qty = order.remaining if to is S.FILLED else D("1")
    if to is S.FILLED and qty == 0:
        qty = D("1")  # a fill on a filled order: must be refused
    return order.fill(D("10"), qty, D("0"), 5)


@pytest.mark.parametrize("from_status", list(S))
@pytest.mark.parametrize("to_status", [s for s in S if s is not S.NEW])
def test_transition_is_allowed_exactly_when_the_lifecycle_says_so(
    from_status: OrderStatus, to_status: OrderStatus
) -> None:
    order = _order_in(from_status)
    legal = (from_status, to_status) in LEGAL
    assert can_transition(from_status, to_status) is legal
    if legal:
        event = _attempt(order, to_status)
        assert event.status is to_status and order.status is to_status
    else:
        with pytest.raises((IllegalTransitionError, OrderStateError)) as info:
            _attempt(order, to_status)
        assert order.status is from_status
        if isinstance(info.value, IllegalTransitionError):
            assert f"{from_status.value} -> {to_status.value}" in str(info.value)


def test_illegal_transition_error_names_order_and_both_states() -> None:
    order = _order_in(S.FILLED)
    with pytest.raises(IllegalTransitionError, match=r"'c1'.*FILLED -> CANCELLED"):
        order.cancel("late", 9)


def test_nothing_returns_to_new() -> None:
    assert not any(can_transition(s, S.NEW) for s in S)


def test_fill_events_carry_cumulative_qty_fee_slippage_and_lineage() -> None:
    order = ManagedOrder(make_request(qty="3", side=Side.SELL, mid="100"))
    accepted = order.accept(1, venue_order_id="v9")
    first = order.fill(D("99.5"), D("1"), D("0.1"), 2, fee_currency="USDT")
    second = order.fill(D("99"), D("2"), D("0.2"), 3)
    assert accepted.venue_order_id == "v9" and first.venue_order_id == "v9"
    assert (first.status, first.fill_qty, first.cum_qty) == (S.PARTIALLY_FILLED, D(1), D(1))
    assert (second.status, second.cum_qty) == (S.FILLED, D(3))
    # a sell 0.5 / 1.0 below the arrival mid costs 0.5 / 1.0 per unit
    assert (first.slippage, second.slippage) == (D("0.5"), D("1"))
    assert first.fee_currency == "USDT" and second.fee == D("0.2")
    assert {e.lineage_id for e in (accepted, first, second)} == {"approved-c1"}
    assert order.avg_price == (D("99.5") + D("198")) / 3


def test_record_ids_are_unique_and_deterministic() -> None:
    def run() -> list[str]:
        order = ManagedOrder(make_request(qty="2"))
        events = [
            order.accept(1),
            order.fill(D("1"), D("1"), D(0), 2),
            order.fill(D("1"), D("1"), D(0), 3),
        ]
        return [e.record_id for e in events]

    assert run() == run()
    assert len(set(run())) == 3
    other = ManagedOrder(make_request(coid="c2"))
    assert other.accept(1).record_id not in run()


def test_overfill_and_price_worse_than_limit_are_refused() -> None:
    order = ManagedOrder(make_request(qty="1", order_type=OrderType.LIMIT, limit="100"))
    order.accept(1)
    with pytest.raises(OrderStateError, match="exceeds remaining 1"):
        order.fill(D("99"), D("2"), D(0), 2)
    with pytest.raises(OrderStateError, match="worse than limit 100"):
        order.fill(D("100.01"), D("1"), D(0), 2)
    assert order.fill(D("100"), D("1"), D(0), 2).status is S.FILLED


def test_state_round_trip_continues_the_same_lifecycle() -> None:
    order = ManagedOrder(make_request(qty="2"), venue="BINANCE")
    order.accept(1, "v1")
    order.fill(D("10"), D("1"), D("0.01"), 2)
    restored = ManagedOrder.from_state(order.to_state())
    assert restored == order
    a = order.fill(D("11"), D("1"), D(0), 3)
    b = restored.fill(D("11"), D("1"), D(0), 3)
    assert a == b and a.venue == "BINANCE"
