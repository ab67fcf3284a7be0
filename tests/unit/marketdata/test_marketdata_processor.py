"""BookProcessor on the synced capture stream (md.book) and on hand-made chains."""

from __future__ import annotations

import json

import pytest
from marketdata_testkit import capture_events, delta, replay, snapshot

from algostream.marketdata.book import OrderBook
from algostream.marketdata.errors import BookStateError
from algostream.marketdata.processor import BookProcessor
from algostream.model import BookIntegrity, BookTop, BookUpdate, IntegrityKind

INST = "BINANCE:BTCUSDT"


def md_book_stream() -> list[BookUpdate]:
    """What the ingestor would publish on md.book for the capture, in publish order."""
    r = replay(capture_events())
    return sorted((u for us in r.published.values() for u in us), key=lambda u: u.ts_init)


def kinds(records) -> list[str]:
    return [r.kind.value if isinstance(r, BookIntegrity) else type(r).__name__ for r in records]


def test_capture_stream_gives_one_top_per_update_matching_an_independent_book() -> None:
    stream = md_book_stream()
    proc = BookProcessor(top_levels=5)
    books: dict[str, OrderBook] = {}
    for n, update in enumerate(stream):
        out = proc.on_update(update, now_ns=update.ts_init + 1)
        assert kinds(out) == ["BookTop"], out
        (top,) = out
        ref = books.setdefault(update.instrument, OrderBook(update.instrument))
        ref.apply(update)
        bids, asks = ref.top(5)
        assert (top.bids, top.asks) == (bids, asks)
        assert (top.best_bid, top.best_ask) == (bids[0][0], asks[0][0])
        assert top.mid == (bids[0][0] + asks[0][0]) / 2 and top.spread == asks[0][0] - bids[0][0]
        assert top.update_id == update.final_update_id and top.lineage_id == update.record_id
        assert top.best_bid < top.microprice < top.best_ask
        assert -1 <= top.imbalance <= 1
        if n % 25 == 0:
            assert BookTop.decode(top.encode()) == top
    assert len(proc.instruments) == 4


def test_a_lost_md_book_record_is_a_gap_until_the_next_snapshot() -> None:
    proc = BookProcessor(top_levels=3)
    proc.on_update(snapshot(INST, 10, bids=(("99", "1"),), asks=(("101", "1"),)), 1)
    assert kinds(proc.on_update(delta(INST, 11, 12, bids=(("99", "2"),)), 2)) == ["BookTop"]
    out = proc.on_update(delta(INST, 14, 15, bids=(("98", "2"),)), 3)  # 13 lost
    assert kinds(out) == ["GAP"]
    assert (out[0].expected_update_id, out[0].received_update_id) == (13, 14)
    assert not proc.is_in_sync(INST) and len(proc.book(INST)) == 0
    assert proc.on_update(delta(INST, 16, 16), 4) == []  # no tops while out of sync
    out = proc.on_update(snapshot(INST, 20, bids=(("97", "1"),), asks=(("101", "1"),)), 5)
    assert kinds(out) == ["RESYNCED", "BookTop"]
    assert kinds(proc.on_update(delta(INST, 21, 21, asks=(("100", "1"),)), 6)) == ["BookTop"]


def test_removing_a_record_from_the_real_stream_is_detected() -> None:
    stream = md_book_stream()
    victim = next(
        i
        for i, u in enumerate(stream)
        if u.instrument == "BINANCE:OMGBUSD" and u.final_update_id > 77819600
    )
    proc = BookProcessor()
    events = [
        r
        for u in stream[:victim] + stream[victim + 1 :]
        for r in proc.on_update(u, u.ts_init)
        if isinstance(r, BookIntegrity)
    ]
    assert [(e.kind, e.instrument, e.expected_update_id) for e in events] == [
        (IntegrityKind.GAP, "BINANCE:OMGBUSD", stream[victim].first_update_id)
    ]


def test_overlap_and_duplicates_on_the_published_chain() -> None:
    proc = BookProcessor()
    proc.on_update(snapshot(INST, 17, bids=(("99", "1"),), asks=(("101", "1"),)), 1)
    assert kinds(proc.on_update(delta(INST, 16, 20), 2)) == ["BookTop"]  # spans 18
    assert proc.on_update(delta(INST, 19, 20), 3) == []  # duplicate delivery
    assert kinds(proc.on_update(delta(INST, 21, 22), 4)) == ["BookTop"]


def test_delta_before_any_snapshot_is_reported_once() -> None:
    proc = BookProcessor()
    assert kinds(proc.on_update(delta(INST, 5, 6), 1)) == ["GAP"]
    assert proc.on_update(delta(INST, 7, 8), 2) == []
    assert kinds(proc.on_update(snapshot(INST, 8), 3)) == ["BookTop"]


def test_coinbase_sequence_ids_are_not_required_to_be_contiguous() -> None:
    cb = "COINBASE:BTC-USD"
    proc = BookProcessor()
    proc.on_update(snapshot(cb, 3, bids=(("99", "1"),), asks=(("101", "1"),)), 1)
    assert kinds(proc.on_update(delta(cb, 9, 9, bids=(("99", "2"),)), 2)) == ["BookTop"]
    assert proc.on_update(delta(cb, 8, 8), 3) == []  # older than the book: skipped


