"""Bar and tick backtest speed beside backtesting.py (``python -m bench.bars``).

Bars: backtesting.py's SMA(10)/SMA(20) quick-start on its GOOG data (2,148 daily bars,
cash 1,000,000, commission 0.2 %, all in, closed at the end) in backtesting.py and in
algostream's :class:`~algostream.backtest.bars.BarBacktest` (same trades and final
equity: ``tests/unit/backtest/test_backtest_vs_backtesting_py.py``); each timed from data
in memory (a DataFrame there, Bar records here) to the result, best of N.
Ticks: :class:`~algostream.backtest.engine.BacktestEngine` over normalised ``md.book`` +
``md.trades`` records (book stage, bars, features, strategy, risk, paper fills), and over
100,000 seeded trades beside NautilusTrader's engine on the same trades (when a Python
with ``nautilus_trader`` is found: ``$NAUTILUS_PYTHON`` or this one).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

from algostream.backtest.bar_input import read_ohlcv_csv
from algostream.backtest.bars import BarBacktest, FillModel
from algostream.backtest.engine import BacktestEngine, EncodedBook
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import Settings
from algostream.model.enums import Side
from algostream.model.records import BookUpdate, TradeTick
from algostream.signals.sma import SmaCross, SmaCrossConfig

NAUTILUS = Path(__file__).with_name("nautilus_ticks.py")

RUNS = 7
BLURB = [
    "backtesting.py's SMA(10)/SMA(20) quick-start on its GOOG data (2,148 daily bars, cash",
    "1,000,000, commission 0.2 %, all in, closed at the end) in backtesting.py and in",
    "`BarBacktest` (the same 94 trades and final equity, checked by",
    "`tests/unit/backtest/test_backtest_vs_backtesting_py.py`), each from data in memory to",
    "the result, best of 7 in one process, in CPU seconds of the process",
    "(`time.process_time`: steadier than wall time on a shared machine; every thread of",
    "NautilusTrader's counts). Ticks: `BacktestEngine` over normalised `md.book`",
    "+ `md.trades` records of the seeded synthetic market (book stage, bars, features,",
    "strategy, risk, paper broker), best of 5; the recorded Binance.US capture of",
    "`tests/data` (raw frames, then its records), best of 7. `python -m bench.run --backtest` (or",
    "`make bench-backtest`) re-measures only this section. Trades: 100,000 seeded ETHUSDT",
    "trades (a random walk) through `BacktestEngine` (1 s and 1 m bars, features, the",
    "default strategy, risk: with no book in the input its orders are refused,",
    "NO_MARKET_DATA, so it makes no fills) and through NautilusTrader's `BacktestEngine`",
    "with its EMACross example on 1 s bars (it fills its orders on the trades), in a",
    "Python that has `nautilus_trader` (`NAUTILUS_PYTHON`; it needs pandas < 3, so it has",
    "a venv of its own). The last column: each tick row's events/s over NautilusTrader's",
    "ticks/s in the same run (its input is trades only: the book rows do more per event).",
    '"From the encoded bytes": the same records as a replay from the topics or a capture',
    "gives them to the engine (`backtest_input`: md.book as bytes, run through the book",
    "stage's compiled path, decoded only where it hands back; md.trades decoded), and, as",
    "before, each decoded first (`Record.decode`), in the run.",
]
WIDE = {
    "risk": {
        "starting_equity": "1000000",
        "max_position_size": "1e9",
        "max_notional_exposure": "1e12",
        "max_order_notional": "1e12",
        "max_loss_threshold": "1e12",
        "enable_circuit_breaker": False,
        "stop_loss_percent": "0",
        "trailing_stop_percent": "0",
    }
}


def best(fn: Any, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def backtesting_py() -> tuple[int, float] | None:
    try:
        from backtesting.test import GOOG

        from bench.reference import sma_cross_backtest

        bt = sma_cross_backtest()
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(GOOG), best(bt.run)


def algostream_bars() -> tuple[int, float]:
    from pathlib import Path

    import backtesting

    goog = Path(backtesting.__file__).parent / "test" / "GOOG.csv"
    bars = read_ohlcv_csv(goog, "NASDAQ:GOOG")
    settings = Settings.model_validate(WIDE)
    fill = FillModel(fee_rate=Decimal("0.002"), step=Decimal(1), close_at_end="last_open")
    return len(bars), best(
        lambda: BarBacktest(settings, fill, SmaCross(SmaCrossConfig())).run(bars)
    )


def recorded() -> list[str]:
    """The recorded Binance.US capture of ``tests/data`` (small: a rate, not a load test)."""
    from algostream.backtest.capture import load_recorded_binance_capture
    from algostream.config import load_settings
    from algostream.model.records import RawFrame

    cap = Path(__file__).resolve().parents[1] / "tests" / "data" / "binance-us-capture"
    symbols = '["COMPUSDT","CRVUSDT","OMGBUSD","ZRXUSDT"]'
    settings = load_settings(env={"ALGOSTREAM__MARKET_DATA__SYMBOLS": symbols})
    entries = load_recorded_binance_capture(cap / "BINANCE_US.ws.1.0", cap / "BINANCE_US.http.0.0")
    raws = [e.record(RawFrame) for e in entries]
    first = BacktestEngine(settings).run(raws)
    records = [r for t, r in first.outputs if t in ("md.book", "md.trades")]
    raw_s = best(lambda: BacktestEngine(settings).run(raws))
    rec_s = best(lambda: BacktestEngine(settings).run(records))
    encoded = [(type(r), r.ts_event, r.encode()) for r in records]

    def from_bytes() -> None:
        BacktestEngine(settings).run(
            EncodedBook(ts, payload) if cls is BookUpdate else cls.decode(payload)
            for cls, ts, payload in encoded
        )

    enc_s = best(from_bytes)
    return [
        f"| algostream BacktestEngine, recorded Binance.US capture, raw frames (adapter + all) "
        f"| {len(raws)} | {raw_s:.4f} | {len(raws) / raw_s:,.0f} | - |",
        f"| algostream BacktestEngine, the same capture's md.book + md.trades records "
        f"| {len(records)} | {rec_s:.4f} | {len(records) / rec_s:,.0f} | - |",
        f"| same, from their encoded bytes (md.book compiled, as replayed) "
        f"| {len(records)} | {enc_s:.4f} | {len(records) / enc_s:,.0f} | - |",
    ]


def ticks(n: int = 20_000) -> tuple[int, float, float, float]:
    """The synthetic market's md.book + md.trades records through ``BacktestEngine``: CPU
    seconds from the records; from their encoded bytes as a replay gives them to the
    engine (``backtest_input``: md.book as bytes, through the book stage's compiled path;
    md.trades decoded); and from the bytes each decoded first (as before)."""
    raw = BacktestEngine(Settings()).run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, n))
    records = [r for t, r in raw.outputs if t in ("md.book", "md.trades")]
    encoded = [(type(r), r.ts_event, r.encode()) for r in records]
    del raw

    def from_bytes() -> None:
        BacktestEngine(Settings()).run(
            EncodedBook(ts, payload) if cls is BookUpdate else cls.decode(payload)
            for cls, ts, payload in encoded
        )

    def decoded() -> None:
        BacktestEngine(Settings()).run(cls.decode(payload) for cls, _, payload in encoded)

    runs = 5
    return (
        len(records),
        best(lambda: BacktestEngine(Settings()).run(records), runs),
        best(from_bytes, runs),
        best(decoded, runs),
    )


def write_trades(path: Path, n: int = 100_000, seed: int = 7) -> None:
    """A seeded random walk of ``n`` ETHUSDT trades (the CSV both engines read)."""
    rnd = random.Random(seed)
    ts, price = 1_767_225_600_000_000_000, 3000.0
    with path.open("w") as out:
        out.write("ts_ns,price,quantity,buyer_maker,trade_id\n")
        for i in range(n):
            ts += rnd.randint(1, 40) * 1_000_000
            price = max(100.0, price + rnd.gauss(0, 0.5))
            size = rnd.randint(1, 200) / 10_000
            out.write(f"{ts},{price:.2f},{size:.5f},{rnd.random() < 0.5},{i}\n")


def trade_records(path: Path) -> list[TradeTick]:
    out: list[TradeTick] = []
    for line in path.read_text().splitlines()[1:]:
        ts, price, qty, maker, tid = line.split(",")
        out.append(
            TradeTick.model_construct(
                instrument="BINANCE:ETHUSDT",
                ts_event=int(ts),
                ts_init=int(ts),
                record_id=f"t{tid}",
                lineage_id="bench",
                trade_id=tid,
                price=Decimal(price),
                size=Decimal(qty),
                aggressor_side=Side.SELL if maker == "True" else Side.BUY,
            )
        )
    return out


def nautilus_python() -> str | None:
    """A Python with nautilus_trader: ``$NAUTILUS_PYTHON`` or this one."""
    for candidate in (os.environ.get("NAUTILUS_PYTHON"), sys.executable):
        if (
            candidate
            and subprocess.run(
                [candidate, "-c", "import nautilus_trader"], capture_output=True, check=False
            ).returncode
            == 0
        ):
            return candidate
    return None


def trade_ticks() -> tuple[list[str], float | None]:
    """algostream's tick engine and NautilusTrader's on the same 100,000 trades; the rows
    (their last column left to :func:`main`) and NautilusTrader's ticks per CPU second."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades.csv"
        write_trades(path)
        records = trade_records(path)
        settings = Settings.model_validate({"market_data": {"symbols": ["ETHUSDT"]}})
        secs = best(lambda: BacktestEngine(settings).run(records), 3)
        rows = [
            f"| algostream BacktestEngine, trades only (bars, features, strategy, risk) | "
            f"{len(records)} | {secs:.3f} | {len(records) / secs:,.0f} | - |"
        ]
        python = nautilus_python()
        if python is None:
            return [
                *rows,
                "| NautilusTrader | - | - | - | not installed here: set "
                "NAUTILUS_PYTHON to a Python that has nautilus_trader |",
            ], None
        done = subprocess.run(
            [python, str(NAUTILUS), str(path)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            return [*rows, f"| NautilusTrader | failed: {done.stderr.strip()[-200:]} |"], None
        ticks, nsecs, _fills = done.stdout.split()[-3:]
        rate = int(ticks) / float(nsecs)
        return [
            *rows,
            f"| NautilusTrader BacktestEngine, same trades (EMACross on 1 s bars) | {ticks} | "
            f"{float(nsecs):.3f} | {rate:,.0f} | - |",
        ], rate


def with_ratio(row: str, nautilus: float | None) -> str:
    """``row`` with its rate over NautilusTrader's ticks/s (a last column; bars: none)."""
    if nautilus is None or " bars |" in row:
        return f"{row} - |"
    rate = float(row.split("|")[4].replace(",", ""))
    return f"{row} {rate / nautilus:.2f}x |"


def main() -> list[str]:
    lines = [
        "| run | events | best CPU seconds | events/s | vs backtesting.py "
        "| vs NautilusTrader's ticks/s |",
        "|---|---|---|---|---|---|",
    ]
    ref = backtesting_py()
    n, secs = algostream_bars()
    rows = []
    if ref is not None:
        rn, rsecs = ref
        rows.append(
            f"| backtesting.py 0.6 SMA(10/20) GOOG | {rn} bars | {rsecs:.4f} | "
            f"{rn / rsecs:,.0f} | 1.00x |"
        )
        ratio = f"{(n / secs) / (rn / rsecs):.2f}x"
    else:
        ratio = "backtesting.py not installed"
    rows.append(
        f"| algostream BarBacktest, same | {n} bars | {secs:.4f} | {n / secs:,.0f} | {ratio} |"
    )
    tn, tsecs, bsecs, dsecs = ticks()
    rows += [
        f"| algostream BacktestEngine, md.book + md.trades records | {tn} | {tsecs:.3f} | "
        f"{tn / tsecs:,.0f} | - |",
        f"| same, from the records' encoded bytes (md.book compiled, as replayed) | {tn} | "
        f"{bsecs:.3f} | {tn / bsecs:,.0f} | - |",
        f"| same, from the encoded bytes, each decoded first (decode + engine) | {tn} | "
        f"{dsecs:.3f} | {tn / dsecs:,.0f} | - |",
    ]
    rows += recorded()
    trade_rows, nautilus = trade_ticks()
    rows += trade_rows
    return [*lines, *(with_ratio(row, nautilus) for row in rows)]


if __name__ == "__main__":
    print("\n".join(main()))
