"""Per-strategy metrics follow each strategy's own records (not the account's)."""

from __future__ import annotations

from decimal import Decimal

from algostream.config import RiskConfig, StrategySpec
from algostream.model import ControlAction, ControlCommand, Side
from algostream.observability import metrics
from algostream.observability.strategies import observe_strategy
from algostream.risk import RiskProcessor
from tests.unit.risk.risk_testkit import fill, order, top


def value(metric: object, **labels: str) -> float:
    return float(metrics.REGISTRY.get_sample_value(metric, labels) or 0)  # type: ignore[arg-type]


def test_strategy_records_set_gauges_count_trades_and_state() -> None:
    specs = (StrategySpec(id="m_a", strategy="sma_crossover"),)
    p = RiskProcessor(RiskConfig(), strategies=specs)
    p.on_book_top(top())
    out = []
    for coid, side, price in (("o1", Side.BUY, "100"), ("o2", Side.SELL, "110")):
        p.on_proposal(order(coid, side, "1").model_copy(update={"strategy": "m_a"}), 12)
        event = fill(f"f-{coid}", side, "1", price, coid=coid)
        out += p.on_order_event(event.model_copy(update={"strategy": "m_a"}))
    before = value("algostream_strategy_trades_total", strategy="m_a", result="win", mode="live")
    handled = [observe_strategy(r) for r in out]
    assert handled.count(True) == handled.count(False) == 4  # the account's: not here
    wins = value("algostream_strategy_trades_total", strategy="m_a", result="win", mode="live")
    assert wins - before == 1  # the closing sell made 10
    equity = value("algostream_strategy_equity", account="paper", strategy="m_a", mode="live")
    assert Decimal(str(equity)) == RiskConfig().starting_equity + 10
    halt = ControlCommand(
        instrument="ALL:*", ts_event=40, ts_init=40, record_id="h", lineage_id="op",
        action=ControlAction.HALT, actor="ops", reason="drill", strategy="m_a",
    )  # fmt: skip
    (event,) = p.on_control(halt)
    assert observe_strategy(event)
    assert value("algostream_strategy_state", strategy="m_a") == 2
