"""The book stage's new path gives the old path's records, record for record (issue 27).

The old path is frozen in ``book_reference.py`` (the sortedcontainers book and the
processor's general path, as they were). Both run on the same ``md.book`` streams: the
recorded Binance.US capture as the ingestor publishes it, and seeded random streams with
what the recording lacks (gaps, duplicates, crossed books, resnapshots, removals of the
best level, silences, a state restore mid-stream, a venue without contiguous ids). Every
output is compared as a record (field values) and as the bytes published.
"""

from __future__ import annotations

import random
from decimal import Decimal

import book_reference as old
import pytest
from marketdata_testkit import capture_events, replay

from algostream.marketdata.processor import BookProcessor
from algostream.model import BookUpdate, BookUpdateKind, Record

INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "COINBASE:BTC-USD")


def recorded_md_book() -> list[BookUpdate]:
    r = replay(capture_events())
    return sorted((u for us in r.published.values() for u in us), key=lambda u: u.ts_init)


def assert_same(new: list[Record], ref: list[Record], where: str) -> None:
    assert [type(r) for r in new] == [type(r) for r in ref], where
    for a, b in zip(new, ref, strict=True):
        assert a == b, where
        assert a.encode() == b.encode(), where


def run_both(
    stream: list[BookUpdate], levels: int, *, stale_every: int = 0, restore_at: int = -1
) -> int:
    """Feed ``stream`` to both processors; returns how many tops were compared."""
    new, ref = BookProcessor(levels), old.BookProcessor(levels)
    tops = 0
    for n, update in enumerate(stream):
        now = update.ts_init + 7
        got, want = new.on_update(update, now), ref.on_update(update, now)
        assert_same(got, want, f"update {n}: {update!r}")
        tops += sum(type(r).__name__ == "BookTop" for r in want)
        if stale_every and n % stale_every == stale_every - 1:
            later = now + 10**9
            assert_same(new.check_stale(later, 10**8), ref.check_stale(later, 10**8), f"{n}")
        if n == restore_at:  # a hand-over: the next owner restores the new path's state
            moved = BookProcessor(levels)
            for inst in ref.instruments:
                assert new.state(inst) == ref.state(inst)
                moved.restore(new.state(inst))
            new = moved
    for inst in ref.instruments:
        assert new.state(inst) == ref.state(inst)
        book, ref_book = new.book(inst), ref.book(inst)
        assert book is not None and ref_book is not None
        assert book.bids() == ref_book.bids() and book.asks() == ref_book.asks()
    return tops


@pytest.mark.parametrize("levels", [1, 5, 10, 20])
def test_recorded_backlog_gives_the_same_book_top_records(levels: int) -> None:
    stream = recorded_md_book()
    assert len(stream) > 300
    assert run_both(stream, levels) == len(stream)


def _levels(rng: random.Random, mid: int, side: int, count: int) -> tuple[tuple[Decimal, ...], ...]:
    out = []
    for _ in range(count):
        # mostly near the top, sometimes deep; a few crossing the other side
        offset = rng.choice((0, 1, 1, 2, 3, 5, 8, 13, 40, 200)) - (rng.random() < 0.03) * 6
        price = Decimal(mid + side * offset) / 100
        qty = Decimal(0) if rng.random() < 0.3 else Decimal(rng.randint(1, 5000)) / 1000
        if rng.random() < 0.1:  # the same price written another way (trailing zeros)
            price = price.quantize(Decimal("0.0001"))
        out.append((price, qty))
    return tuple(out)


def random_stream(seed: int, n: int = 1500) -> list[BookUpdate]:
    rng = random.Random(seed)
    last = {inst: 1000 for inst in INSTRUMENTS}
    mid = {inst: 10_000 for inst in INSTRUMENTS}
    out: list[BookUpdate] = []
    for i in range(n):
        inst = rng.choice(INSTRUMENTS)
        mid[inst] += rng.randint(-3, 3)
        roll = rng.random()
        if roll < 0.03 or last[inst] == 1000:
            kind, first = BookUpdateKind.SNAPSHOT, last[inst] + rng.randint(0, 40)
            final = first
            bids = _levels(rng, mid[inst] - 1, -1, rng.randint(0, 60))
            asks = _levels(rng, mid[inst] + 1, 1, rng.randint(0, 60))
        else:
            kind = BookUpdateKind.DELTA
            first = last[inst] + 1 + (rng.random() < 0.03) * rng.randint(1, 5)  # a gap
            first -= (rng.random() < 0.05) * rng.randint(1, 20)  # overlap or duplicate
            final = max(first, last[inst] + rng.randint(-2, 4))
            bids = _levels(rng, mid[inst] - 1, -1, rng.randint(0, 8))
            asks = _levels(rng, mid[inst] + 1, 1, rng.randint(0, 8))
        last[inst] = max(last[inst], final)
        out.append(
            BookUpdate(
                instrument=inst,
                ts_event=i * 1000,
                ts_init=i * 1000 + 5,
                record_id=f"u{seed}-{i}",
                lineage_id=f"raw{i}",
                kind=kind,
                bids=bids,
                asks=asks,
                first_update_id=first,
                final_update_id=final,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_streams_give_the_same_records(seed: int) -> None:
    stream = random_stream(seed)
    tops = run_both(stream, 1 + seed * 3, stale_every=97, restore_at=700)
    assert tops > len(stream) // 3  # the streams are in sync most of the time
