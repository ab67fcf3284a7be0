"""The golden backtest: a fixed synthetic market through the live processors.

Pins exact counts and the exact final equity; two runs give bit-identical reports.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from algostream.backtest.run import run_backtest
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import load_settings
from algostream.model import OrderEvent, RawFrame

REPO = Path(__file__).resolve().parents[3]


def test_golden_backtest_counts_and_final_equity(tmp_path: Path) -> None:
    settings = load_settings(REPO / "config" / "system.json", env={})
    frames = synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 20_000)
    result, report = run_backtest(settings, frames, tmp_path / "a")
    assert result.counts == {
        "md.book": 20002,
        "book.top": 20002,
        "md.trades": 3883,
        "bars.1s": 727,  # the last 1s and 1m bar of each instrument close at the end
        "bars.1m": 14,
        "features": 727,
        "signals": 54,
        "orders.proposed": 54,
        "orders.approved": 54,
        "orders.events": 108,
        "positions": 641,
        "pnl": 641,
    }
    assert result.equity_curve[-1] == (1767225999221000000, Decimal("99991.0822088000000"))
    fills = [f for f in result.fills if isinstance(f, OrderEvent)]
    assert len(fills) == 54
    assert sum(f.fee for f in fills) == Decimal("8.9199912000000")
    assert report is not None and report.trade_count == 25

    again, _ = run_backtest(
        settings, synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 20_000), tmp_path / "b"
    )
    assert [r.encode() for _, r in again.outputs] == [r.encode() for _, r in result.outputs]
    assert (tmp_path / "a" / "summary.json").read_bytes() == (
        tmp_path / "b" / "summary.json"
    ).read_bytes()
    html = (tmp_path / "a" / "report.html").read_text()
    assert "http://" not in html and "https://" not in html


def test_synthetic_history_is_deterministic() -> None:
    a = synthetic_frames(("BTCUSDT",), 3, 500)
    b = synthetic_frames(("BTCUSDT",), 3, 500)
    assert [f.record_id for f in a] == [f.record_id for f in b]
    assert all(isinstance(f, RawFrame) for f in a)
    assert a[0].stream.startswith("rest:")


def test_recorded_capture_runs_through_the_engine() -> None:
    from algostream.backtest.capture import load_recorded_binance_capture
    from algostream.backtest.engine import BacktestEngine

    cap = REPO / "tests" / "data" / "binance-us-capture"
    settings = load_settings(
        env={"ALGOSTREAM__MARKET_DATA__SYMBOLS": '["COMPUSDT","CRVUSDT","OMGBUSD","ZRXUSDT"]'}
    )
    raws = [
        e.record(RawFrame)
        for e in load_recorded_binance_capture(
            cap / "BINANCE_US.ws.1.0", cap / "BINANCE_US.http.0.0"
        )
    ]
    result = BacktestEngine(settings).run(raws)
    assert result.counts["md.trades"] == 11  # the capture's 11 aggTrades
    assert result.counts["book.top"] == result.counts["md.book"]
    assert "book.integrity" not in result.counts  # the recorded chains have no gap
