"""The repo's recorded Binance US capture, loaded as ``md.raw`` capture entries."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from algostream.backtest.capture import (
    RAW_TOPIC,
    REST_DEPTH_STREAM,
    CaptureEntry,
    load_recorded_binance_capture,
    read_capture,
    write_capture,
)
from algostream.backtest.errors import CaptureFormatError
from algostream.marketdata.binance import parse_depth_snapshot, parse_frame
from algostream.model.records import RawFrame

DATA = Path(__file__).resolve().parents[2] / "data" / "binance-us-capture"
WS = DATA / "BINANCE_US.ws.1.0"
HTTP = DATA / "BINANCE_US.http.0.0"
FRAME_LINE = re.compile(r"^(\d+\.\d+): (\{.*\})$")


@pytest.fixture(scope="module")
def entries() -> list[CaptureEntry]:
    return list(load_recorded_binance_capture(WS, HTTP))


def _file_frames() -> list[tuple[str, str]]:
    lines = WS.read_text(encoding="utf-8").splitlines()
    return [(m.group(1), m.group(2)) for m in map(FRAME_LINE.match, lines) if m]


def _split(entries: list[CaptureEntry]) -> tuple[list[RawFrame], list[RawFrame]]:
    frames = [e.record(RawFrame) for e in entries]
    return ([f for f in frames if f.stream != REST_DEPTH_STREAM],
            [f for f in frames if f.stream == REST_DEPTH_STREAM])  # fmt: skip


def test_every_recorded_frame_and_snapshot_is_loaded(entries: list[CaptureEntry]) -> None:
    ws_lines = _file_frames()
    http_lines = [ln for ln in HTTP.read_text().splitlines() if "/depth?" in ln]
    assert (len(ws_lines), len(http_lines)) == (480, 4)
    ws, rest = _split(entries)
    assert (len(ws), len(rest), len(entries)) == (480, 4, 484)


def test_payloads_and_receive_times_are_exact(entries: list[CaptureEntry]) -> None:
    ws, _ = _split(entries)
    recorded = _file_frames()
    assert [f.payload for f in ws] == [body for _, body in recorded]
    expected_ns = [int(Decimal(stamp) * 10**9) for stamp, _ in recorded]
    assert [f.ts_event for f in ws] == expected_ns
    assert all(f.ts_init == f.ts_event for f in ws)
    first = ws[0]
    assert (first.instrument, first.venue, first.stream) == (
        "BINANCE:COMPUSDT", "BINANCE", "compusdt@depth@100ms",
    )  # fmt: skip
    assert first.ts_event == 1_633_998_274_723_671_000


def test_entries_are_md_raw_in_receive_time_order_with_sequential_offsets(
    entries: list[CaptureEntry],
) -> None:
    assert {e.topic for e in entries} == {RAW_TOPIC}
    assert [e.offset for e in entries] == list(range(len(entries)))
    times = [e.event_ns for e in entries]
    assert times == sorted(times)
    for e in entries:
        assert isinstance(e.value, dict)
        assert e.key == e.value["instrument"]
        assert e.timestamp_ms == e.event_ns // 1_000_000
        assert e.value["lineage_id"] == e.value["record_id"]
    assert len({e.value["record_id"] for e in entries if isinstance(e.value, dict)}) == len(entries)


def test_raw_frames_are_what_the_live_parser_makes_of_the_same_frames(
    entries: list[CaptureEntry],
) -> None:
    ws, rest = _split(entries)
    for frame in ws:
        assert parse_frame(frame.payload, frame.ts_event).raw == frame
    urls = [ln.partition(" -> ")[0] for ln in HTTP.read_text().splitlines() if ln.strip()]
    symbols = [parse_qs(urlsplit(u).query)["symbol"][0] for u in urls]
    snapshot_by_symbol = {f.instrument.split(":")[1]: f for f in rest}
    assert sorted(snapshot_by_symbol) == sorted(symbols)
    for symbol, frame in snapshot_by_symbol.items():
        parsed = parse_depth_snapshot(frame.payload, symbol, frame.ts_event)
        assert parsed.raw == frame
        assert parsed.book[0].first_update_id > 0


def test_recorded_capture_survives_a_capture_file_round_trip(
    tmp_path: Path, entries: list[CaptureEntry]
) -> None:
    path = tmp_path / "binance.jsonl.gz"
    header = write_capture(path, [entries])
    assert list(read_capture(path)) == entries
    assert header.symbols == ("BINANCE:COMPUSDT", "BINANCE:CRVUSDT", "BINANCE:OMGBUSD",
                              "BINANCE:ZRXUSDT")  # fmt: skip
    assert (header.from_ns, header.to_ns) == (entries[0].event_ns, entries[-1].event_ns)


def test_ws_only_load_skips_rest(tmp_path: Path) -> None:
    assert sum(1 for _ in load_recorded_binance_capture(WS)) == 480


def test_bad_recorded_line_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "X.ws.1.0"
    bad.write_text(
        "wss://example/stream <-> 1633998274.5\n"
        '1633998274.7: {"stream":"btcusdt@trade","data":{}}\n'
        'yesterday: {"stream":"btcusdt@trade","data":{}}\n'
    )
    with pytest.raises(CaptureFormatError, match=r"X\.ws\.1\.0:3: receive time 'yesterday'"):
        list(load_recorded_binance_capture(bad))
    bad.write_text('1633998274.7: {"stream":"btcusdt@trade","data":\n')
    with pytest.raises(CaptureFormatError, match=r":1: frame is not JSON"):
        list(load_recorded_binance_capture(bad))
