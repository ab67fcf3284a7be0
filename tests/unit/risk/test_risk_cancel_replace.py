"""The risk gate on CANCEL / REPLACE requests: a cancel of an open order always passes
(halted too), a replace is checked as the new order it places and refused while halted
unless it reduces, a target that is not open is refused naming it, and a request decided
once is answered the same way again."""

from __future__ import annotations

from typing import Any

from risk_testkit import ACCOUNT, BTC, D, control, order, status_event, top

from algostream.config import RiskConfig
from algostream.model import ControlAction, OrderRejected, OrderRequest, OrderStatus, Side
from algostream.model.enums import OrderAction
from algostream.risk import RiskProcessor

CONFIG = RiskConfig(max_position_size=D("3"), max_order_notional=D("1000"))


def amend(coid: str, target: str, action: OrderAction, qty: str = "1", price: str = "100",
          **kw: Any) -> OrderRequest:  # fmt: skip
    return order(coid, qty=qty, price=price, rid=f"prop-{coid}").model_copy(
        update={"action": action, "target_id": target} | kw
    )


def resting() -> RiskProcessor:
    """A gate with an approved BUY LIMIT 1 @ 100 (``c1``) open."""
    p = RiskProcessor(CONFIG)
    p.on_book_top(top(bid="99", ask="101", ts=1))
    assert isinstance(p.on_proposal(order("c1", qty="1", price="100"), now_ns=2)[0], OrderRequest)
    return p


def test_a_cancel_of_an_open_order_passes_even_halted_and_reserves_nothing() -> None:
    p = resting()
    p.on_control(control(ControlAction.HALT, ts=3))
    (decision,) = p.on_proposal(amend("x1", "c1", OrderAction.CANCEL), now_ns=4)
    assert isinstance(decision, OrderRequest) and decision.action is OrderAction.CANCEL
    assert p.pending_quantity(ACCOUNT, BTC, Side.BUY) == D("1")  # c1's only
    assert p.on_proposal(amend("x1", "c1", OrderAction.CANCEL), now_ns=5) == [decision]
    p.on_order_event(status_event("e1", "c1", OrderStatus.CANCELLED, side=Side.BUY))
    assert p.pending_quantity(ACCOUNT, BTC, Side.BUY) == 0


def test_a_request_for_an_order_not_open_is_refused_naming_it() -> None:
    p = resting()
    p.on_order_event(status_event("e1", "c1", OrderStatus.CANCELLED, side=Side.BUY))
    for n, action in enumerate((OrderAction.CANCEL, OrderAction.REPLACE)):
        (refused,) = p.on_proposal(amend(f"x{n}", "c1", action), now_ns=4)
        assert isinstance(refused, OrderRejected) and refused.reason == "ORDER_NOT_OPEN"
        assert refused.value == "c1" and "'c1'" in refused.message
    (refused,) = p.on_proposal(amend("x9", "nope", OrderAction.CANCEL), now_ns=4)
    assert isinstance(refused, OrderRejected) and "'nope'" in refused.message


def test_a_replace_is_checked_as_a_new_order_without_counting_its_target_twice() -> None:
    p = resting()
    # 3 (max_position_size) would be over it were c1's 1 still counted beside it
    (ok,) = p.on_proposal(amend("r1", "c1", OrderAction.REPLACE, qty="3"), now_ns=3)
    assert isinstance(ok, OrderRequest) and ok.target_id == "c1"
    assert p.pending_quantity(ACCOUNT, BTC, Side.BUY) == D("4")  # until c1 is CANCELLED
    (band,) = p.on_proposal(amend("r2", "r1", OrderAction.REPLACE, price="150"), now_ns=4)
    assert isinstance(band, OrderRejected) and band.reason == "PRICE_BAND"
    (big,) = p.on_proposal(amend("r3", "r1", OrderAction.REPLACE, qty="20", price="99"), 5)
    assert isinstance(big, OrderRejected) and big.reason == "MAX_ORDER_NOTIONAL"
    (side,) = p.on_proposal(amend("r4", "r1", OrderAction.REPLACE, side=Side.SELL), 6)
    assert isinstance(side, OrderRejected) and side.reason == "INVALID_ORDER"


def test_halted_a_replace_passes_only_if_it_reduces() -> None:
    p = resting()
    p.on_control(control(ControlAction.HALT, ts=3))
    (more,) = p.on_proposal(amend("r1", "c1", OrderAction.REPLACE, qty="2"), now_ns=4)
    assert isinstance(more, OrderRejected) and more.reason == "TRADING_HALTED"
    assert "'c1'" in more.message
    (higher,) = p.on_proposal(amend("r2", "c1", OrderAction.REPLACE, price="100.5"), 5)
    assert isinstance(higher, OrderRejected) and higher.reason == "TRADING_HALTED"
    (less,) = p.on_proposal(amend("r3", "c1", OrderAction.REPLACE, qty="0.5", price="99.5"), 6)
    assert isinstance(less, OrderRequest)


def test_a_halted_strategy_may_cancel_but_not_grow_by_replace() -> None:
    p = resting()
    p.halted["test"] = "operator"
    assert isinstance(p.on_proposal(amend("x1", "c1", OrderAction.CANCEL), 3)[0], OrderRequest)
    (more,) = p.on_proposal(amend("r1", "c1", OrderAction.REPLACE, qty="2"), now_ns=4)
    assert isinstance(more, OrderRejected) and more.limit == "STRATEGY_HALTED"


def test_a_strategy_cannot_cancel_another_strategys_order() -> None:
    p = resting()
    (refused,) = p.on_proposal(amend("x1", "c1", OrderAction.CANCEL, strategy="other"), 3)
    assert isinstance(refused, OrderRejected) and refused.reason == "INVALID_ORDER"
    assert "strategy test's, not other's" in refused.message
