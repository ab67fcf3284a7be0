"""History readers: Binance dumps in their documented layouts, generic OHLCV, captures."""

from __future__ import annotations

import csv
import zipfile
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from algostream.backtest.capture import CaptureEntry, write_capture
from algostream.history import (
    HistoryFormatError,
    HistoryUsageError,
    ReadStats,
    read_bars,
    read_records,
    read_trades,
)
from algostream.model.enums import Side
from algostream.model.records import Bar, TradeTick

DATA = Path(__file__).resolve().parents[2] / "data" / "history"


def _csv(name: str) -> list[list[str]]:
    with (DATA / name).open() as f:
        return [row for row in csv.reader(f) if row and row[0][0].isdigit()]


@pytest.mark.parametrize(
    ("name", "fmt", "instrument", "interval", "unit"),
    [
        ("BTCUSDT-1m-2024-01-01.csv", "binance-spot-klines", "BINANCE:BTCUSDT", "1m", 10**6),
        ("BTCUSDT-1h-2025-01-01.csv", "binance-spot-klines", "BINANCE:BTCUSDT", "1h", 10**3),
        ("ETHUSDT-5m-2024-03-01.csv", "binance-um-klines", "BINANCE_UM:ETHUSDT", "5m", 10**6),
    ],
)
def test_klines_become_bars_with_exact_values(
    name: str, fmt: str, instrument: str, interval: str, unit: int
) -> None:
    rows = _csv(name)
    stats = ReadStats()
    bars = list(read_bars(DATA / name, fmt, stats=stats))
    assert len(bars) == len(rows) == stats.accepted == stats.rows
    for bar, row in zip(bars, rows, strict=True):
        assert bar.instrument == instrument and bar.interval == interval
        assert bar.start_ns == int(row[0]) * unit
        assert bar.end_ns == bar.ts_event == int(row[6]) * unit + unit
        assert (bar.open, bar.high, bar.low, bar.close) == tuple(Decimal(c) for c in row[1:5])
        assert bar.volume == Decimal(row[5]) and bar.quote_volume == Decimal(row[7])
        assert bar.trades == int(row[8])
        Bar.model_validate(bar.model_dump())  # what was built is a valid record
    assert stats.first_ns == bars[0].ts_event and stats.last_ns == bars[-1].ts_event


@pytest.mark.parametrize(
    ("name", "fmt", "id_col", "ts_col", "maker_col", "unit"),
    [
        ("BTCUSDT-aggTrades-2024-01-01.csv", "binance-spot-aggtrades", 0, 5, 6, 10**6),
        ("BTCUSDT-aggTrades-2024-02-01.csv", "binance-um-aggtrades", 0, 5, 6, 10**6),
        ("BTCUSDT-trades-2025-01-01.csv", "binance-spot-trades", 0, 4, 5, 10**3),
        ("ETHUSDT-trades-2024-03-01.csv", "binance-um-trades", 0, 4, 5, 10**6),
    ],
)
def test_trade_dumps_become_trade_ticks(
    name: str, fmt: str, id_col: int, ts_col: int, maker_col: int, unit: int
) -> None:
    rows = _csv(name)
    ticks = list(read_trades(DATA / name, fmt))
    assert len(ticks) == len(rows)
    for tick, row in zip(ticks, rows, strict=True):
        assert tick.trade_id == row[id_col]
        assert tick.ts_event == int(row[ts_col]) * unit
        assert tick.price == Decimal(row[1]) and tick.size == Decimal(row[2])
        # the buyer was the maker: the seller crossed the spread
        assert tick.aggressor_side is (Side.SELL if row[maker_col].lower() == "true" else Side.BUY)
        TradeTick.model_validate(tick.model_dump())


def test_a_trade_from_a_dump_has_the_live_adapters_record_id() -> None:
    from algostream.marketdata.binance import parse_frame

    tick = next(read_trades(DATA / "BTCUSDT-aggTrades-2024-01-01.csv", "binance-spot-aggtrades"))
    frame = (
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":3000000,'
        '"p":"42283.59","q":"0.36170","f":6000000,"l":6000002,"T":1704067200427,"m":true}}'
    )
    live = parse_frame(frame, 5, "BINANCE").trades[0]
    assert (live.record_id, live.ts_event, live.price) == (
        tick.record_id,
        tick.ts_event,
        tick.price,
    )


def test_a_zipped_dump_reads_like_the_csv(tmp_path: Path) -> None:
    src = DATA / "BTCUSDT-1m-2024-01-01.csv"
    zipped = tmp_path / "BTCUSDT-1m-2024-01-01.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.write(src, src.name)

    def fields(path: Path) -> list[dict[str, object]]:
        return [
            b.model_dump(exclude={"lineage_id"}) for b in read_bars(path, "binance-spot-klines")
        ]

    assert fields(zipped) == fields(src)


