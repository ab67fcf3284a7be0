"""The risk gate on USDⓈ-M perpetuals: shorts from flat, the futures refusals naming the
field and the limit, and funding settled once into realised P&L (and restored state)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from risk_testkit import fill, order, top

from algostream.config import RiskConfig, StrategySpec
from algostream.model import MarkPrice, OrderRejected, OrderRequest, PnL, Side
from algostream.risk import RiskProcessor

PERP = "BINANCE_USDM:BTCUSDT"


def D(text: str) -> Decimal:
    return Decimal(text)


def mark(ts: int, price: str, rate: str, next_funding: int) -> MarkPrice:
    return MarkPrice(
        instrument=PERP,
        ts_event=ts,
        ts_init=ts + 1,
        record_id=f"mark-{ts}",
        lineage_id="raw",
        mark_price=D(price),
        index_price=D(price),
        funding_rate=D(rate),
        next_funding_ns=next_funding,
    )


def gate(**config: object) -> RiskProcessor:
    p = RiskProcessor(RiskConfig.model_validate(config))
    p.on_book_top(top(PERP, bid="99", ask="101", ts=1))
    return p


def test_a_sell_from_flat_is_approved_and_opens_a_short() -> None:
    p = gate(starting_equity="50", leverage=10)
    [decision] = p.on_proposal(order("s1", Side.SELL, "4", instrument=PERP), 100)
    assert isinstance(decision, OrderRequest)
    p.on_order_event(fill("f1", Side.SELL, "4", "100", instrument=PERP, coid="s1"))
    assert p.ledger("paper").quantity(PERP) == D("-4")


@pytest.mark.parametrize(
    ("config", "qty", "reason", "field"),
    [
        ({"starting_equity": "50", "leverage": 10}, "10", "INSUFFICIENT_MARGIN", "initial_margin"),
        (
            {"leverage": 125, "max_position_size": "1000", "max_order_notional": "1000000",
             "max_notional_exposure": "1000000"},
            "600", "LEVERAGE_ABOVE_BRACKET", "leverage",
        ),
        ({"margin_mode": "ISOLATED", "leverage": 20}, "1", "TOO_CLOSE_TO_LIQUIDATION",
         "liquidation_price"),
    ],
)  # fmt: skip
def test_futures_refusals_name_the_reason_field_and_limit(
    config: dict[str, object], qty: str, reason: str, field: str
) -> None:
    p = gate(**config)
    [decision] = p.on_proposal(order("s1", Side.SELL, qty, instrument=PERP), 100)
    assert isinstance(decision, OrderRejected)
    assert decision.reason == reason
    assert decision.limit.startswith(f"{field}=") and field in decision.message


def test_approved_orders_not_yet_filled_hold_their_margin() -> None:
    p = gate(starting_equity="50", leverage=10)  # 500 of notional at most
    [first] = p.on_proposal(order("s1", Side.SELL, "3", instrument=PERP), 100)
    assert isinstance(first, OrderRequest)  # 300: 30 of margin
    [second] = p.on_proposal(order("s2", Side.SELL, "3", instrument=PERP, ts=11), 100)
    assert isinstance(second, OrderRejected) and second.reason == "INSUFFICIENT_MARGIN"
    p.on_order_event(fill("f1", Side.SELL, "3", "100", instrument=PERP, coid="s1"))
    [third] = p.on_proposal(order("s3", Side.BUY, "3", instrument=PERP, ts=12), 100)
    assert isinstance(third, OrderRequest)  # a close needs no margin


def test_the_same_order_on_spot_is_not_checked_as_a_future() -> None:
    p = RiskProcessor(RiskConfig(margin_mode="ISOLATED", leverage=20))
    p.on_book_top(top(bid="99", ask="101", ts=1))
    [decision] = p.on_proposal(order("s1", Side.SELL, "1"), 100)
    assert isinstance(decision, OrderRequest)


def test_isolated_leverage_10_leaves_room_to_liquidation() -> None:
    p = gate(margin_mode="ISOLATED", leverage=10)
    [decision] = p.on_proposal(order("s1", Side.SELL, "1", instrument=PERP), 100)
    assert isinstance(decision, OrderRequest)


def test_funding_is_settled_once_into_realised_pnl_and_survives_a_restore() -> None:
    p = gate()
    p.on_order_event(fill("f1", Side.SELL, "2", "100", instrument=PERP, coid="s1"))
    assert p.on_mark_price(mark(10, "100", "0.001", 1000)) == []  # announces 0.1 % at 1000
    out = p.on_mark_price(mark(1000, "110", "0.0005", 2000))  # past it: short receives
    [pnl] = [r for r in out if isinstance(r, PnL)]
    received = D("2") * D("110") * D("0.001")  # -qty * mark * rate, qty = -2
    assert pnl.realized_pnl == received
    assert p.ledger("paper").funding == received
    assert p.on_mark_price(mark(1001, "110", "0.0005", 2000)) == []  # once per time
    again = RiskProcessor.from_state(RiskConfig(), None, p.to_state())
    assert again.ledger("paper").funding == received
    assert again.on_mark_price(mark(1002, "110", "0.0005", 2000)) == []
    paid = again.on_mark_price(mark(2000, "100", "0.0005", 3000))
    [pnl2] = [r for r in paid if isinstance(r, PnL)]
    assert pnl2.realized_pnl == received + D("2") * D("100") * D("0.0005")  # received again


def test_a_long_pays_a_positive_rate() -> None:
    p = gate()
    p.on_order_event(fill("f1", Side.BUY, "1", "100", instrument=PERP, coid="b1"))
    p.on_mark_price(mark(10, "100", "0.001", 1000))
    p.on_mark_price(mark(1000, "100", "0.001", 2000))
    assert p.ledger("paper").realized_pnl == D("-0.1")


def test_each_strategy_pays_the_funding_of_its_own_part() -> None:
    specs = (StrategySpec(id="a"), StrategySpec(id="b"))
    p = RiskProcessor(RiskConfig(), strategies=specs)
    p.on_book_top(top(PERP, bid="99", ask="101", ts=1))
    for n, (sid, qty) in enumerate((("a", "-3"), ("b", "1"))):
        side = Side.SELL if qty.startswith("-") else Side.BUY
        ev = fill(f"f{n}", side, qty.lstrip("-"), "100", instrument=PERP, coid=f"c{n}")
        p.on_order_event(ev.model_copy(update={"strategy": sid}))
    p.on_mark_price(mark(10, "100", "0.001", 1000))
    out = p.on_mark_price(mark(1000, "100", "0.001", 2000))
    by_strategy = {r.strategy: r.realized_pnl for r in out if isinstance(r, PnL)}
    assert by_strategy == {None: D("0.2"), "a": D("0.3"), "b": D("-0.1")}
