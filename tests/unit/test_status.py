"""``algostream status``: what the topics' records say about each strategy."""

from __future__ import annotations

import json
from decimal import Decimal

from algostream.backtest.engine import BacktestEngine
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import load_settings
from algostream.model import ControlAction, ControlCommand, PnL
from algostream.status import strategy_status

STRATEGIES = [
    {"id": "a", "strategy": "rsi_mean_reversion"},
    {"id": "b", "strategy": "rsi_mean_reversion", "instruments": ["ETHUSDT"]},
]


def test_strategy_status_from_records() -> None:
    s = load_settings(env={"ALGOSTREAM__SIGNAL__STRATEGIES": json.dumps(STRATEGIES)})
    engine = BacktestEngine(s)
    engine.run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 8_000))
    halt = ControlCommand(
        instrument="ALL:*", ts_event=engine._last_ts, ts_init=engine._last_ts, record_id="h",
        lineage_id="op", action=ControlAction.HALT, actor="ops", reason="drill", strategy="b",
    )  # fmt: skip
    records = [r for _, r in engine.result.outputs] + engine.risk.on_control(halt)
    by = {st.strategy: st for st in strategy_status(s, records)}
    assert by["b"].state.value == "HALTED" and by["b"].reason == "drill"
    assert by["a"].state.value == "ACTIVE"
    pnl = [r for r in engine.result.on("pnl") if isinstance(r, PnL)]
    for sid in ("a", "b"):
        book = engine.risk.books[("paper", sid)]
        assert by[sid].equity == [p.equity for p in pnl if p.strategy == sid][-1]  # newest
        want = {i: p.quantity for i, p in book.positions.items() if p.quantity}
        assert by[sid].positions == want
    assert set(by["b"].positions) <= {"BINANCE:ETHUSDT"}
    assert by["*"].equity == [p.equity for p in pnl if p.strategy is None][-1]


def test_one_strategy_deployment_shows_the_account_as_the_strategy() -> None:
    s = load_settings(env={})
    engine = BacktestEngine(s)
    engine.run(synthetic_frames(("BTCUSDT",), 7, 4_000))
    by = {st.strategy: st for st in strategy_status(s, [r for _, r in engine.result.outputs])}
    only = by[s.signal.strategy]
    assert only.equity == by["*"].equity == engine.result.equity_curve[-1][1]
    assert only.equity is not None and only.equity != Decimal(0)