def test_crossed_book_is_reported_once_per_episode_and_its_end_is_resynced() -> None:
    proc = BookProcessor()
    proc.on_update(snapshot(INST, 1, bids=(("99", "1"),), asks=(("101", "1"),)), 1)
    out = proc.on_update(delta(INST, 2, 2, bids=(("102", "1"),)), 2)
    assert kinds(out) == ["CROSSED", "BookTop"] and "102" in out[0].detail
    assert kinds(proc.on_update(delta(INST, 3, 3, bids=(("102", "2"),)), 3)) == ["BookTop"]
    out = proc.on_update(delta(INST, 4, 4, bids=(("102", "0"),)), 4)
    assert kinds(out) == ["RESYNCED", "BookTop"]  # risk leaves REDUCING on this
    assert out[0].detail == "book uncrossed: best bid 99 < best ask 101"
    assert kinds(proc.on_update(delta(INST, 5, 5, asks=(("98", "1"),)), 5)) == [
        "CROSSED",
        "BookTop",
    ]
    # a snapshot that uncrosses it says RESYNCED only if the book was out of sync
    assert kinds(
        proc.on_update(snapshot(INST, 9, bids=(("97", "1"),), asks=(("98", "1"),)), 6)
    ) == ["BookTop"]


def test_stale_is_reported_once_per_silence() -> None:
    proc = BookProcessor()
    proc.on_update(snapshot(INST, 1, bids=(("99", "1"),), asks=(("101", "1"),)), 1_000)
    assert proc.check_stale(now_ns=5_999, stale_after_ns=5_000) == []
    (stale,) = proc.check_stale(now_ns=6_000, stale_after_ns=5_000)
    assert (stale.kind, stale.instrument, stale.ts_event) == (IntegrityKind.STALE, INST, 6_000)
    assert proc.check_stale(now_ns=9_000, stale_after_ns=5_000) == []
    out = proc.on_update(delta(INST, 2, 2), 9_500)
    assert kinds(out) == ["RESYNCED", "BookTop"]  # the silence is over: risk resumes
    assert "after STALE" in out[0].detail
    assert kinds(proc.on_update(delta(INST, 3, 3), 9_600)) == ["BookTop"]
    assert len(proc.check_stale(now_ns=20_000, stale_after_ns=5_000)) == 1


def test_a_stale_book_restored_elsewhere_is_cleared_by_its_new_owner() -> None:
    """Issue 28: the STALE is part of the saved state; the worker that restores it says
    RESYNCED at the first update it applies, and a re-delivered update (one the saved state
    already covers) does not clear it silently."""
    old = BookProcessor()
    old.on_update(snapshot(INST, 1, bids=(("99", "1"),), asks=(("101", "1"),)), 1_000)
    old.on_update(delta(INST, 2, 2), 1_100)
    assert len(old.check_stale(now_ns=7_000, stale_after_ns=5_000)) == 1
    saved = json.loads(json.dumps(old.state(INST, levels=True)))
    new = BookProcessor()
    new.restore(saved)
    assert new.is_stale(INST)
    assert kinds(new.on_update(delta(INST, 2, 2), 8_000)) == []  # re-delivered: dropped
    assert new.is_stale(INST)
    assert kinds(new.on_update(delta(INST, 3, 3), 8_100)) == ["RESYNCED", "BookTop"]
    assert not new.is_stale(INST)


def test_a_stale_that_could_not_be_stored_is_raised_again() -> None:
    proc = BookProcessor()
    proc.on_update(snapshot(INST, 1, bids=(("99", "1"),), asks=(("101", "1"),)), 1_000)
    assert len(proc.check_stale(now_ns=7_000, stale_after_ns=5_000)) == 1
    proc.rearm_stale(INST)
    assert len(proc.check_stale(now_ns=8_000, stale_after_ns=5_000)) == 1


def test_state_restore_mid_stream_gives_the_same_outputs() -> None:
    stream = md_book_stream()
    half = len(stream) // 2
    whole = BookProcessor(top_levels=4)
    expected = [whole.on_update(u, u.ts_init) for u in stream][half:]

    first = BookProcessor(top_levels=4)
    for u in stream[:half]:
        first.on_update(u, u.ts_init)
    saved = json.loads(json.dumps({i: first.state(i) for i in first.instruments}))
    second = BookProcessor(top_levels=4)
    for state in saved.values():
        second.restore(state)
    assert [second.on_update(u, u.ts_init) for u in stream[half:]] == expected


def test_bad_processor_state_names_the_key() -> None:
    proc = BookProcessor()
    proc.on_update(snapshot(INST, 1, bids=(("99", "1"),), asks=(("101", "1"),)), 1)
    state = proc.state(INST)
    state["in_sync"] = "yes"
    with pytest.raises(BookStateError, match="in_sync"):
        BookProcessor().restore(state)
    del state["book"]
    with pytest.raises(BookStateError, match="'book' is missing"):
        BookProcessor().restore(state)
    with pytest.raises(ValueError, match="top_levels"):
        BookProcessor(top_levels=0)
