"""``md.raw`` batched per instrument (:class:`RawBatches`, ``RawFrame.more``): every
frame is in exactly one record, in receive order, each record within its window; the
frames come back from :meth:`RawFrame.frames` with the ids their ``md.book`` / ``md.trades``
records name as lineage; a quiet feed's last frames are published by the timer."""

from __future__ import annotations

from collections import defaultdict

from algostream.ingest.binance import BinanceAdapter
from algostream.ingest.feed import RawBatches
from algostream.kafka.publisher import ListPublisher
from algostream.marketdata.binance import parse_frame
from algostream.model import RawFrame
from algostream.model.records import Record
from tests.unit.ingest.ingest_kit import launch, shut, until

DEPTH = (
    '{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":{e},"s":"{s}",'
    '"U":{u},"u":{u},"b":[["100.5","1"]],"a":[]}}}}'
)


def raw(symbol: str, u: int, recv_ns: int) -> RawFrame:
    return parse_frame(DEPTH.format(e=u, s=symbol, u=u), recv_ns).raw


class InlineListPublisher(ListPublisher):
    """A :class:`ListPublisher` that takes records without a coroutine, as librdkafka's
    publisher does (the ingestor batches ``md.raw`` only for such a publisher)."""

    def try_publish(self, topic: str, record: Record) -> bool:
        self.records.append((topic, record))
        return True


def test_batches_keep_each_instruments_frames_in_order_within_the_window() -> None:
    batches = RawBatches(window_ms=5, max_frames=3)
    frames = [raw("BTCUSDT", 1, 0), raw("ETHUSDT", 1, 1), raw("BTCUSDT", 2, 2)]
    assert [batches.add(f) for f in frames] == [None, None, None]
    full = batches.add(raw("BTCUSDT", 3, 3))  # the third BTC frame: the batch is full
    assert full is not None and [f.payload for f in full.frames()] == [
        DEPTH.format(e=u, s="BTCUSDT", u=u) for u in (1, 2, 3)
    ]
    assert full.frames()[0] == frames[0] and full.frames()[1] == frames[2]
    # ETH's batch: 5 ms after its first frame, by a later frame or by the clock
    assert batches.due(5_000_000) == [] and batches.due(5_000_001) == [frames[1]]
    assert batches.add(raw("BTCUSDT", 4, 10)) is None
    assert batches.add(raw("BTCUSDT", 5, 5_000_009)) is None
    closed = batches.add(raw("BTCUSDT", 6, 5_000_010))  # past the window: the next batch's
    assert closed is not None and [f.ts_init for f in closed.frames()] == [10, 5_000_009]
    [rest] = batches.drain()
    assert rest.frames() == [raw("BTCUSDT", 6, 5_000_010)] and not batches


def test_a_batched_record_round_trips_and_a_single_frame_is_unchanged() -> None:
    batches = RawBatches(window_ms=5, max_frames=64, max_bytes=200)
    first = raw("BTCUSDT", 1, 7)
    assert batches.add(first) is None
    assert batches.add(raw("BTCUSDT", 2, 8)) is not None  # over max_bytes: closed
    assert batches.add(first) is None
    [alone] = batches.drain()
    assert alone is first and alone.more == () and alone.frames() == [first]
    assert RawFrame.decode(first.encode()) == first
    assert batches.add(first) is None and batches.add(raw("BTCUSDT", 2, 8)) is not None
    b2 = RawBatches(window_ms=5, max_frames=2)
    assert b2.add(first) is None
    batch = b2.add(raw("BTCUSDT", 2, 8))
    assert batch is not None and len(batch.more) == 1
    assert RawFrame.decode(batch.encode()) == batch
    assert RawFrame.decode(batch.encode()).frames() == [first, raw("BTCUSDT", 2, 8)]


def test_no_batching_publishes_every_frame_alone() -> None:
    batches = RawBatches(window_ms=0, max_frames=1)
    frame = raw("BTCUSDT", 1, 7)
    assert batches.add(frame) is frame and not batches


async def test_live_feed_every_frame_once_in_order_and_lineage_resolves() -> None:
    out = InlineListPublisher()
    r = await launch(BinanceAdapter, "/stream", out=out, raw_batch_ms=20)
    try:
        await until(lambda: len(out.on("md.book")) > 100, what="100 book updates")
        r.exchange.pause()
        # the feed is quiet now: the timer publishes the open batches within the window
        await until(lambda: all_raw_sync(out), 5, "md.raw frames of every md.book update")
    finally:
        await shut(r)
    records = [rec for rec in out.on("md.raw") if isinstance(rec, RawFrame)]
    assert any(rec.more for rec in records), "at 300 events/s some frames share 20 ms"
    per: dict[str, list[int]] = defaultdict(list)
    for rec in records:
        frames = rec.frames()
        assert frames[-1].ts_init - frames[0].ts_init < 20_000_000
        assert all(f.instrument == rec.instrument for f in frames)
        # (a REST snapshot carries the time it was asked for, not when it came: left out)
        per[rec.instrument] += [f.ts_init for f in frames if not f.stream.startswith("rest:")]
    for times in per.values():
        assert times == sorted(times)
    ids = [f.record_id for rec in records for f in rec.frames()]
    assert len(ids) == len(set(ids)) == r.ingestor.stats.frames + r.ingestor.stats.snapshots


def all_raw_sync(out: ListPublisher) -> bool:
    ids = {
        f.record_id for rec in out.on("md.raw") if isinstance(rec, RawFrame) for f in rec.frames()
    }
    return {u.lineage_id for u in out.on("md.book")} <= ids
