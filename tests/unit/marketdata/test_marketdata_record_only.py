"""The compiled book path's record-only mode (``FastBooks.handle(..., RECORD_ONLY)``, what a
backtest asks for) gives the same ``BookTop`` records as the records it makes beside the
``book.top`` bytes, and modes mixed on one ``FastBooks`` (record only, bytes only, both)
give the same records and the same bytes as each mode alone (the record-only mode keeps
the top's sums and derived values without their JSON, which the bytes mode then derives).

The streams are the book equivalence test's: the recorded Binance.US backlog and seeded
random streams with gaps, duplicates, crossed books, resnapshots, removals of the best
level, and quantities past the fixed point (``big``).
"""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any

import pytest
from test_marketdata_book_equivalence import random_stream, recorded_md_book

from algostream.marketdata import native
from algostream.marketdata.processor import BookProcessor
from algostream.model import BookUpdate, Record

pytestmark = pytest.mark.skipif(
    native.fast_books_type() is None, reason="the compiled book path is not built"
)

BOTH, BYTES = True, False


def run(stream: list[BookUpdate], levels: int, modes: list[Any]) -> list[tuple[Any, Any]]:
    """Each update through the compiled path in ``modes[n]`` (the Python path where it
    hands the update back, as the backtest engine does): ``(top bytes, top record)``."""
    proc = BookProcessor(levels)
    fast = native.attach(proc)
    pending: dict[str, Any] = {}
    out: list[tuple[Any, Any]] = []
    for update, mode in zip(stream, modes, strict=True):
        now = update.ts_init + 7
        done = fast.handle(update.encode(), now, pending, mode)
        if done is None:
            records = proc.on_update(BookUpdate.decode(update.encode()), now)
            out.append(("python", [r.encode() for r in records]))
        else:
            out.append((done[2], done[3]))
    return out


def assert_same_record(a: Record | None, b: Record | None, where: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, where
        return
    assert type(a) is type(b), where
    assert a == b, where
    assert list(a.__dict__) == list(b.__dict__), where  # (Record.encode's field order)
    assert a.model_fields_set == b.model_fields_set == set(a.__dict__), where
    assert a.encode() == b.encode(), where


def check(stream: list[BookUpdate], levels: int, seed: int) -> None:
    n = len(stream)
    both = run(stream, levels, [BOTH] * n)
    only = run(stream, levels, [native.RECORD_ONLY] * n)
    rng = random.Random(seed)
    mixed_modes = [rng.choice((BOTH, BYTES, native.RECORD_ONLY)) for _ in range(n)]
    mixed = run(stream, levels, mixed_modes)
    tops = 0
    for i, mode in enumerate(mixed_modes):
        (top, record), (top_o, record_o), (top_m, record_m) = both[i], only[i], mixed[i]
        where = f"update {i}: {stream[i]!r}"
        if top == "python":
            assert top_o == top_m == "python" and record_o == record_m == record, where
            continue
        tops += record is not None
        assert top_o is None, where  # (no bytes in the record-only mode)
        assert_same_record(record_o, record, where)
        if mode == BYTES:
            assert record_m is None and top_m == top, where
        elif mode == BOTH:
            assert top_m == top, where
            assert_same_record(record_m, record, where)
        else:
            assert top_m is None, where
            assert_same_record(record_m, record, where)
    assert tops > n // 5  # many updates went the compiled path and made a top


@pytest.mark.parametrize("levels", [1, 5, 20])
def test_record_only_on_the_recorded_backlog(levels: int) -> None:
    check(recorded_md_book(), levels, levels)


@pytest.mark.parametrize("seed", range(4))
def test_record_only_on_random_streams(seed: int) -> None:
    check(random_stream(seed, big=seed % 2 == 1), 1 + seed * 3, seed)


def test_a_top_shares_a_level_until_its_quantity_changes() -> None:
    """The record's levels are kept per level while its quantity is (same values)."""
    stream = random_stream(9)
    records = [r for _, r in run(stream, 5, [native.RECORD_ONLY] * len(stream)) if r]
    records = [r for r in records if not isinstance(r, list)]
    shared = sum(
        a.bids[0] is b.bids[0]
        for a, b in pairwise(records)
        if a.instrument == b.instrument and a.bids and b.bids and a.bids[0] == b.bids[0]
    )
    assert shared > 0
