"""Several strategies per deployment: config, bad input at start, the tick engine."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from algostream.backtest.engine import BacktestEngine
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import ConfigError, Settings, load_settings
from algostream.model.records import FeatureVector, OrderEvent, OrderRequest, PnL, Position, Signal

TWO = [
    {"id": "rsi_fast", "strategy": "rsi_mean_reversion", "params": {"rsi_oversold": 45}},
    {
        "id": "rsi_eth",
        "strategy": "rsi_mean_reversion",
        "instruments": ["ETHUSDT"],
        "params": {"order_quantity": "0.02"},
    },
]


def settings_with(strategies: list[dict[str, Any]], **env: str) -> Settings:
    return load_settings(env={"ALGOSTREAM__SIGNAL__STRATEGIES": json.dumps(strategies), **env})


def test_old_single_strategy_is_a_list_of_one() -> None:
    s = load_settings(env={})
    (spec,) = s.signal.specs()
    assert spec.id == spec.registry_name == s.signal.strategy


@pytest.mark.parametrize(
    ("strategies", "key", "value"),
    [
        (
            [{"id": "a", "strategy": "sma_crossover"}, {"id": "a", "strategy": "macd_crossover"}],
            "signal.strategies.1.id",
            "'a'",
        ),
        (
            [{"id": "a", "strategy": "sma_crossover", "instruments": ["DOGEUSDT"]}],
            "signal.strategies.0.instruments",
            "'DOGEUSDT'",
        ),
        (
            [{"id": "a", "strategy": "sma_crossover", "shadow": True, "paper_trading": False}],
            "signal.strategies.0.paper_trading",
            "False",
        ),
        ([{"id": "a", "strategy": "no_such"}], "signal.strategies.0.strategy", "'no_such'"),
        (
            [{"id": "a", "strategy": "sma_crossover", "params": {"rsi_window": 3}}],
            "signal.strategies.0.params.rsi_window",
            "3",
        ),
        (
            [{"id": "a", "strategy": "sma_crossover", "bar_interval": "5m"}],
            "signal.strategies.0.bar_interval",
            "'5m'",
        ),
        ([{"id": "a b", "strategy": "sma_crossover"}], "signal.strategies.0.id", "'a b'"),
    ],
)
def test_bad_strategies_are_config_errors_naming_the_key(
    strategies: list[dict[str, Any]], key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as err:
        settings_with(strategies)
    assert f"'{key}' = {value}" in str(err.value)


def test_bad_strategies_in_a_file_fail_at_load(tmp_path: Path) -> None:
    cfg = tmp_path / "system.json"
    cfg.write_text(
        json.dumps(
            {
                "signal": {
                    "strategies": [
                        {"id": "x", "strategy": "sma_crossover"},
                        {"id": "x", "strategy": "sma_crossover"},
                    ]
                }
            }
        )
    )
    with pytest.raises(ConfigError, match=r"signal\.strategies\.1\.id"):
        load_settings(cfg, env={})


def test_engine_runs_two_strategies_with_their_own_ids_positions_and_pnl() -> None:
    s = settings_with(TWO)
    engine = BacktestEngine(s)
    result = engine.run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 8_000))
    signals = [r for r in result.on("signals") if isinstance(r, Signal)]
    by = {sid: [x for x in signals if x.strategy == sid] for sid in ("rsi_fast", "rsi_eth")}
    assert by["rsi_fast"] and by["rsi_eth"]
    assert {x.instrument for x in by["rsi_eth"]} == {"BINANCE:ETHUSDT"}  # its instruments
    orders = [r for r in result.on("orders.proposed") if isinstance(r, OrderRequest)]
    assert {o.quantity for o in orders if o.strategy == "rsi_eth"} == {Decimal("0.02")}
    fills = [e for e in result.fills if isinstance(e, OrderEvent)]
    assert {f.strategy for f in fills} == {"rsi_fast", "rsi_eth"}
    # per strategy positions net to the account's
    for inst in ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT"):
        parts = sum(
            (engine.risk.books[("paper", sid)].quantity(inst) for sid in ("rsi_fast", "rsi_eth")),
            Decimal(0),
        )
        assert parts == engine.risk.ledger("paper").quantity(inst)
    pos = [r for r in result.on("positions") if isinstance(r, Position)]
    assert {p.strategy for p in pos} == {None, "rsi_fast", "rsi_eth"}
    pnl = [r for r in result.on("pnl") if isinstance(r, PnL)]
    assert {p.strategy for p in pnl} == {None, "rsi_fast", "rsi_eth"}
    assert result.strategy_equity("rsi_eth") and result.equity_curve


def test_a_strategy_on_another_bar_interval_decides_on_its_own_bars() -> None:
    s = settings_with(
        [
            {"id": "per_second", "strategy": "rsi_mean_reversion"},
            {
                "id": "per_minute",
                "strategy": "rsi_mean_reversion",
                "bar_interval": "1m",
                "params": {"rsi_oversold": 49, "rsi_overbought": 51},
            },
        ]
    )
    engine = BacktestEngine(s)
    result = engine.run(synthetic_frames(("BTCUSDT",), 7, 20_000))
    vectors = [r for r in result.on("features") if isinstance(r, FeatureVector)]
    assert {v.interval for v in vectors} == {"1s", "1m"}
    for sid, interval in (("per_second", "1s"), ("per_minute", "1m")):
        member = engine.signals.member(sid)
        assert member is not None
        snap = member.proc.snapshot("BINANCE:BTCUSDT")
        last = [v.ts_event for v in vectors if v.interval == interval][-1]
        assert snap is not None and snap["last_ts_event"] == last  # its own bars' vectors


def test_backtest_writes_a_report_per_strategy(tmp_path: Path) -> None:
    from algostream.backtest.run import run_backtest

    s = settings_with(TWO)
    result, report = run_backtest(s, synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 8_000), tmp_path)
    assert report is not None and (tmp_path / "summary.json").exists()
    for sid in ("rsi_fast", "rsi_eth"):
        summary = json.loads((tmp_path / "strategies" / sid / "summary.json").read_text())
        assert Decimal(str(summary["end_equity"])) == result.strategy_equity(sid)[-1][1]
        fills = [f for f in result.fills if f.strategy == sid]
        assert summary["fill_count"] == len(fills) > 0 and summary["title"].endswith(sid)


def test_closing_the_account_at_the_end_keeps_strategies_adding_up_to_it() -> None:
    """The close at the end is in no strategy's name: it reduces the strategies' positions
    it closes, so they still add up to the (now flat) account's."""
    engine = BacktestEngine(settings_with(TWO))
    engine.run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 8_000))
    assert engine.risk.ledger("paper").open_positions()  # something to close
    engine.finish(close_positions=True)
    assert not engine.risk.ledger("paper").open_positions()
    for inst in ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT"):
        parts = [b.quantity(inst) for b in engine.risk.books.values()]
        assert sum(parts, Decimal(0)) == 0
