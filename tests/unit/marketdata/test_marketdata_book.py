"""OrderBook against a naive dict model (hypothesis) and hand-worked derived values."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marketdata_testkit import delta, snapshot

from algostream.marketdata.book import OrderBook
from algostream.marketdata.errors import BookStateError

INST = "BINANCE:BTCUSDT"
D = Decimal

prices = st.integers(min_value=1, max_value=16).map(lambda i: D(i) / 4)  # 0.25 .. 4: collide
qtys = st.one_of(
    st.just(D(0)), st.integers(min_value=1, max_value=10**6).map(lambda i: D(i) / 1000)
)
level_lists = st.lists(st.tuples(prices, qtys), max_size=8)
# (snapshot?, bids, asks, how many top levels to ask for: the book keeps its last top)
updates = st.lists(
    st.tuples(st.booleans(), level_lists, level_lists, st.sampled_from([3, 3, 3, 1, 5])),
    min_size=1,
    max_size=30,
)


class NaiveBook:
    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, is_snapshot: bool, bids, asks) -> None:
        if is_snapshot:
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q


@settings(max_examples=300, deadline=None)
@given(updates)
def test_order_book_matches_a_naive_dict_model(seq) -> None:
    book, naive = OrderBook(INST), NaiveBook()
    for i, (is_snap, bids, asks, n) in enumerate(seq, start=1):
        make = snapshot if is_snap else delta
        update = (
            make(INST, i, bids=tuple(bids), asks=tuple(asks))
            if is_snap
            else make(INST, i, i, bids=tuple(bids), asks=tuple(asks))
        )
        book.apply(update)
        naive.apply(is_snap, bids, asks)
        exp_bids = sorted(naive.bids.items(), reverse=True)
        exp_asks = sorted(naive.asks.items())
        assert book.bids() == exp_bids and book.asks() == exp_asks
        assert book.best_bid() == (exp_bids[0] if exp_bids else None)
        assert book.best_ask() == (exp_asks[0] if exp_asks else None)
        assert book.top(n) == (tuple(exp_bids[:n]), tuple(exp_asks[:n]))
        if exp_bids and exp_asks:
            assert book.mid() == (exp_bids[0][0] + exp_asks[0][0]) / 2
            assert book.spread() == exp_asks[0][0] - exp_bids[0][0]
            assert book.is_crossed() == (exp_bids[0][0] >= exp_asks[0][0])
        else:
            assert book.mid() is None and book.spread() is None and not book.is_crossed()
        assert book.last_update_id == i
        restored = OrderBook.from_state(json.loads(json.dumps(book.to_state())))
        assert restored.bids() == book.bids() and restored.asks() == book.asks()
        assert restored.last_update_id == book.last_update_id


def test_kept_top_follows_changes_at_its_last_level_and_beyond() -> None:
    book = OrderBook(INST)
    levels = tuple((D(p), D(1)) for p in (10, 9, 8, 7))
    book.apply(snapshot(INST, 1, bids=levels, asks=tuple((D(p), D(1)) for p in (11, 12, 13, 14))))
    assert book.top(3)[0] == levels[:3]
    book.apply(delta(INST, 2, 2, bids=((D(8), D(5)),), asks=((D(13), D(0)),)))  # 3rd levels
    assert book.top(3) == (
        ((D(10), D(1)), (D(9), D(1)), (D(8), D(5))),
        ((D(11), D(1)), (D(12), D(1)), (D(14), D(1))),
    )
    book.apply(delta(INST, 3, 3, bids=((D(6), D(2)),)))  # below the top: same top
    assert book.top(3)[0] == ((D(10), D(1)), (D(9), D(1)), (D(8), D(5)))
    book.apply(delta(INST, 4, 4, bids=((D("9.5"), D(3)),)))  # inside it
    assert book.top(3)[0] == ((D(10), D(1)), (D("9.5"), D(3)), (D(9), D(1)))


def test_derived_values_worked_by_hand() -> None:
    book = OrderBook(INST)
    book.apply(
        snapshot(INST, 1, bids=(("99", "3"), ("98", "1")), asks=(("101", "1"), ("102", "4")))
    )
    # microprice = (99 * 1 + 101 * 3) / (3 + 1) = 402 / 4
    assert book.microprice() == D("100.5")
    assert book.imbalance(1) == pytest.approx((3 - 1) / (3 + 1))
    assert book.imbalance(2) == pytest.approx((4 - 5) / (4 + 5))
    assert book.spread() == D(2) and book.mid() == D(100)
    book.apply(delta(INST, 2, 2, bids=(("101", "1"),)))
    assert book.is_crossed()  # bid 101 >= ask 101 (locked counts)
    assert book.spread() == D(0)
    book.apply(delta(INST, 3, 3, bids=(("101", "0"), ("250", "0")), asks=(("101", "0"),)))
    assert book.best_bid() == (D(99), D(3)) and book.best_ask() == (D(102), D(4))
    assert len(book) == 3


def test_empty_book_has_no_derived_values() -> None:
    book = OrderBook(INST)
    assert book.best_bid() is None and book.microprice() is None
    assert book.imbalance(5) is None and book.top(5) == ((), ())


def test_state_is_exact_and_keeps_trailing_zeros() -> None:
    book = OrderBook(INST)
    book.apply(snapshot(INST, 7, bids=(("296.58000000", "1.40000000"),), ts=55))
    state = book.to_state()
    assert state["bids"] == [["296.58000000", "1.40000000"]]
    assert (state["last_update_id"], state["ts_event"]) == (7, 55)


def test_update_for_another_instrument_is_refused() -> None:
    with pytest.raises(ValueError, match="BINANCE:ETHUSDT"):
        OrderBook(INST).apply(snapshot("BINANCE:ETHUSDT", 1))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("bids"), "'bids' is missing"),
        (lambda s: s.update(bids=[["abc", "1"]]), "'abc'"),
        (lambda s: s.update(asks=[["1", 2.5]]), "2.5"),
        (lambda s: s.update(last_update_id="7"), "last_update_id"),
    ],
)
def test_bad_state_raises_book_state_error(mutate, message) -> None:
    book = OrderBook(INST)
    book.apply(snapshot(INST, 7, bids=(("1", "1"),), asks=(("2", "1"),)))
    state = book.to_state()
    mutate(state)
    with pytest.raises(BookStateError, match=message):
        OrderBook.from_state(state)
