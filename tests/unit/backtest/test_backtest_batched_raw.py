"""A capture whose ``md.raw`` records are batched (the ingestor's ``RawFrame.more``)
backtests to exactly what the same frames one record each do: the capture loader gives
every frame back, in receive order across instruments."""

from __future__ import annotations

from pathlib import Path

from algostream.backtest.capture import CaptureEntry, write_capture
from algostream.backtest.engine import BacktestEngine
from algostream.backtest.run import records_from_capture
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import load_settings
from algostream.ingest.feed import RawBatches
from algostream.model import RawFrame

REPO = Path(__file__).resolve().parents[3]


def _batched(frames: list[RawFrame]) -> list[RawFrame]:
    batches = RawBatches(window_ms=200, max_frames=16)  # 20 ms apart: ~10 a batch
    out = [b for f in frames if (b := batches.add(f)) is not None]
    return out + batches.drain()


def _capture(path: Path, frames: list[RawFrame]) -> Path:
    entries = [
        CaptureEntry.from_kafka("md.raw", 0, i, f.ts_event // 1_000_000, f.key.encode(), f.encode())
        for i, f in enumerate(frames)
    ]
    write_capture(path, [entries])
    return path


def test_batched_md_raw_backtests_as_the_frames_one_by_one(tmp_path: Path) -> None:
    frames = synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 2_000)
    batched = _batched(frames)
    assert len(batched) < len(frames) / 5 and any(b.more for b in batched)
    one = records_from_capture(_capture(tmp_path / "one.jsonl.gz", frames))
    many = records_from_capture(_capture(tmp_path / "batched.jsonl.gz", batched))
    assert [r.record_id for r in many] == [r.record_id for r in one]
    assert many == one
    settings = load_settings(REPO / "config" / "system.json", env={})
    a = BacktestEngine(settings).run(frames).outputs
    b = BacktestEngine(settings).run(many).outputs
    assert a and [(t, r.record_id) for t, r in a] == [(t, r.record_id) for t, r in b]
    # given batched records directly, the engine takes each batch's frames in turn (one
    # instrument's frames of a batch before the next batch's): the same market records
    c = BacktestEngine(settings).run(batched).outputs
    market = ("md.book", "md.trades")
    assert sorted(r.record_id for t, r in c if t in market) == sorted(
        r.record_id for t, r in a if t in market
    )
