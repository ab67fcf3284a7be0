"""The bar backtest's fill model, context and hooks on small hand-made bars."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any, ClassVar

import pytest

from algostream.backtest.bars import BarBacktest, FillModel
from algostream.backtest.engine import BacktestEngine
from algostream.backtest.errors import BarInputError
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import Settings, SignalConfig
from algostream.model.enums import Side
from algostream.model.records import Bar, BookTop
from algostream.signals.base import Strategy, StrategyConfig
from algostream.signals.processor import SignalProcessor
from tests.unit.backtest.bar_testkit import WIDE, bar


class Script(Strategy[StrategyConfig]):
    """Calls ``plan[bar index](ctx)`` on each bar and records what the context showed."""

    name: ClassVar[str] = "script"
    plan: ClassVar[dict[int, Any]] = {}

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.seen: list[tuple[D, D, D, int]] = []
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        ctx = self.ctx
        self.seen.append((ctx.position.quantity, ctx.cash, ctx.equity, len(ctx.open_orders)))
        action = self.plan.get(self.n)
        if action is not None:
            action(ctx)
        self.n += 1


def run(plan: dict[int, Any], bars: list[Bar], **fill: Any) -> tuple[Any, Script]:
    Script.plan = plan
    proto = Script(StrategyConfig())
    test = BarBacktest(WIDE, FillModel(fee_rate=D("0.001"), **fill), proto)
    result = test.run(bars)
    return result, test.signals.strategy("SIM:ABC")  # type: ignore[return-value]


BARS = [
    bar(0, "100", "101", "99", "100"),
    bar(1, "102", "105", "101", "104"),
    bar(2, "104", "104", "95", "96"),
    bar(3, "96", "110", "96", "108"),
]


def test_market_order_fills_at_the_next_open_with_fee_and_the_context_sees_it() -> None:
    result, strat = run({0: lambda ctx: ctx.buy(D("2"))}, BARS)
    (fill,) = result.fills
    assert (fill.fill_price, fill.fill_qty, fill.fee) == (D("102"), D("2"), D("0.204"))
    assert fill.ts_event == BARS[1].start_ns
    qty, cash, equity, _ = strat.seen[1]  # on bar 1, after its open filled the order
    assert qty == 2 and equity == D("100000") + 2 * (104 - 102) - D("0.204")
    assert cash == equity - 2 * 104
    assert strat.seen[0][3] == 0 and result.equity_curve[-1][1] == equity + 2 * (108 - 104)


def test_limit_fills_when_the_range_reaches_it_and_stop_at_the_worse_of_open_and_stop() -> None:
    plan = {
        0: lambda ctx: ctx.buy(D("1"), limit=D("97")),  # reached on bar 2 (low 95)
        1: lambda ctx: ctx.buy(D("1"), stop=D("109")),  # reached on bar 3 (high 110)
    }
    result, strat = run(plan, BARS)
    assert [(f.fill_price, f.ts_event) for f in result.fills] == [
        (D("97"), BARS[2].start_ns),
        (D("109"), BARS[3].start_ns),
    ]
    assert [s[3] for s in strat.seen] == [0, 1, 1, 0]  # open orders: filled ones are gone


def test_target_fraction_reverses_all_in_and_close_at_end_counts() -> None:
    plan = {0: lambda ctx: ctx.target(fraction=D("1")), 2: lambda ctx: ctx.target(fraction=D("-1"))}
    result, _ = run(plan, BARS, step=D(1), close_at_end="close")
    sizes = [(f.side, f.fill_qty, f.fill_price) for f in result.fills]
    first = int(D(100000) / (D(102) * D("1.001")))
    assert sizes[0] == (Side.BUY, D(first), D(102))
    assert sizes[1][0] is Side.SELL and sizes[1][1] > first  # closes and goes short
    assert sizes[2] == (Side.BUY, sizes[1][1] - first, D(108))  # closed at the last close
    assert result.on("signals")[-1].strategy == "close-at-end"


def test_market_at_close_fills_on_the_signal_bar_and_slippage_is_adverse() -> None:
    result, _ = run({0: lambda ctx: ctx.buy(D("1"))}, BARS, market="close", slippage_bps=D(10))
    (fill,) = result.fills
    assert fill.fill_price == D("100.1") and fill.ts_event == BARS[0].end_ns


def test_bars_out_of_order_are_refused_naming_the_bar() -> None:
    with pytest.raises(BarInputError, match="does not follow"):
        run({}, [BARS[1], BARS[0]])


def test_bad_order_asks_name_the_argument() -> None:
    from algostream.signals.errors import StrategyOrderError

    with pytest.raises(StrategyOrderError, match="fraction"):
        run({0: lambda ctx: ctx.buy(fraction=D("1.5"))}, BARS)


class Hooks(Strategy[StrategyConfig]):
    """Counts the hooks it gets and buys once from ``on_book``."""

    name: ClassVar[str] = "hooks"

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.bars = self.books = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1

    def on_book(self, top: BookTop) -> None:
        self.books += 1
        if self.books == 50:
            self.ctx.buy(D("0.01"), reason="from on_book")


def test_tick_engine_calls_on_bar_and_on_book_and_fills_what_on_book_asks() -> None:
    """Fails on the old engine: it never called on_bar/on_book."""
    engine = BacktestEngine(Settings())
    member = engine.signals.members[0]
    member.proc = SignalProcessor(
        SignalConfig(),
        Hooks(StrategyConfig(strategy_id=member.spec.id)),
        portfolio=member.proc.portfolio,
    )
    engine.signals.uses_bars = engine.signals.uses_books = True
    result = engine.run(synthetic_frames(("BTCUSDT",), 7, 3_000))
    strat = member.proc.strategy("BINANCE:BTCUSDT")
    assert isinstance(strat, Hooks)
    assert strat.books == result.counts["book.top"]
    assert strat.bars == result.counts["bars.1s"] > 0
    (signal,) = result.on("signals")
    assert signal.reason == "from on_book"  # type: ignore[attr-defined]
    assert result.fills and result.fills[0].fill_qty == D("0.01")
    assert member.proc.strategy("BINANCE:BTCUSDT").ctx.position.quantity == D("0.01")


def test_cli_backtest_bars_runs_and_refuses_bad_files(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    import algostream.commands  # noqa: F401  (registers the commands)
    from algostream.cli import app

    csv = tmp_path / "bars.csv"
    rows = ["Date,Open,High,Low,Close,Volume"]
    rows += [f"2024-01-{d:02d},{100 + d},{102 + d},{99 + d},{101 + d},10" for d in range(1, 29)]
    csv.write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    env = {"ALGOSTREAM__SIGNAL__STRATEGY": "sma_crossover"}
    ok = runner.invoke(
        app,
        ["backtest", "--bars", str(csv), "--close-at-end", "--out", str(tmp_path / "r")],
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    assert "bars: 28" in ok.output
    # the default strategy reads features: OHLCV bars have no quote volume (VWAP by the
    # typical price instead of a division by zero)
    rsi = runner.invoke(app, ["backtest", "--bars", str(csv), "--out", str(tmp_path / "q")])
    assert rsi.exit_code == 0, rsi.output
    assert "'features': 28" in rsi.output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,x,3\n2024-01-02,1,2,1,1,1\n"
    )
    out = runner.invoke(app, ["backtest", "--bars", str(bad)], env=env)
    assert out.exit_code == 2 and "bad.csv:2" in out.output and "close" in out.output.lower()
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("a,b\n1,2\n")
    out = runner.invoke(app, ["backtest", "--bars", str(nohead)], env=env)
    assert out.exit_code == 2 and "nohead.csv" in out.output
    odd = runner.invoke(app, ["backtest", "--bars", str(csv), "--interval", "7m"], env=env)
    assert odd.exit_code == 2 and "7m" in odd.output


def test_the_end_of_input_closes_each_instruments_last_bar() -> None:
    """Without ``finish`` the last 1s bar of each instrument was never made."""
    engine = BacktestEngine(Settings())
    frames = synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 2_000)
    engine.run(frames)
    before = {b.record_id for b in engine.result.on("bars.1s")}
    trades = engine.result.on("md.trades")
    last_trade = {t.instrument: t.ts_event for t in trades}
    result = engine.finish()
    closed = [b for b in result.on("bars.1s") if b.record_id not in before]
    assert sorted(b.instrument for b in closed) == sorted(last_trade)
    for b in closed:
        assert isinstance(b, Bar) and b.start_ns <= last_trade[b.instrument] < b.end_ns


def test_the_loss_breaker_halts_the_account_on_a_bar_close_and_refuses_later_orders() -> None:
    """All in at 102, the close of 96 is a drawdown of ~6 % > 5 %: HALTED, as live."""
    risk = WIDE.risk.model_copy(
        update={"enable_circuit_breaker": True, "max_drawdown_percent": D(5)}
    )
    Script.plan = {0: lambda ctx: ctx.target(fraction=D("1")), 2: lambda ctx: ctx.buy(D("1"))}
    test = BarBacktest(
        WIDE.model_copy(update={"risk": risk}),
        FillModel(fee_rate=D("0.001"), step=D(1)),
        Script(StrategyConfig()),
    )
    result = test.run(BARS)
    (event,) = result.on("risk.events")
    assert event.state.value == "HALTED" and event.ts_event == BARS[2].end_ns  # type: ignore[attr-defined]
    assert len(result.fills) == 1
    (refused,) = result.on("orders.rejected")
    assert refused.ts_event == BARS[3].start_ns


def test_tick_close_at_end_flattens_through_risk_and_the_paper_broker() -> None:
    """A position left open at the end is closed by one MARKET order; the fills count."""
    from algostream.backtest.run import run_backtest

    frames = synthetic_frames(("BTCUSDT",), 7, 6_000)
    open_at_end, _ = run_backtest(Settings(), frames, None)
    ledger = BacktestEngine(Settings()).run(frames)  # the position the run ends with
    held = sum(f.side.sign * f.fill_qty for f in ledger.fills)
    assert held  # the seeded run ends holding a position
    closed, _ = run_backtest(Settings(), frames, None, close_at_end=True)
    extra = closed.fills[len(open_at_end.fills) :]
    assert len(extra) >= 1 and {f.client_order_id for f in extra} == {extra[0].client_order_id}
    assert sum(f.side.sign * f.fill_qty for f in closed.fills) == 0


def fills_of(result: Any) -> list[tuple[Side, D, D]]:
    return [(f.side, f.fill_price, f.fill_qty) for f in result.fills]


def test_a_bracket_stops_out_and_its_take_profit_is_dropped() -> None:
    plan = {0: lambda ctx: ctx.buy(D("1"), take_profit=D("108"), stop_loss=D("97"))}
    result, strat = run(plan, BARS)
    # entry at bar 1's open; exits from bar 2: its low 95 reaches the stop (at 97), and
    # bar 3's high 110 would have reached the take-profit: it is gone by then
    assert fills_of(result) == [(Side.BUY, D(102), D(1)), (Side.SELL, D(97), D(1))]
    assert [s[3] for s in strat.seen] == [0, 2, 0, 0]  # the two exits, open on bar 1
    exit_order = result.on("orders.approved")[-1]
    assert exit_order.reduce_only and exit_order.order_type.value == "STOP_MARKET"


def test_a_bracket_takes_profit() -> None:
    plan = {0: lambda ctx: ctx.buy(D("1"), take_profit=D("104.5"), stop_loss=D("90"))}
    result, _ = run(plan, BARS)
    assert fills_of(result) == [(Side.BUY, D(102), D(1)), (Side.SELL, D("104.5"), D(1))]


def test_a_bar_reaching_both_exits_takes_the_stop() -> None:
    plan = {0: lambda ctx: ctx.buy(D("1"), take_profit=D("103.5"), stop_loss=D("95.5"))}
    result, _ = run(plan, BARS)  # bar 2: high 104 and low 95 reach both
    assert fills_of(result)[1] == (Side.SELL, D("95.5"), D(1))
    assert len(result.fills) == 2


def test_a_bracket_with_its_stop_above_the_entry_is_rejected_naming_it() -> None:
    plan = {0: lambda ctx: ctx.buy(D("1"), take_profit=D("110"), stop_loss=D("103"))}
    result, _ = run(plan, BARS)
    assert result.fills == []
    (rejected,) = result.on("orders.rejected")
    assert rejected.reason == "ORDER_LIST" and "stop_loss=103" in rejected.message


def test_an_oco_exits_a_held_position_once() -> None:
    plan = {
        0: lambda ctx: ctx.buy(D("1")),
        1: lambda ctx: ctx.oco(take_profit=D("109"), stop_loss=D("90")),
    }
    result, _ = run(plan, BARS)  # bar 3: high 110 reaches 109 (opens at 96: at 109)
    assert fills_of(result) == [(Side.BUY, D(102), D(1)), (Side.SELL, D(109), D(1))]
