"""Capture files: round trip, event-time ordering, determinism and clear errors."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from algostream.backtest.capture import (
    CaptureEntry,
    CaptureWriter,
    merge_by_event_time,
    read_capture,
    read_capture_header,
    write_capture,
)
from algostream.backtest.errors import CaptureFormatError
from algostream.model.records import RawFrame


def entry(
    topic: str, partition: int, offset: int, ts_event: int | None, **extra: Any
) -> CaptureEntry:
    value: dict[str, Any] | str
    if ts_event is None:
        value = extra.pop("raw", "not a record")
    else:
        value = {"instrument": extra.pop("instrument", "BINANCE:BTCUSDT"), "ts_event": ts_event}
    return CaptureEntry(
        topic=topic, partition=partition, offset=offset,
        timestamp_ms=extra.pop("timestamp_ms", 1), key=extra.pop("key", "BINANCE:BTCUSDT"),
        value=value,
    )  # fmt: skip


def _ts(e: CaptureEntry) -> int:
    assert isinstance(e.value, dict)
    return int(e.value["ts_event"])


def _gz_lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines()


def _write_gz_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))


def test_round_trip_keeps_every_field_and_derives_the_header(tmp_path: Path) -> None:
    entries = [
        entry("md.raw", 0, 0, 5_000, instrument="BINANCE:ETHUSDT"),
        entry("md.trades", 1, 9, 7_000),
        entry("dlq", 0, 3, None, raw="caf\u00e9 \u2603 {not json", key=None, timestamp_ms=9),
    ]
    path = tmp_path / "c.jsonl.gz"
    with CaptureWriter(path) as writer:
        for e in entries:
            writer.write(e)
    assert list(read_capture(path)) == entries
    header = read_capture_header(path)
    assert (header.from_ns, header.to_ns) == (5_000, 9_000_000)
    assert header.symbols == ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")
    assert header.topics == ("dlq", "md.raw", "md.trades")
    first = orjson.loads(_gz_lines(path)[0])
    assert first["format"] == "algostream-capture" and first["version"] == 1


def test_explicit_header_fields_win(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    with CaptureWriter(path, from_ns=1, to_ns=2, symbols=["BINANCE:X"], topics=["t"]) as writer:
        writer.write(entry("md.raw", 0, 0, 50))
    header = read_capture_header(path)
    assert (header.from_ns, header.to_ns, header.symbols, header.topics) == (
        1,
        2,
        ("BINANCE:X",),
        ("t",),
    )


def test_same_entries_give_byte_identical_files(tmp_path: Path) -> None:
    entries = [entry("md.raw", 0, i, 10 * i) for i in range(50)]
    write_capture(tmp_path / "a.jsonl.gz", [entries])
    write_capture(tmp_path / "b.jsonl.gz", [entries])
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


def test_merge_orders_by_event_time_then_topic_partition_offset_whatever_the_input_order() -> None:
    p0 = [entry("md.trades", 0, 0, 10), entry("md.trades", 0, 1, 20), entry("md.trades", 0, 2, 20)]
    p1 = [entry("md.trades", 1, 0, 15), entry("md.trades", 1, 1, 20)]
    book = [entry("md.book", 0, 0, 20), entry("md.book", 0, 1, 30)]
    expected = sorted(p0 + p1 + book, key=lambda e: (_ts(e), e.topic, e.partition, e.offset))
    for streams in itertools.permutations([p0, p1, book]):
        assert list(merge_by_event_time(streams)) == expected


def test_merge_keeps_each_input_in_its_own_order_when_event_time_steps_back() -> None:
    partition = [entry("md.book", 0, 0, 50), entry("md.book", 0, 1, 40)]  # snapshot before diff
    other = [entry("md.trades", 0, 0, 45)]
    merged = [(e.topic, e.offset) for e in merge_by_event_time([partition, other])]
    assert merged == [("md.trades", 0), ("md.book", 0), ("md.book", 1)]


def test_event_time_falls_back_to_the_broker_timestamp() -> None:
    assert entry("dlq", 0, 0, None, timestamp_ms=7).event_ns == 7_000_000
    no_ts = CaptureEntry(topic="t", partition=0, offset=0, timestamp_ms=3, key=None, value={"a": 1})
    assert no_ts.event_ns == 3_000_000
    assert entry("t", 0, 0, 42, timestamp_ms=3).event_ns == 42


def test_write_capture_writes_in_event_time_order(tmp_path: Path) -> None:
    a = [entry("a", 0, i, 2 * i) for i in range(5)]
    b = [entry("b", 0, i, 2 * i + 1) for i in range(5)]
    path = tmp_path / "c.jsonl.gz"
    write_capture(path, [b, a])
    times = [e.event_ns for e in read_capture(path)]
    assert times == list(range(10))


def test_corrupt_line_error_names_the_line_and_earlier_entries_are_read(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    write_capture(path, [[entry("md.raw", 0, i, i) for i in range(4)]])
    lines = _gz_lines(path)
    lines[3] = lines[3][:25]  # line 4 of the file (header is line 1)
    _write_gz_lines(path, lines)
    seen: list[CaptureEntry] = []
    with pytest.raises(CaptureFormatError, match=r"c\.jsonl\.gz:4: not JSON") as info:
        seen.extend(read_capture(path))
    assert info.value.line == 4
    assert [e.offset for e in seen] == [0, 1]


def test_invalid_field_error_names_the_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    write_capture(path, [[entry("md.raw", 0, 0, 1)]])
    lines = _gz_lines(path)
    bad = orjson.loads(lines[1])
    bad["partition"] = -1
    _write_gz_lines(path, [lines[0], orjson.dumps(bad)])
    with pytest.raises(CaptureFormatError, match=r":2: field 'partition' = -1"):
        list(read_capture(path))


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (b'{"format":"other","version":1}', "not an algostream capture"),
        (b'{"format":"algostream-capture","version":2}', "unsupported capture version 2"),
        (b"[1,2]", "expected a JSON object"),
        (b'{"format":"algostream-capture","version":1,"symbols":"BTC"}', "field 'symbols'"),
    ],
)
def test_bad_header_is_refused(tmp_path: Path, header: bytes, fragment: str) -> None:
    path = tmp_path / "c.jsonl.gz"
    _write_gz_lines(path, [header])
    with pytest.raises(CaptureFormatError, match=fragment) as info:
        list(read_capture(path))
    assert info.value.line == 1


def test_empty_not_gzip_and_truncated_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(CaptureFormatError, match="no header line"):
        list(read_capture(empty))
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_text('{"format":"algostream-capture","version":1}\n')
    with pytest.raises(CaptureFormatError, match="gzip stream is corrupt or truncated"):
        read_capture_header(plain)
    full = tmp_path / "full.jsonl.gz"
    write_capture(full, [[entry("md.raw", 0, i, i, key=f"k{i}" * 40) for i in range(300)]])
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(full.read_bytes()[:-40])
    with pytest.raises(CaptureFormatError, match="truncated"):
        list(read_capture(cut))


def test_failed_writer_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    with pytest.raises(RuntimeError), CaptureWriter(path) as writer:
        writer.write(entry("md.raw", 0, 0, 1))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_write_outside_the_block_is_an_error(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "c.jsonl.gz")
    with pytest.raises(CaptureFormatError, match="outside the 'with' block"):
        writer.write(entry("md.raw", 0, 0, 1))


def test_from_kafka_keeps_json_objects_and_raw_text() -> None:
    frame = RawFrame(instrument="BINANCE:BTCUSDT", ts_event=5, ts_init=6, record_id="r",
                     lineage_id="r", venue="BINANCE", payload="{}")  # fmt: skip
    rec = CaptureEntry.from_kafka("md.raw", 2, 17, 9, b"BINANCE:BTCUSDT", frame.encode())
    assert isinstance(rec.value, dict)
    assert rec.record(RawFrame) == frame
    assert rec.event_ns == 5
    assert orjson.loads(rec.value_bytes()) == orjson.loads(frame.encode())
    text = CaptureEntry.from_kafka("dlq", 0, 1, 9, None, b"[1, 2]")
    assert (text.value, text.key, text.value_bytes()) == ("[1, 2]", None, b"[1, 2]")
    binary = CaptureEntry.from_kafka("dlq", 0, 2, 9, None, b"\xff\x00")
    assert binary.value == "\\xff\x00"
