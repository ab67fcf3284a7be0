"""Binance snapshot + diff synchronisation on the recorded capture, and its edge cases."""

from __future__ import annotations

import itertools
import json

import pytest
from marketdata_testkit import (
    capture_events,
    delta,
    http_lines,
    raw_depth_by_symbol,
    replay,
    snapshot,
)

from algostream.marketdata.binance import parse_depth_snapshot
from algostream.marketdata.book import OrderBook
from algostream.marketdata.sync import BinanceBookSync
from algostream.model import BookUpdateKind, IntegrityKind

OMG = "BINANCE:OMGBUSD"


def test_the_capture_itself_has_no_gap_in_any_diff_chain() -> None:
    for symbol, diffs in raw_depth_by_symbol().items():
        breaks = [(a["u"], b["U"]) for a, b in itertools.pairwise(diffs) if b["U"] != a["u"] + 1]
        assert breaks == [], symbol


def test_capture_syncs_every_instrument_without_gaps_or_crossing() -> None:
    r = replay(capture_events())
    assert set(r.syncs) == {"BINANCE:COMPUSDT", "BINANCE:CRVUSDT", OMG, "BINANCE:ZRXUSDT"}
    assert all(not s.needs_snapshot for s in r.syncs.values())
    assert r.integrity == []
    assert r.crossed_after == []
    snapshot_ids = {f"BINANCE:{h.symbol}": json.loads(h.body)["lastUpdateId"] for h in http_lines()}
    for symbol, diffs in raw_depth_by_symbol().items():
        inst = f"BINANCE:{symbol}"
        chain = r.published[inst]
        assert chain[0].kind is BookUpdateKind.SNAPSHOT
        assert chain[0].final_update_id == snapshot_ids[inst]
        deltas = chain[1:]
        assert all(d.kind is BookUpdateKind.DELTA for d in deltas)
        # every diff after the snapshot id is published, in order, none twice
        expected = [d["u"] for d in diffs if d["u"] > snapshot_ids[inst]]
        assert [d.final_update_id for d in deltas] == expected
        assert deltas[0].first_update_id <= snapshot_ids[inst] + 1 <= deltas[0].final_update_id
        for prev, cur in itertools.pairwise(deltas):
            assert cur.first_update_id == prev.final_update_id + 1
        assert r.syncs[inst].last_update_id == diffs[-1]["u"]


def test_synced_books_agree_with_every_book_ticker_at_the_same_update_id() -> None:
    r = replay(capture_events())
    aligned = [t for t in r.tickers if (t.instrument, t.update_id) in r.tops_at]
    for t in aligned:
        bid, ask = r.tops_at[(t.instrument, t.update_id)]
        assert bid == (t.bid_price, t.bid_qty), t
        assert ask == (t.ask_price, t.ask_qty), t
    # the 100 ms diff batches end exactly at a ticker's id this often in this capture
    assert len(aligned) == 57


def test_removed_diff_triggers_gap_then_a_later_snapshot_resyncs() -> None:
    diffs = raw_depth_by_symbol()["OMGBUSD"]
    removed, after_gap = diffs[60], diffs[61]
    full = replay(capture_events())

    events = capture_events(skip_diff=("OMGBUSD", removed["U"]))
    gap_at = next(
        i
        for i, e in enumerate(events)
        if e[1] == "ws" and f'"U":{after_gap["U"]},' in e[2] and "OMGBUSD" in e[2]
    )
    r = replay(events[: gap_at + 1])
    (gap,) = r.integrity
    assert (gap.kind, gap.instrument) == (IntegrityKind.GAP, OMG)
    assert (gap.expected_update_id, gap.received_update_id) == (removed["U"], after_gap["U"])
    assert r.syncs[OMG].needs_snapshot
    published_before = len(r.published[OMG])

    # a REST snapshot fetched a few diffs later: the book as the full chain had it then
    resume = diffs[64]["u"]
    reference = OrderBook(OMG)
    for rec in full.published[OMG]:
        if rec.final_update_id <= resume:
            reference.apply(rec)
    snap_body = json.dumps(
        {
            "lastUpdateId": resume,
            "bids": [[str(p), str(q)] for p, q in reference.bids()],
            "asks": [[str(p), str(q)] for p, q in reference.asks()],
        }
    )
    rest = events[gap_at + 1 :]
    cut = next(
        i
        for i, e in enumerate(rest)
        if e[1] == "ws" and f'"u":{diffs[66]["u"]},' in e[2] and "OMGBUSD" in e[2]
    )
    r = replay(rest[: cut + 1], r)
    assert r.syncs[OMG].needs_snapshot  # diffs keep buffering until a snapshot arrives
    (snap,) = parse_depth_snapshot(snap_body, "OMGBUSD", rest[cut][0]).book
    out = r.sync(OMG).on_snapshot(snap)
    r.publish(out)
    assert [type(o).__name__ for o in out] == [
        "BookUpdate",
        "BookUpdate",
        "BookUpdate",
        "BookIntegrity",
    ]
    assert out[-1].kind is IntegrityKind.RESYNCED
    assert [o.final_update_id for o in out[1:3]] == [diffs[65]["u"], diffs[66]["u"]]
    r = replay(rest[cut + 1 :], r)
    assert len(r.published[OMG]) > published_before
    assert r.books[OMG].bids() == full.books[OMG].bids()
    assert r.books[OMG].asks() == full.books[OMG].asks()
    assert r.crossed_after == []