def test_a_gzipped_file_reads_like_the_csv_and_a_broken_one_is_named(tmp_path: Path) -> None:
    import gzip

    src = DATA / "ETHUSDT-trades-2024-03-01.csv"
    packed = tmp_path / (src.name + ".gz")
    packed.write_bytes(gzip.compress(src.read_bytes(), mtime=0))
    fmt = "binance-um-trades"
    assert [t.price for t in read_trades(packed, fmt)] == [t.price for t in read_trades(src, fmt)]
    packed.write_bytes(packed.read_bytes()[:400])  # cut short
    with pytest.raises(HistoryFormatError, match="unreadable"):
        list(read_trades(packed, fmt))


def test_a_byte_order_mark_is_not_a_header(tmp_path: Path) -> None:
    src = DATA / "BTCUSDT-1m-2024-01-01.csv"
    marked = tmp_path / src.name
    marked.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    assert len(list(read_bars(marked, "binance-spot-klines"))) == 30


def _bad_copy(tmp_path: Path, name: str, line: int, col: int, value: str) -> Path:
    lines = (DATA / name).read_text().splitlines()
    cells = lines[line - 1].split(",")
    cells[col] = value
    lines[line - 1] = ",".join(cells)
    out = tmp_path / name
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize(
    ("name", "fmt", "line", "col", "value", "column", "says"),
    [
        ("BTCUSDT-1m-2024-01-01.csv", "binance-spot-klines", 7, 2, "abc", "high", "not a decimal"),
        ("BTCUSDT-1m-2024-01-01.csv", "binance-spot-klines", 4, 2, "1", "high", "below"),
        ("BTCUSDT-1m-2024-01-01.csv", "binance-spot-klines", 9, 6, "1704067200001", "close_time",
         "does not close"),
        ("ETHUSDT-trades-2024-03-01.csv", "binance-um-trades", 8, 4, "1709251200000", "time",
         "time order"),
        ("BTCUSDT-aggTrades-2024-02-01.csv", "binance-um-aggtrades", 12, 6, "maybe",
         "is_buyer_maker", "not true or false"),
        ("BTCUSDT-trades-2025-01-01.csv", "binance-spot-trades", 5, 4, "17356", "time",
         "millisecond or microsecond"),
        ("ETHUSDT-trades-2024-03-01.csv", "binance-um-trades", 8, 1, "-3", "price", "> 0"),
    ],
)  # fmt: skip
def test_a_bad_row_is_an_error_naming_file_line_and_column(
    tmp_path: Path, name: str, fmt: str, line: int, col: int, value: str, column: str, says: str
) -> None:
    bad = _bad_copy(tmp_path, name, line, col, value)
    with pytest.raises(HistoryFormatError) as err:
        list(read_records(bad, fmt))
    assert (err.value.path, err.value.line, err.value.column) == (str(bad), line, column)
    assert says in err.value.reason and str(bad) in str(err.value)


def test_keep_going_counts_every_bad_row_and_reads_the_rest(tmp_path: Path) -> None:
    bad = _bad_copy(tmp_path, "BTCUSDT-aggTrades-2024-01-01.csv", 10, 1, "x")
    text = bad.read_text().splitlines()
    text[19] = "1,2,3"  # a short row
    text.insert(30, "")  # an empty line
    bad.write_text("\n".join(text) + "\n")
    stats = ReadStats(keep_going=True)
    ticks = list(read_records(bad, "binance-spot-aggtrades", stats=stats))
    assert len(ticks) == 398 and stats.rejected == 3 and stats.rows == 401
    assert [(e.line, e.column) for e in stats.errors] == [(10, "price"), (20, None), (31, None)]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("ETHUSDT-5m-2024-03-01.csv", "binance-um-aggtrades"),  # klines given as aggTrades
        ("BTCUSDT-aggTrades-2024-01-01.csv", "binance-um-aggtrades"),  # spot given as futures
        ("BTCUSDT-1m-2024-01-01.csv", "binance-spot-trades"),
        ("GOOG-daily.csv", "binance-spot-klines"),
    ],
)
def test_a_file_that_is_not_its_format_is_refused_on_its_first_line(name: str, fmt: str) -> None:
    with pytest.raises(HistoryFormatError) as err:
        list(read_records(DATA / name, fmt))
    assert err.value.line == 1


def test_an_interval_the_engine_does_not_know_is_named(tmp_path: Path) -> None:
    rows = (DATA / "BTCUSDT-1m-2024-01-01.csv").read_text().splitlines()
    cells = rows[0].split(",")
    cells[6] = str(int(cells[0]) + 420_000 - 1)  # a 7-minute bar: no venue's interval
    path = tmp_path / "BTCUSDT-7m.csv"
    path.write_text(",".join(cells) + "\n")
    with pytest.raises(HistoryFormatError, match=r"420s is not an interval"):
        list(read_bars(path, "binance-spot-klines"))
    with pytest.raises(HistoryUsageError, match="'7m' is not one the engine knows"):
        read_records(path, "binance-spot-klines", interval="7m")


