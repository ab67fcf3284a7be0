"""Event-time bars vs an independent pandas resample, and vs Binance's own klines."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marketdata_testkit import trade, ws_lines

from algostream.marketdata.bars import INTERVAL_NS, BarAggregator
from algostream.marketdata.binance import parse_frame
from algostream.marketdata.errors import BookStateError
from algostream.model import Bar, TradeTick

OMG = "BINANCE:OMGBUSD"
D = Decimal


def pandas_bars(rows: list[tuple[int, Decimal, Decimal]], interval: str) -> list[tuple]:
    """Independent OHLCV: pandas resample over (ts_ns, price, size), empty buckets dropped."""
    df = pd.DataFrame(rows, columns=["ts", "price", "size"])
    df["quote"] = [p * s for _, p, s in rows]
    df["ts"] = pd.to_datetime(df["ts"], unit="ns")
    rule = {"1s": "1s", "1m": "1min"}[interval]
    agg = (
        df.set_index("ts")
        .resample(rule)
        .agg({"price": ["first", "max", "min", "last", "count"], "size": "sum", "quote": "sum"})
    )
    out = []
    for start, row in agg.iterrows():
        if row[("price", "count")] == 0:
            continue
        out.append(
            (
                start.value,
                row[("price", "first")],
                row[("price", "max")],
                row[("price", "min")],
                row[("price", "last")],
                D(row[("size", "sum")]),
                D(row[("quote", "sum")]),
                int(row[("price", "count")]),
            )
        )
    return out


def as_rows(bars: list[Bar]) -> list[tuple]:
    return [
        (b.start_ns, b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trades)
        for b in bars
    ]


def run(agg: BarAggregator, ticks: list[TradeTick], flush_at: int | None = None) -> list[Bar]:
    bars: list[Bar] = []
    for tick in ticks:
        result = agg.on_trade(tick)
        assert result.late == []
        bars += result.bars
    if flush_at is not None:
        bars += agg.on_time(flush_at)
    return bars


def captured_trades() -> list[tuple[TradeTick, dict]]:
    out = []
    for line in ws_lines():
        data = json.loads(line.frame)["data"]
        if data.get("e") == "aggTrade":
            out.append((parse_frame(line.frame, line.recv_ns).trades[0], data))
    return out


@pytest.mark.parametrize("interval", ["1s", "1m"])
def test_bars_from_captured_agg_trades_match_pandas_resample(interval: str) -> None:
    pairs = captured_trades()
    rows = [(d["T"] * 1_000_000, D(d["p"]), D(d["q"])) for _, d in pairs]
    expected = pandas_bars(rows, interval)
    bars = run(BarAggregator(interval), [t for t, _ in pairs], flush_at=10**19)
    assert as_rows(bars) == expected
    assert len(expected) == (5 if interval == "1s" else 2)
    for bar in bars:
        assert Bar.decode(bar.encode()) == bar
        assert bar.end_ns == bar.start_ns + INTERVAL_NS[interval] == bar.ts_event


def kline_frames() -> list[dict]:
    return [json.loads(line.frame)["data"] for line in ws_lines() if "@kline_1m" in line.frame]


def test_stitched_1m_bar_equals_binances_closed_kline() -> None:
    """The 12:24 window opened before the capture: its first kline update covers trades up
    to id L; our bar over the later trades, merged with it, must equal the closed kline."""
    klines = kline_frames()
    first, closed = klines[0]["k"], next(k["k"] for k in klines if k["k"]["x"])
    assert first["t"] == closed["t"]
    later = [(t, d) for t, d in captured_trades() if d["f"] > first["L"] and d["T"] <= closed["T"]]
    ids = [i for _, d in later for i in range(d["f"], d["l"] + 1)]
    assert ids == list(range(first["L"] + 1, closed["L"] + 1))  # no trade missing
    agg = BarAggregator("1m")
    run(agg, [t for t, _ in later])
    bar = agg.open_bar(OMG)
    assert bar is not None and bar.start_ns == closed["t"] * 1_000_000
    assert D(first["o"]) == D(closed["o"])
    assert max(D(first["h"]), bar.high) == D(closed["h"])
    assert min(D(first["l"]), bar.low) == D(closed["l"])
    assert bar.close == D(closed["c"])
    assert D(first["v"]) + bar.volume == D(closed["v"])
    assert D(first["q"]) + bar.quote_volume == D(closed["q"])
    assert first["n"] + bar.trades == closed["n"]


def test_1m_bar_of_a_window_the_capture_fully_covers_equals_the_kline() -> None:
    kline = next(k for k in kline_frames() if k["k"]["t"] == 1633998300000)
    k = kline["k"]
    ticks = [t for t, d in captured_trades() if d["T"] >= k["t"] and d["E"] <= kline["E"]]
    assert ws_lines()[0].recv_ns < k["t"] * 1_000_000  # the capture started before the window
    agg = BarAggregator("1m")
    run(agg, ticks)
    bar = agg.open_bar(OMG)
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close) == tuple(D(k[x]) for x in "ohlc")
    assert (bar.volume, bar.quote_volume, bar.trades) == (D(k["v"]), D(k["q"]), k["n"])


INSTS = ("BINANCE:AAAUSDT", "BINANCE:BBBUSDT")
trade_lists = st.lists(
    st.tuples(
        st.sampled_from(INSTS),
        st.integers(0, 5 * 60 * 10**9),
        st.integers(1, 10**6).map(lambda i: D(i) / 100),
        st.integers(1, 10**8).map(lambda i: D(i) / 10**6),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(trade_lists, st.sampled_from(["1s", "1m"]))
def test_bars_match_pandas_for_random_in_order_trades(rows, interval) -> None:
    rows = sorted(rows, key=lambda r: r[1])
    ticks = [trade(inst, n, ts, str(p), str(s)) for n, (inst, ts, p, s) in enumerate(rows)]
    bars = run(BarAggregator(interval), ticks, flush_at=10**19)
    for inst in INSTS:
        mine = as_rows([b for b in bars if b.instrument == inst])
        theirs = (
            pandas_bars([(ts, p, s) for i, ts, p, s in rows if i == inst], interval)
            if any(r[0] == inst for r in rows)
            else []
        )
        assert mine == theirs


def test_out_of_order_trades_are_returned_as_late_and_change_nothing() -> None:
    agg = BarAggregator("1s")
    inst = "BINANCE:BTCUSDT"
    agg.on_trade(trade(inst, 1, 5_100_000_000, "10", "1"))
    result = agg.on_trade(trade(inst, 2, 4_900_000_000, "99", "1"))  # older bucket
    assert [t.trade_id for t in result.late] == ["2"] and result.bars == []
    (closed,) = agg.on_trade(trade(inst, 3, 6_000_000_000, "11", "1")).bars  # boundary: next
    assert (closed.high, closed.trades) == (D(10), 1)
    assert [t.trade_id for t in agg.on_trade(trade(inst, 4, 5_999_999_999, "1", "1")).late] == ["4"]
    assert agg.on_time(6_500_000_000) == []  # bucket 6 s is still open
    (bar,) = agg.on_time(7_000_000_000)
    assert bar.start_ns == 6_000_000_000 and bar.ts_init == 7_000_000_000
    late = agg.on_trade(trade("BINANCE:ETHUSDT", 5, 6_900_000_000, "1", "1")).late
    assert len(late) == 1  # behind the watermark, even for another instrument


def test_quiet_buckets_produce_no_bar() -> None:
    agg = BarAggregator("1s")
    inst = "BINANCE:BTCUSDT"
    agg.on_trade(trade(inst, 1, 1_000_000_000, "10", "1"))
    (bar,) = agg.on_trade(trade(inst, 2, 9_000_000_000, "10", "1")).bars
    assert bar.start_ns == 1_000_000_000
    assert agg.on_time(9_500_000_000) == [] and agg.on_time(20 * 10**9)[0].start_ns == 9 * 10**9
    assert agg.on_time(30 * 10**9) == []


def test_quote_volume_is_exact() -> None:
    agg = BarAggregator("1m")
    inst = "BINANCE:BTCUSDT"
    for n, (p, q) in enumerate([("0.1", "3"), ("0.2", "0.1"), ("27123.45678901", "0.00000001")]):
        agg.on_trade(trade(inst, n, n, p, q))
    bar = agg.open_bar(inst)
    assert bar is not None
    assert bar.quote_volume == D("0.3") + D("0.02") + D("0.0002712345678901")
    assert bar.volume == D("3.10000001")


def test_state_restore_mid_stream_gives_the_same_bars() -> None:
    ticks = [t for t, _ in captured_trades()]
    whole = run(BarAggregator("1s"), ticks, flush_at=10**19)
    first = BarAggregator("1s")
    bars = run(first, ticks[:6])
    restored = BarAggregator.from_state(json.loads(json.dumps(first.to_state())))
    bars += run(restored, ticks[6:], flush_at=10**19)
    assert bars == whole


def test_bad_state_and_interval_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        BarAggregator("7m")  # type: ignore[arg-type]
    agg = BarAggregator("1s")
    agg.on_trade(trade("BINANCE:BTCUSDT", 1, 1, "10", "1"))
    state = agg.to_state()
    state["open"]["BINANCE:BTCUSDT"]["high"] = 10.5
    with pytest.raises(BookStateError, match="high"):
        BarAggregator.from_state(state)
    del state["watermark_ns"]
    with pytest.raises(BookStateError, match="watermark_ns"):
        BarAggregator.from_state(state)


@pytest.mark.parametrize(("interval", "start"), [("5m", 1_767_225_900), ("1d", 1_767_225_600)])
def test_longer_intervals_bucket_on_the_epoch(interval: str, start: int) -> None:
    """A 5m bar starts on a multiple of 5 minutes, a 1d bar at UTC midnight (2026-01-01)."""
    agg = BarAggregator(interval)  # type: ignore[arg-type]
    ts = 1_767_226_000 * 10**9
    agg.on_trade(trade("BINANCE:BTCUSDT", 1, ts, "10", "1"))
    bar = agg.on_trade(trade("BINANCE:BTCUSDT", 2, ts + 86_400 * 10**9, "11", "1")).bars[0]
    assert (bar.interval, bar.start_ns, bar.end_ns - bar.start_ns) == (
        interval,
        start * 10**9,
        INTERVAL_NS[interval],
    )