# --------------------------------------------------------------------------- edge cases
INST = "BINANCE:BTCUSDT"


def test_snapshot_older_than_the_buffer_is_rejected_and_another_is_needed() -> None:
    sync = BinanceBookSync(INST)
    assert sync.on_diff(delta(INST, 100, 105)) == []
    assert sync.on_snapshot(snapshot(INST, 98)) == []  # 99 is missing
    assert sync.needs_snapshot and sync.rejected_snapshots == 1 and sync.buffered == 1
    out = sync.on_snapshot(snapshot(INST, 99))
    assert [o.final_update_id for o in out] == [99, 105]
    assert sync.last_update_id == 105


def test_snapshot_drops_covered_diffs_and_applies_the_spanning_one() -> None:
    sync = BinanceBookSync(INST)
    for first, final in ((10, 12), (13, 15), (16, 20), (21, 21)):
        sync.on_diff(delta(INST, first, final))
    out = sync.on_snapshot(snapshot(INST, 17))
    assert [(o.kind.value, o.final_update_id) for o in out] == [
        ("SNAPSHOT", 17),
        ("DELTA", 20),
        ("DELTA", 21),
    ]


def test_live_chain_accepts_overlap_drops_duplicates_and_flags_gaps() -> None:
    sync = BinanceBookSync(INST)
    sync.on_snapshot(snapshot(INST, 50))
    assert len(sync.on_diff(delta(INST, 51, 55))) == 1
    assert sync.on_diff(delta(INST, 52, 55)) == []  # duplicate (rotation overlap)
    assert len(sync.on_diff(delta(INST, 54, 58))) == 1  # overlap continues the chain
    (gap,) = sync.on_diff(delta(INST, 60, 61))
    assert (gap.kind, gap.expected_update_id, gap.received_update_id) == (IntegrityKind.GAP, 59, 60)
    assert sync.needs_snapshot and sync.last_update_id is None and sync.gaps == 1
    assert sync.on_diff(delta(INST, 62, 62)) == []
    out = sync.on_snapshot(snapshot(INST, 60))
    assert [type(o).__name__ for o in out] == ["BookUpdate"] * 3 + ["BookIntegrity"]


def test_gap_inside_the_buffer_publishes_the_good_prefix_then_asks_again() -> None:
    sync = BinanceBookSync(INST)
    for first, final in ((10, 12), (13, 15), (18, 20)):
        sync.on_diff(delta(INST, first, final))
    out = sync.on_snapshot(snapshot(INST, 11))
    assert [type(o).__name__ for o in out] == [
        "BookUpdate",
        "BookUpdate",
        "BookUpdate",
        "BookIntegrity",
    ]
    assert out[-1].expected_update_id == 16 and sync.needs_snapshot and sync.buffered == 1


def test_while_live_an_older_snapshot_is_ignored_and_a_newer_one_published() -> None:
    sync = BinanceBookSync(INST)
    sync.on_snapshot(snapshot(INST, 50))
    sync.on_diff(delta(INST, 51, 60))
    assert sync.on_snapshot(snapshot(INST, 55)) == []
    assert [o.final_update_id for o in sync.on_snapshot(snapshot(INST, 70))] == [70]
    assert sync.on_diff(delta(INST, 65, 70)) == []
    assert len(sync.on_diff(delta(INST, 71, 71))) == 1


def test_buffer_is_bounded_and_wrong_inputs_are_refused() -> None:
    sync = BinanceBookSync(INST, max_buffer=3)
    for i in range(10):
        sync.on_diff(delta(INST, i, i))
    assert sync.buffered == 3
    with pytest.raises(ValueError, match="expected SNAPSHOT"):
        sync.on_snapshot(delta(INST, 1, 1))
    with pytest.raises(ValueError, match="ETHUSDT"):
        sync.on_diff(delta("BINANCE:ETHUSDT", 1, 1))