def test_ohlcv_csv_as_backtesting_py_saves_it() -> None:
    frame = pd.read_csv(DATA / "GOOG-daily.csv", index_col=0, dtype=str)
    bars = list(read_bars(DATA / "GOOG-daily.csv", symbol="GOOG", venue="NASDAQ"))
    assert len(bars) == len(frame)
    assert {b.interval for b in bars} == {"1d"} and bars[0].instrument == "NASDAQ:GOOG"
    for bar, (date, row) in zip(bars, frame.iterrows(), strict=True):
        assert bar.start_ns == pd.Timestamp(date, tz="UTC").value
        assert bar.close == Decimal(row["Close"]) and bar.volume == Decimal(row["Volume"])


def test_ohlcv_parquet_with_a_datetime_index(tmp_path: Path) -> None:
    index = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC", name="Datetime")
    frame = pd.DataFrame(
        {"Open": 10.0, "High": 10.5, "Low": 9.5, "Close": [10.0 + i / 10 for i in range(48)],
         "Volume": 3.0}, index=index
    )  # fmt: skip
    frame["High"] = frame[["Open", "Close"]].max(axis=1) + 0.5
    path = tmp_path / "X.parquet"
    frame.to_parquet(path)
    bars = list(read_bars(path, symbol="X"))
    assert len(bars) == 48 and bars[0].interval == "1h"
    assert bars[3].close == Decimal("10.3")  # the float's shortest repr, not 10.2999...
    assert bars[0].start_ns == index[0].value


def test_ohlcv_bad_cell_names_line_and_column(tmp_path: Path) -> None:
    lines = (DATA / "GOOG-daily.csv").read_text().splitlines()
    lines[5] = lines[5].replace("-", "/", 1).split(",")[0] + ",1,2,3,x,5"
    path = tmp_path / "g.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryFormatError) as err:
        list(read_bars(path, symbol="G"))
    assert (err.value.line, err.value.column) == (6, "Close")
    path.write_text("when,Open,High,Low,Close\n2024-01-01,1,1,1,1\n")
    with pytest.raises(HistoryFormatError, match="no time column"):
        list(read_bars(path, symbol="G"))


def test_trades_aggregate_into_bars_with_the_last_bar_closed() -> None:
    bars = list(read_bars(DATA / "BTCUSDT-aggTrades-2024-01-01.csv", "binance-spot-aggtrades"))
    ticks = list(read_trades(DATA / "BTCUSDT-aggTrades-2024-01-01.csv", "binance-spot-aggtrades"))
    assert sum(b.trades for b in bars) == len(ticks)
    assert bars[-1].close == ticks[-1].price
    assert sum(b.volume for b in bars) == sum(t.size for t in ticks)


def test_capture_files_are_history(tmp_path: Path) -> None:
    ticks = list(read_trades(DATA / "ETHUSDT-trades-2024-03-01.csv", "binance-um-trades"))
    entries = [
        CaptureEntry(topic="md.trades", partition=0, offset=i, timestamp_ms=t.ts_event // 10**6,
                     key=t.instrument, value=t.model_dump(mode="json"))
        for i, t in enumerate(ticks)
    ]  # fmt: skip
    path = tmp_path / "c.jsonl.gz"
    write_capture(path, [entries])
    assert list(read_trades(path, "capture")) == ticks


def test_book_ticker_rows_become_one_level_snapshots() -> None:
    from algostream.model.enums import BookUpdateKind
    from algostream.model.records import BookUpdate

    name = "BTCUSDT-bookTicker-2024-02-01.csv"
    rows = _csv(name)
    updates = list(read_records(DATA / name, "binance-um-bookticker"))
    assert len(updates) == len(rows)
    for update, row in zip(updates, rows, strict=True):
        assert isinstance(update, BookUpdate) and update.kind is BookUpdateKind.SNAPSHOT
        assert update.instrument == "BINANCE_UM:BTCUSDT"
        assert update.bids == ((Decimal(row[1]), Decimal(row[2])),)
        assert update.asks == ((Decimal(row[3]), Decimal(row[4])),)
        assert update.final_update_id == int(row[0]) and update.ts_event == int(row[5]) * 10**6
        BookUpdate.model_validate(update.model_dump())


def test_a_crossed_book_ticker_row_is_named(tmp_path: Path) -> None:
    bad = _bad_copy(tmp_path, "BTCUSDT-bookTicker-2024-02-01.csv", 9, 3, "1.00")
    with pytest.raises(HistoryFormatError) as err:
        list(read_records(bad, "binance-um-bookticker"))
    assert (err.value.line, err.value.column) == (9, "best_ask_price")


def test_a_trade_dump_and_its_book_tickers_go_straight_into_the_engine() -> None:
    from algostream.backtest.engine import BacktestEngine
    from algostream.config import Settings
    from algostream.history import read_merged

    records = list(
        read_merged(
            [
                (DATA / "BTCUSDT-bookTicker-2024-02-01.csv", "binance-um-bookticker"),
                (DATA / "BTCUSDT-aggTrades-2024-02-01.csv", "binance-um-aggtrades"),
            ]
        )
    )
    assert [r.ts_event for r in records] == sorted(r.ts_event for r in records)
    result = BacktestEngine(Settings()).run(records)
    assert result.counts["md.book"] == 546 and result.counts["md.trades"] == 300
    assert result.fills and not result.on("orders.rejected")
