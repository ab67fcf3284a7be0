"""Tick backtests of USDⓈ-M perpetuals: the engine's paper broker fills under the futures
account, the gate's futures checks apply, and funding from a funding history CSV (Binance's
``/fapi/v1/fundingRate`` columns) is settled into P&L at each funding time, once."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest

from algostream.backtest.bars import BarBacktest, FillModel
from algostream.backtest.engine import BacktestEngine
from algostream.backtest.errors import BacktestError
from algostream.backtest.run import FUTURES_INPUTS, MD_INPUTS, funding_marks, md_inputs, with_marks
from algostream.config import load_settings
from algostream.model import (
    Bar,
    BookUpdate,
    BookUpdateKind,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    OrderType,
    PnL,
    RawFrame,
    Side,
)
from algostream.signals.base import Strategy, StrategyConfig

PERP = "BINANCE_USDM:BTCUSDT"
SEC = 1_000_000_000
DAY = 86_400 * SEC
ENV = {
    "ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm",
    "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]',
    "ALGOSTREAM__RISK__LEVERAGE": "10",
    # the spot limits out of the way: the futures margin check decides
    "ALGOSTREAM__RISK__MAX_ORDER_NOTIONAL": "1000000000",
    "ALGOSTREAM__RISK__MAX_NOTIONAL_EXPOSURE": "1000000000",
    "ALGOSTREAM__RISK__MAX_POSITION_SIZE": "100000",
}
CSV = """symbol,fundingTime,fundingRate,markPrice
BTCUSDT,2000,0.0001,30000
BTCUSDT,3000,-0.0002,31000
"""


def book(ts: int) -> BookUpdate:
    return BookUpdate(
        instrument=PERP, ts_event=ts, ts_init=ts, record_id=f"b{ts}", lineage_id="raw",
        kind=BookUpdateKind.SNAPSHOT, bids=((Decimal("29999"), Decimal("5")),),
        asks=((Decimal("30001"), Decimal("5")),), first_update_id=ts, final_update_id=ts,
    )  # fmt: skip


def order(coid: str, qty: str, ts: int) -> OrderRequest:
    return OrderRequest(
        instrument=PERP, ts_event=ts, ts_init=ts, record_id=f"p-{coid}", lineage_id="sig",
        account="paper", client_order_id=coid, strategy="test", side=Side.SELL,
        order_type=OrderType.MARKET, quantity=Decimal(qty),
    )  # fmt: skip


def test_a_futures_backtest_shorts_and_settles_funding_from_history(tmp_path: Path) -> None:
    settings = load_settings(env=ENV)
    assert md_inputs(settings) == FUTURES_INPUTS and md_inputs(load_settings(env={})) == MD_INPUTS
    path = tmp_path / "funding.csv"
    path.write_text(CSV)
    engine = BacktestEngine(settings)
    engine.run([book(SEC // 2)])
    engine._propose(order("short", "1", SEC))  # what a strategy's signal does
    engine._propose(order("huge", "100", SEC))  # 3 M notional: 300 k margin at 10x
    engine.run(with_marks([book(3 * SEC // 2)], funding_marks(path)))
    result = engine.finish()
    fills = [e for e in result.on("orders.events") if isinstance(e, OrderEvent) and e.fill_qty]
    assert [(e.client_order_id, e.side, e.fill_price) for e in fills] == [
        ("short", Side.SELL, Decimal("29999"))
    ]
    [refused] = [r for r in result.on("orders.rejected") if isinstance(r, OrderRejected)]
    assert refused.reason == "INSUFFICIENT_MARGIN"
    # -qty * mark * rate at 2 s (short receives 3) and at 3 s (short pays 6.2)
    want = Decimal("30000") * Decimal("0.0001") + Decimal("31000") * Decimal("-0.0002")
    ledger = engine.risk.ledger("paper")
    assert ledger.quantity(PERP) == Decimal("-1")
    assert ledger.funding == want == Decimal("-3.2")
    assert engine.futures is not None and engine.futures.funding_paid == want
    pnl = [p for p in result.on("pnl") if isinstance(p, PnL)]
    assert pnl[-1].realized_pnl == want  # nothing else realised: funding is the P&L
    assert len(result.on("md.mark_price")) == 4


def test_a_bad_funding_history_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "funding.csv"
    path.write_text("symbol,fundingTime,fundingRate,markPrice\nBTCUSDT,2000,abc,30000\n")
    with pytest.raises(BacktestError, match="line 2"):
        funding_marks(path)


def raw(ts_ms: int, payload: dict[str, object], stream: str = "ws") -> RawFrame:
    return RawFrame(
        instrument=PERP, ts_event=ts_ms * 1_000_000, ts_init=ts_ms * 1_000_000,
        record_id=f"raw-{ts_ms}", lineage_id=f"raw-{ts_ms}", venue="BINANCE_USDM",
        stream=stream, payload=json.dumps(payload),
    )  # fmt: skip


def test_a_raw_futures_capture_goes_through_the_futures_adapter() -> None:
    """Documented frames: a /fapi/v1/depth snapshot, a diff spanning it (``pu`` chains),
    markPriceUpdate before and at a funding time."""
    engine = BacktestEngine(load_settings(env=ENV))
    book_side = {"bids": [["29999", "5"]], "asks": [["30001", "5"]]}
    snapshot = {"lastUpdateId": 100, "E": 1000, "T": 1000} | book_side
    diff = {"e": "depthUpdate", "E": 1100, "T": 1100, "s": "BTCUSDT", "U": 95, "u": 105,
            "pu": 90, "b": [["29998", "1"]], "a": []}  # fmt: skip

    def mark(ts_ms: int, rate: str, next_ms: int) -> dict[str, object]:
        data = {"e": "markPriceUpdate", "E": ts_ms, "s": "BTCUSDT", "p": "30000.00000000",
                "i": "29990.00000000", "P": "30000.00000000", "r": rate, "T": next_ms}  # fmt: skip
        return {"stream": "btcusdt@markPrice", "data": data}

    force = {"e": "forceOrder", "E": 1200, "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT",
             "f": "IOC", "q": "0.014", "p": "9910", "ap": "9910", "X": "FILLED",
             "l": "0.014", "z": "0.014", "T": 1200}}  # fmt: skip
    engine.run([
        raw(1000, snapshot, stream="rest:/fapi/v1/depth"),
        raw(1100, {"stream": "btcusdt@depth@100ms", "data": diff}),
        raw(1200, {"stream": "btcusdt@forceOrder", "data": force}),
        raw(1500, mark(1500, "0.00010000", 2000)),
    ])  # fmt: skip
    assert [r.quantity for r in engine.result.on("md.liquidations")] == [Decimal("0.014")]  # type: ignore[attr-defined]
    engine._propose(order("short", "1", 1_600_000_000))
    engine.run([raw(2000, mark(2000, "0.00020000", 3000))])
    result = engine.finish()
    assert [e.fill_qty for e in result.fills] == [Decimal("1")]
    assert {u.instrument for u in result.on("md.book")} == {PERP}
    assert engine.risk.ledger("paper").funding == Decimal("3.0")  # 1 * 30000 * 0.01 %


class ShortOnce(Strategy[StrategyConfig]):
    """Sells 2 units on the first bar (a short from flat), nothing after."""

    name: ClassVar[str] = "short_once"

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        if self.n == 0:
            self.ctx.sell(Decimal("2"))
        self.n += 1


def day_bar(i: int, price: str) -> Bar:
    return Bar(
        instrument=PERP, ts_event=(i + 1) * DAY, ts_init=(i + 1) * DAY,
        record_id=f"bar-{i}", lineage_id="t", interval="1d", start_ns=i * DAY,
        end_ns=(i + 1) * DAY, open=Decimal(price), high=Decimal(price), low=Decimal(price),
        close=Decimal(price), volume=Decimal(1), quote_volume=Decimal(0), trades=0,
    )  # fmt: skip


def test_a_bar_backtest_of_a_perpetual_shorts_and_pays_funding(tmp_path: Path) -> None:
    """Funding at 12:00 of day 1 and 2 from a history CSV; the short opened at day 1's open
    receives both (positive rates), in realised P&L and in the equity curve."""
    path = tmp_path / "funding.csv"
    noon = DAY // 2 // 1_000_000
    path.write_text(
        "symbol,fundingTime,fundingRate,markPrice\n"
        f"BTCUSDT,{noon},0.0001,30000\n"  # day 0 noon: before the short, nothing to pay
        f"BTCUSDT,{DAY // 1_000_000 + noon},0.0001,30000\n"
        f"BTCUSDT,{2 * DAY // 1_000_000 + noon},0.0002,31000\n"
    )
    bars = [day_bar(0, "30000"), day_bar(1, "30000"), day_bar(2, "31000"), day_bar(3, "31000")]
    settings = load_settings(env=ENV)
    test = BarBacktest(settings, FillModel(fee_rate=Decimal(0)), ShortOnce(StrategyConfig()))
    result = test.run(bars, funding_marks(path))
    ledger = test.risk.ledger("paper")
    assert ledger.quantity(PERP) == Decimal("-2")
    want = Decimal("2") * Decimal("30000") * Decimal("0.0001") + Decimal("2") * Decimal(
        "31000"
    ) * Decimal("0.0002")
    assert ledger.funding == want == Decimal("18.4")
    equity = dict(result.equity)
    assert equity[4 * DAY] - equity[DAY] == want - 2 * (31000 - 30000)  # funding, then the loss


def test_a_backtest_liquidates_an_isolated_short_the_mark_moves_through() -> None:
    from algostream.model import MarkPrice, OrderStatus

    env = ENV | {"ALGOSTREAM__RISK__MARGIN_MODE": "ISOLATED",
                 "ALGOSTREAM__RISK__LIQUIDATION_FEE_PERCENT": "1"}  # fmt: skip
    engine = BacktestEngine(load_settings(env=env))
    engine.run([book(SEC // 2)])
    engine._propose(order("short", "1", SEC))
    engine.run([book(3 * SEC // 2)])

    def mark(ts: int, price: str) -> MarkPrice:
        return MarkPrice(
            instrument=PERP, ts_event=ts, ts_init=ts, record_id=f"m{ts}", lineage_id="r",
            mark_price=price, index_price=price, funding_rate="0", next_funding_ns=10**18,
        )  # fmt: skip

    # short 1 at 29999, 10x isolated: margin 2999.9; notional ~30 k is in Binance's first
    # bracket (mmr 0.4 %): P = (-29999 - 2999.9) / (-1 - 0.004) = 32998.9 / 1.004
    liq = Decimal("32998.9") / Decimal("1.004")
    engine.run([mark(2 * SEC, "32000"), mark(3 * SEC, "33000")])
    result = engine.finish()
    events = [e for e in result.on("orders.events") if isinstance(e, OrderEvent)]
    (closed,) = [e for e in events if e.reason.startswith("LIQUIDATED")]
    assert (closed.status, closed.side, closed.fill_qty) == (OrderStatus.FILLED, Side.BUY, 1)
    assert closed.fill_price == liq and closed.ts_event == 3 * SEC  # not at 32000
    assert closed.fee == liq / 100  # 1 % of the notional at the liquidation price
    assert engine.risk.ledger("paper").quantity(PERP) == 0
    pnl = [p for p in result.on("pnl") if isinstance(p, PnL)][-1]
    assert pnl.realized_pnl == Decimal(29999) - liq
    assert pnl.fees == Decimal("29.999") + closed.fee  # the short's 0.1 % + the liquidation


class BuyOnce(Strategy[StrategyConfig]):
    """Buys 1 unit on the first bar (a long from flat), nothing after."""

    name: ClassVar[str] = "buy_once"

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        if self.n == 0:
            self.ctx.buy(Decimal("1"))
        self.n += 1


def range_bar(i: int, o: str, h: str, lo: str, c: str) -> Bar:
    return day_bar(i, o).model_copy(
        update={"high": Decimal(h), "low": Decimal(lo), "close": Decimal(c)}
    )


ISOLATED = ENV | {
    "ALGOSTREAM__RISK__MARGIN_MODE": "ISOLATED",
    "ALGOSTREAM__RISK__LIQUIDATION_FEE_PERCENT": "1",
}


def test_a_bar_backtest_liquidates_a_long_whose_bar_low_reaches_its_liquidation_price() -> None:
    """Long 1 at 30000 (day 1's open), 10x isolated: margin 3000; 30 k notional is in the
    first bracket (mmr 0.4 %, cum 0): P = (1 x 30000 - 3000 - 0) / (1 - 0.004)
    = 27000 / 0.996 = 27108.43...; day 1's low 27500 stays above it, day 2's 27000 goes
    through: closed there (not at the low, nor the close), with 1 % of its notional as fee."""
    liq = Decimal(27000) / Decimal("0.996")
    assert Decimal("27108.43") < liq < Decimal("27108.44")
    bars = [
        day_bar(0, "30000"),
        range_bar(1, "30000", "30100", "27500", "29000"),
        range_bar(2, "29000", "29100", "27000", "28000"),
        day_bar(3, "28000"),
    ]
    test = BarBacktest(
        load_settings(env=ISOLATED), FillModel(fee_rate=Decimal(0)), BuyOnce(StrategyConfig())
    )
    result = test.run(bars)
    events = [e for _, e in result.outputs if isinstance(e, OrderEvent)]
    opened, closed = events
    assert (opened.side, opened.fill_price) == (Side.BUY, Decimal(30000))
    assert closed.reason.startswith("LIQUIDATED: LONG 1 BINANCE_USDM:BTCUSDT (ISOLATED)")
    assert "low 27000" in closed.reason and closed.strategy == "liquidation"
    assert (closed.side, closed.fill_qty, closed.fill_price) == (Side.SELL, 1, liq)
    assert closed.ts_event == 2 * DAY and closed.fee == liq / 100
    ledger = test.risk.ledger("paper")
    assert ledger.quantity(PERP) == 0
    assert ledger.realized_pnl == liq - 30000  # -2891.57: the margin less maintenance
    assert ledger.fees == liq / 100
    equity = dict(result.equity)
    assert equity[2 * DAY] == Decimal(100_000) - 1000  # day 1 marked at its close 29000
    assert equity[3 * DAY] == equity[4 * DAY]  # flat after it: nothing to mark
    # 100000 - 2891.566... - 271.084... = 96837.349... (to Decimal's 28 digits)
    assert abs(equity[3 * DAY] - (Decimal(100_000) + liq - 30000 - liq / 100)) < Decimal("1e-20")
    assert Decimal("96837.349") < equity[3 * DAY] < Decimal("96837.350")


def test_a_bar_backtest_liquidates_a_short_on_the_bar_high() -> None:
    """Short 2 at 30000, 10x isolated: margin 6000; 60 k notional (at the 31000 open: 62 k)
    is in the second bracket (mmr 0.5 %, cum 50): P = (-60000 - 6000 - 50) / (-2 - 0.01)
    = 66050 / 2.01 = 32860.69...; day 1's high 32800 stays below, day 2's 32900 crosses."""
    liq = Decimal(-66050) / Decimal("-2.01")
    bars = [
        day_bar(0, "30000"),
        range_bar(1, "30000", "32800", "29900", "31000"),
        range_bar(2, "31000", "32900", "30900", "32000"),
    ]
    test = BarBacktest(
        load_settings(env=ISOLATED), FillModel(fee_rate=Decimal(0)), ShortOnce(StrategyConfig())
    )
    result = test.run(bars)
    (closed,) = [
        e for _, e in result.outputs if isinstance(e, OrderEvent) and e.reason.startswith("LIQ")
    ]
    assert (closed.side, closed.fill_qty, closed.fill_price) == (Side.BUY, 2, liq)
    assert "high 32900" in closed.reason and closed.ts_event == 2 * DAY
    assert test.risk.ledger("paper").realized_pnl == 2 * (30000 - liq)
