"""Stops: static and trailing, long and short, once per position episode."""

from __future__ import annotations

import json
from decimal import Decimal

from risk_testkit import BTC, D, top

from algostream.model import OrderType, RiskEventKind, Side, TradingState
from algostream.risk import StopKind, StopManager
from algostream.risk.stops import stop_event, stop_proposal

ACC = "paper"


def opened(sl: str, trail: str, qty: str = "1", price: str = "100", **kw: int) -> StopManager:
    m = StopManager(D(sl), D(trail), **kw)
    m.on_position(ACC, BTC, D(0), D(qty), D(price), "fill-open")
    return m


def long_hit(m: StopManager, bid: str, qty: str = "1", avg: str = "100"):  # type: ignore[no-untyped-def]
    return m.evaluate(ACC, BTC, D(qty), D(avg), top(bid=bid, ask=str(D(bid) + 1)))


def short_hit(m: StopManager, ask: str, qty: str = "-1", avg: str = "100"):  # type: ignore[no-untyped-def]
    return m.evaluate(ACC, BTC, D(qty), D(avg), top(bid=str(D(ask) - 1), ask=ask))


def test_static_stop_long_fires_at_bid_two_percent_below_entry() -> None:
    m = opened("2", "0")
    assert long_hit(m, "98.01") is None
    hit = long_hit(m, "98")  # 100 * (1 - 0.02) = 98
    assert hit is not None and hit.kind is StopKind.STOP_LOSS
    assert hit.stop_price == D("98") and hit.trigger_price == D("98")


def test_static_stop_short_fires_at_ask_two_percent_above_entry() -> None:
    m = opened("2", "0", qty="-1")
    assert short_hit(m, "101.99") is None
    hit = short_hit(m, "102")
    assert hit is not None and hit.kind is StopKind.STOP_LOSS and hit.stop_price == D("102")


def test_trailing_stop_long_follows_the_high_water_mark() -> None:
    m = opened("0", "1.5")
    for bid in ("101", "105", "110", "109"):
        assert long_hit(m, bid) is None
    # High 110 -> stop 110 * 0.985 = 108.35
    assert long_hit(m, "108.36") is None
    hit = long_hit(m, "108.35")
    assert hit is not None and hit.kind is StopKind.TRAILING_STOP
    assert hit.best_price == D("110") and hit.stop_price == D("108.35")


def test_trailing_stop_short_follows_the_low_water_mark() -> None:
    m = opened("0", "1.5", qty="-2")
    for ask in ("95", "90", "91"):
        assert short_hit(m, ask, qty="-2") is None
    # Low 90 -> stop 90 * 1.015 = 91.35
    assert short_hit(m, "91.34", qty="-2") is None
    hit = short_hit(m, "91.35", qty="-2")
    assert hit is not None and hit.kind is StopKind.TRAILING_STOP and hit.position == D("-2")


def test_long_is_evaluated_at_the_bid_not_the_mid() -> None:
    m = opened("2", "0")
    # bid 97 / ask 103: mid 100 would not stop, the bid 97 does.
    assert m.evaluate(ACC, BTC, D(1), D(100), top(bid="97", ask="103")) is not None


def test_one_sided_book_without_mid_is_skipped() -> None:
    m = opened("2", "0")
    assert m.evaluate(ACC, BTC, D(1), D(100), top(bid=None, ask="50")) is None


def test_fires_once_per_episode_until_the_close_fails() -> None:
    m = opened("2", "0", max_attempts=2)
    first = long_hit(m, "97")
    assert first is not None and m.is_stop_order(first.client_order_id)
    assert long_hit(m, "90") is None  # close pending: no second fire
    m.on_close_failed(first.client_order_id)
    second = long_hit(m, "90")
    assert second is not None and second.attempt == 2
    assert second.client_order_id != first.client_order_id
    m.on_close_failed(second.client_order_id)
    assert long_hit(m, "80") is None  # attempts exhausted for this episode


def test_new_episode_after_flat_gets_a_new_client_order_id() -> None:
    m = opened("2", "0")
    first = long_hit(m, "97")
    assert first is not None
    m.on_position(ACC, BTC, D(1), D(0), D(97), "fill-close")
    assert m.tracker(ACC, BTC) is None and not m.is_stop_order(first.client_order_id)
    m.on_position(ACC, BTC, D(0), D(1), D(100), "fill-reopen")
    again = long_hit(m, "97")
    assert again is not None and again.client_order_id != first.client_order_id


def test_adding_keeps_the_high_water_mark_and_a_flip_resets_it() -> None:
    m = opened("0", "10")
    long_hit(m, "120")
    m.on_position(ACC, BTC, D(1), D(2), D(119), "fill-add")
    tracker = m.tracker(ACC, BTC)
    assert tracker is not None and tracker.best_price == D("120")
    m.on_position(ACC, BTC, D(2), D(-1), D(118), "fill-flip")
    tracker = m.tracker(ACC, BTC)
    assert tracker is not None and (tracker.direction, tracker.best_price) == (-1, D("118"))


def test_hit_becomes_reduce_only_market_close_and_stop_event() -> None:
    m = opened("2", "0", qty="0.5")
    book = top(bid="97", ask="98", ts=50)
    hit = m.evaluate(ACC, BTC, D("0.5"), D(100), book)
    assert hit is not None
    proposal = stop_proposal(hit, book, now_ns=51)
    assert (proposal.side, proposal.order_type, proposal.quantity) == (
        Side.SELL,
        OrderType.MARKET,
        D("0.5"),
    )
    assert proposal.reduce_only and proposal.lineage_id == book.record_id
    assert proposal.client_order_id == hit.client_order_id
    event = stop_event(hit, TradingState.ACTIVE, book, now_ns=51)
    assert event.kind is RiskEventKind.STOP_HIT and event.reason == "STOP_LOSS"
    assert event.detail["client_order_id"] == hit.client_order_id
    # Deterministic: the same history gives the same ids.
    m2 = opened("2", "0", qty="0.5")
    hit2 = m2.evaluate(ACC, BTC, D("0.5"), D(100), book)
    assert hit2 is not None and hit2.client_order_id == hit.client_order_id


def test_state_round_trip_keeps_marks_and_pending_close() -> None:
    m = opened("0", "5")
    long_hit(m, "130")
    hit = long_hit(m, "120")  # 130 * 0.95 = 123.5
    assert hit is not None
    m2 = StopManager(D("0"), D("5"))
    m2.restore(json.loads(json.dumps(m.to_state())))
    assert m2.to_state() == m.to_state()
    assert m2.is_stop_order(hit.client_order_id)
    assert long_hit(m2, "100") is None
    tracker = m2.tracker(ACC, BTC)
    assert tracker is not None and tracker.best_price == Decimal("130")
