"""Shadow strategies: only the shadow engine runs them, only shadow topics get their
records, and the live gate refuses their orders."""

from __future__ import annotations

import json

import pytest

from algostream.backtest.engine import BacktestEngine
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import ConfigError, load_settings
from algostream.model.records import Bar, BookTop, OrderRejected, OrderRequest, Record, Signal
from algostream.risk import RiskProcessor
from algostream.shadow import SHADOW_TOPICS, ShadowEngine, compare

STRATEGIES = [
    {"id": "live_rsi", "strategy": "rsi_mean_reversion"},
    {"id": "new_rsi", "strategy": "rsi_mean_reversion", "shadow": True,
     "params": {"rsi_oversold": 45, "rsi_overbought": 55}},
]  # fmt: skip
ENV = {
    "ALGOSTREAM__SIGNAL__STRATEGIES": json.dumps(STRATEGIES),
    "ALGOSTREAM__EXECUTION__PAPER_TRADING": "false",  # live orders: the shadow stays paper
}


def live_feed() -> tuple[BacktestEngine, list[Record]]:
    engine = BacktestEngine(load_settings(env=ENV))
    engine.run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 8_000))
    feed = [r for _, r in engine.result.outputs if isinstance(r, BookTop | Bar)]
    return engine, feed


def test_live_engine_runs_only_live_strategies_and_shadow_engine_only_shadow_ones() -> None:
    live, feed = live_feed()
    assert {s.strategy for s in live.result.on("signals")} == {"live_rsi"}  # type: ignore[attr-defined]
    shadow = ShadowEngine(load_settings(env=ENV))
    outputs = [o for record in feed for o in shadow.on_live(record)]
    topics = {t for t, _ in outputs}
    assert topics <= set(SHADOW_TOPICS.values()) and "shadow.orders.events" in topics
    assert {r.strategy for t, r in outputs if isinstance(r, Signal)} == {"new_rsi"}
    fills = [r for t, r in outputs if t == "shadow.orders.events" and r.fill_qty > 0]  # type: ignore[attr-defined]
    assert fills and all(f.venue == "PAPER" for f in fills)  # type: ignore[attr-defined]
    shadow_records = [r for _, r in outputs]
    live_sum, shadow_sum = compare(
        "live_rsi", [r for _, r in live.result.outputs], "new_rsi", shadow_records,
        attributed=True,
    )  # fmt: skip
    assert shadow_sum.fills == len(fills) and live_sum.fills == len(live.result.fills)
    assert shadow_sum.equity_change is not None and live_sum.realized_pnl is not None


def test_live_gate_refuses_a_shadow_order_and_the_shadow_gate_a_live_one() -> None:
    s = load_settings(env=ENV)
    _, feed = live_feed()
    top = next(r for r in feed if isinstance(r, BookTop))
    for shadow, strategy, limit in ((False, "new_rsi", "SHADOW_STRATEGY"),
                                    (True, "live_rsi", "LIVE_STRATEGY")):  # fmt: skip
        gate = RiskProcessor(s.risk.model_copy(update={"max_order_age_ms": 0}),
                             strategies=s.signal.strategies, shadow=shadow)  # fmt: skip
        gate.on_book_top(top)
        order = OrderRequest(
            instrument=top.instrument, ts_event=top.ts_event, ts_init=top.ts_init,
            record_id=f"p-{strategy}", lineage_id="s", account="paper",
            client_order_id=f"c-{strategy}", strategy=strategy, side="BUY",
            order_type="MARKET", quantity="0.01",
        )  # fmt: skip
        (decision,) = gate.on_proposal(order, top.ts_init)
        assert isinstance(decision, OrderRejected) and decision.limit == limit


def test_shadow_worker_without_shadow_strategies_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"signal\.strategies"):
        ShadowEngine(load_settings(env={}))
