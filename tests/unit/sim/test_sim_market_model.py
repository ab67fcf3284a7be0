"""The pure synthetic market: determinism, invariants, trades consuming liquidity."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from algostream.sim import SimConfigError, SimMarket, SymbolSpec, UnknownSymbolError, default_spec
from algostream.sim.market import MarketEvent


def replay(events: list[MarketEvent], start: SimMarket, symbol: str) -> dict[str, dict[int, int]]:
    bids, asks = start.book_ticks(symbol)
    book = {"b": dict(bids), "a": dict(asks)}
    for ev in events:
        if ev.symbol != symbol:
            continue
        for side, changes in (("b", ev.bids), ("a", ev.asks)):
            for price, qty in changes:
                if qty:
                    book[side][price] = qty
                else:
                    book[side].pop(price, None)
    return book


def test_same_seed_same_events_regardless_of_batching() -> None:
    one = SimMarket.create(["BTCUSDT", "ETHUSDT"], seed=3)
    two = SimMarket.create(["BTCUSDT", "ETHUSDT"], seed=3)
    a = one.steps(5000, now_ms=1)
    b: list[MarketEvent] = []
    for size in (1, 7, 992, 4000):
        b += two.steps(size, now_ms=1)
    assert a == b
    assert one.book("BTCUSDT") == two.book("BTCUSDT")
    other = SimMarket.create(["BTCUSDT", "ETHUSDT"], seed=4).steps(5000, now_ms=1)
    assert other != a


def test_events_fully_describe_the_book_and_ids_chain() -> None:
    market = SimMarket.create(["BTCUSDT", "ETHUSDT"], seed=5)
    start = SimMarket.create(["BTCUSDT", "ETHUSDT"], seed=5)
    events = market.steps(20_000, now_ms=0)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        mine = [e for e in events if e.symbol == symbol]
        for prev, nxt in itertools.pairwise(mine):
            assert nxt.first_id == prev.last_id + 1
            assert nxt.last_id - nxt.first_id + 1 == len(nxt.bids) + len(nxt.asks)
        rebuilt = replay(events, start, symbol)
        bids, asks = market.book_ticks(symbol)
        assert rebuilt == {"b": dict(bids), "a": dict(asks)}


def test_book_invariants_hold_over_many_events() -> None:
    market = SimMarket.create(["BTCUSDT"], seed=9, levels=50)
    spec = market.spec("BTCUSDT")
    for _ in range(20):
        market.steps(1000, now_ms=0)
        bids, asks = market.book("BTCUSDT")
        assert bids[0][0] < asks[0][0]
        assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
        assert [p for p, _ in asks] == sorted(p for p, _ in asks)
        assert 5 <= len(bids) <= 60 and 5 <= len(asks) <= 60
        for price, qty in bids + asks:
            assert qty > 0 and price % spec.tick_size == 0 and qty % spec.step_size == 0


def test_a_trade_consumes_the_hit_side_at_the_best_prices() -> None:
    market = SimMarket.create(["BTCUSDT"], seed=1)
    checked = 0
    while checked < 50:
        before_bids, before_asks = market.book_ticks("BTCUSDT")
        ev = market.step(now_ms=5)
        if not ev.trades:
            continue
        checked += 1
        buy = not ev.trades[0].buyer_is_maker
        hit = dict(before_asks if buy else before_bids)
        best = [p for p, _ in (before_asks if buy else before_bids)][: len(ev.trades)]
        assert [f.price for f in ev.trades] == best  # walks the book from the top
        changes = ev.asks if buy else ev.bids
        assert (ev.bids if buy else ev.asks) == []
        for fill, (price, left) in zip(ev.trades, changes, strict=True):
            assert price == fill.price and left == hit[price] - fill.qty
        assert market.last_trade_price("BTCUSDT") == market.spec("BTCUSDT").price(
            ev.trades[-1].price
        )


def test_crossed_injection_is_healed_by_the_next_event() -> None:
    market = SimMarket.create(["BTCUSDT"], seed=2)
    ev = market.inject_crossed("BTCUSDT", now_ms=1)
    bids, asks = market.book("BTCUSDT")
    assert bids[0][0] > asks[0][0] and ev.bids == [(ev.bids[0][0], ev.bids[0][1])]
    heal = market.step(now_ms=2)
    assert heal.bids == [(ev.bids[0][0], 0)] and heal.first_id == ev.last_id + 1
    bids, asks = market.book("BTCUSDT")
    assert bids[0][0] < asks[0][0]


def test_specs_and_symbols_are_validated() -> None:
    with pytest.raises(SimConfigError, match="tick_size"):
        SymbolSpec(
            "XUSDT", Decimal(100), Decimal("0.000000001"), Decimal(1), Decimal(1), "X", "USDT"
        )
    with pytest.raises(SimConfigError, match="quote"):
        default_spec("NOPE")
    with pytest.raises(UnknownSymbolError, match="DOGEUSDT"):
        SimMarket.create(["BTCUSDT"], seed=1).book("DOGEUSDT")
    spec = default_spec("ETHUSDT", start_price="2500.5")
    assert spec.start_price == Decimal("2500.5") and spec.coinbase_product == "ETH-USDT"
