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
from decimal import Decimal
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


# --------------------------------------------------------------------------- from records
# ``handle_update`` takes a ``BookUpdate`` record (a backtest from records) where
# ``handle`` takes its bytes: the same records as the Python path, and as the bytes in the
# record-only mode, and the same state handed back (its last update kept as the record).


def run_records(stream: list[BookUpdate], levels: int, ways: list[str]) -> tuple[Any, Any]:
    """Each update by ``ways[n]``: "python" (no compiled path), "record" (handle_update)
    or "bytes" (handle, record-only); the outputs as bytes, and each book's state."""
    proc = BookProcessor(levels)
    fast = native.attach(proc) if any(w != "python" for w in ways) else None
    pending: dict[str, Any] = {}
    out: list[list[bytes]] = []
    for update, way in zip(stream, ways, strict=True):
        done = None
        if way == "record":
            done = fast.handle_update(update, pending)
        elif way == "bytes":
            done = fast.handle(update.encode(), -1, pending, native.RECORD_ONLY)
        if done is None:
            out.append([r.encode() for r in proc.on_update(update, update.ts_init)])
        else:
            out.append([] if done[3] is None else [done[3].encode()])
    if fast is not None:
        fast.settle_all()
    return out, {inst: proc.state(inst) for inst in proc.instruments}


@pytest.mark.parametrize("seed", range(4))
def test_handle_update_gives_the_python_paths_records(seed: int) -> None:
    stream = random_stream(seed, big=seed % 2 == 1) if seed < 3 else recorded_md_book()
    n = len(stream)
    python = run_records(stream, 1 + seed * 3, ["python"] * n)
    records = run_records(stream, 1 + seed * 3, ["record"] * n)
    rng = random.Random(seed)
    mixed = run_records(stream, 1 + seed * 3, [rng.choice(("record", "bytes")) for _ in range(n)])
    assert records[0] == python[0]
    assert mixed[0] == python[0]
    assert records[1] == python[1]
    assert mixed[1] == python[1]


def test_handle_update_hands_back_what_a_payload_could_not_carry_plainly() -> None:
    """A record id with a quote, a non-ASCII lineage, a price past fixed point: the
    Python path takes the update (None), as it would take its payload."""
    stream = [u for u in random_stream(2) if u.kind == "DELTA" and u.bids][:40]
    proc = BookProcessor(5)
    fast = native.attach(proc)
    pending: dict[str, Any] = {}
    taken = 0
    for update in random_stream(2)[:300]:
        if fast.handle_update(update, pending) is None:
            proc.on_update(update, update.ts_init)
        else:
            taken += 1
    assert taken > 0
    odd = {
        "record_id": lambda u: u.model_copy(update={"record_id": 'a"b'}),
        "lineage_id": lambda u: u.model_copy(update={"lineage_id": "é"}),
        "price": lambda u: u.model_copy(
            update={"bids": ((Decimal("1.00000000000000000000000000000000001"), Decimal(1)),)}
        ),
    }
    checked = set()
    for update in stream:
        for what, change in odd.items():
            # the update as it is: taken (re-delivered) while its book is owned here
            if fast.handle_update(update, pending) is not None:
                assert fast.handle_update(change(update), pending) is None, what
                checked.add(what)
    assert checked == set(odd)
