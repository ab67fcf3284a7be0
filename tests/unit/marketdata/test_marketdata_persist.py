"""LevelStore: the per-level table always restores the processor it was written from."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from marketdata_testkit import capture_events, delta, replay, snapshot

from algostream.marketdata.persist import LevelStore
from algostream.marketdata.processor import BookProcessor
from algostream.model import BookUpdate

INST = "BINANCE:BTCUSDT"


def restored_state(table: dict[str, object], inst: str) -> dict[str, object]:
    fresh = BookProcessor(top_levels=5)
    # the table goes through JSON like a changelog does
    assert LevelStore(fresh).load(json.loads(json.dumps(table)), inst)
    return fresh.state(inst)


def test_every_prefix_of_the_real_capture_restores_exactly() -> None:
    r = replay(capture_events())
    stream = sorted((u for us in r.published.values() for u in us), key=lambda u: u.ts_init)
    proc, table = BookProcessor(top_levels=5), {}
    store = LevelStore(proc)
    for n, update in enumerate(stream):
        store.save(table, update, proc.on_update(update, update.ts_init + 1))
        if n % 20 == 0 or n == len(stream) - 1:
            assert restored_state(table, update.instrument) == proc.state(update.instrument)
    # the table holds exactly the books' levels: nothing stale is left behind
    levels = sum(len(proc.book(i)) for i in proc.instruments)  # type: ignore[arg-type]
    assert len(table) == levels + len(proc.instruments)


prices = st.integers(min_value=90, max_value=110).map(str)
qtys = st.sampled_from(["0", "1", "2.5", "0.001"])
sides = st.lists(st.tuples(prices, qtys), max_size=4)


@st.composite
def chains(draw: st.DrawFn) -> list[BookUpdate]:
    out: list[BookUpdate] = []
    uid = 10
    for _ in range(draw(st.integers(1, 30))):
        step = draw(st.sampled_from(["delta", "delta", "delta", "gap", "dup", "snapshot"]))
        if step == "snapshot":
            uid += 5
            bids = tuple((p, q) for p, q in draw(sides) if q != "0")
            asks = tuple((p, q) for p, q in draw(sides) if q != "0")
            out.append(snapshot(INST, uid, bids=bids, asks=asks))
        elif step == "dup" and out:
            out.append(out[-1])
        else:
            if step == "gap":
                uid += 3
            out.append(
                delta(INST, uid + 1, uid + 1, bids=tuple(draw(sides)), asks=tuple(draw(sides)))
            )
            uid += 1
    return out


@settings(max_examples=200, deadline=None)
@given(chains())
def test_any_chain_with_gaps_duplicates_and_snapshots_restores_exactly(
    updates: list[BookUpdate],
) -> None:
    proc, table = BookProcessor(top_levels=5), {}
    store = LevelStore(proc)
    for update in updates:
        store.save(table, update, proc.on_update(update, 1))
        assert restored_state(table, INST) == proc.state(INST)
        book = proc.book(INST)
        assert book is not None and len(table) == len(book) + 1


def test_nothing_saved_means_nothing_loaded() -> None:
    assert not LevelStore(BookProcessor()).load({}, INST)
