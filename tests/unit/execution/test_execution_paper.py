"""Paper broker: fill model, latency, cancel, state, and never a price the book did not offer."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from execution_helpers import INSTRUMENT, levels, make_request, make_top
from hypothesis import given, settings
from hypothesis import strategies as st

from algostream.execution.errors import UnknownOrderError
from algostream.execution.paper import PaperBroker
from algostream.model import OrderStatus, OrderType, Side, TimeInForce, TradeTick

S = OrderStatus
BIDS = levels(("99", "1"), ("98", "2"))
ASKS = levels(("101", "1"), ("102", "2"))


def _broker(latency_ns: int = 0) -> PaperBroker:
    broker = PaperBroker(fee_rate=D("0.001"), latency_ns=latency_ns, fee_currency="USDT")
    broker.on_book_top(make_top(BIDS, ASKS, ts=10))
    return broker


def _trade(price: str, size: str, ts: int = 20) -> TradeTick:
    return TradeTick(
        instrument=INSTRUMENT,
        ts_event=ts,
        ts_init=ts,
        record_id=f"t{ts}",
        lineage_id="raw",
        trade_id=str(ts),
        price=price,
        size=size,
        aggressor_side=Side.SELL,
    )


def test_market_order_walks_levels_and_expires_the_rest() -> None:
    events = _broker().submit(make_request(qty="5"), now_ns=11)
    assert [e.status for e in events] == [
        S.ACCEPTED,
        S.PARTIALLY_FILLED,
        S.PARTIALLY_FILLED,
        S.EXPIRED,
    ]
    assert [(e.fill_price, e.fill_qty) for e in events[1:3]] == [(D(101), D(1)), (D(102), D(2))]
    assert events[2].fee == D("0.204") and events[2].fee_currency == "USDT"
    assert events[-1].cum_qty == D(3) and "remainder 2" in events[-1].reason
    assert all(e.ts_event == 11 for e in events)


def test_market_order_without_a_book_is_rejected() -> None:
    broker = PaperBroker(fee_rate=D(0))
    (event,) = broker.submit(make_request(), now_ns=1)
    assert event.status is S.REJECTED and "no book" in event.reason


def test_marketable_limit_fills_up_to_limit_then_rests_and_fills_when_crossed() -> None:
    broker = _broker()
    req = make_request(qty="3", order_type=OrderType.LIMIT, limit="101.5")
    events = broker.submit(req, now_ns=11)
    assert [(e.status, e.fill_price) for e in events] == [
        (S.ACCEPTED, None),
        (S.PARTIALLY_FILLED, D(101)),
    ]
    assert [o.client_order_id for o in broker.open_orders()] == ["c1"]
    # asks move but stay above the limit: nothing
    assert broker.on_book_top(make_top(BIDS, levels(("101.6", "9")), ts=12)) == []
    # an ask below the limit: fill at the book's price (better than the limit)
    events = broker.on_book_top(make_top(BIDS, levels(("101.4", "5")), ts=13))
    assert [(e.status, e.fill_price, e.fill_qty) for e in events] == [(S.FILLED, D("101.4"), D(2))]
    assert events[0].ts_event == 13 and broker.open_orders() == []


def test_same_displayed_liquidity_is_not_taken_twice() -> None:
    broker = _broker()
    first = broker.submit(make_request(coid="a", qty="1"), now_ns=11)
    second = broker.submit(make_request(coid="b", qty="1"), now_ns=12)
    assert first[1].fill_price == D(101) and second[1].fill_price == D(102)
    resting = make_request(coid="r", qty="5", order_type=OrderType.LIMIT, limit="103")
    broker.submit(resting, now_ns=13)  # takes the remaining 1 @ 102
    # the same book again offers nothing new; a fresh level at 101 does
    assert broker.on_book_top(make_top(BIDS, ASKS, ts=14)) == []
    events = broker.on_book_top(make_top(BIDS, levels(("100.5", "1"), ("102", "2")), ts=15))
    assert [(e.fill_price, e.fill_qty) for e in events] == [(D("100.5"), D(1))]


def test_trade_through_fills_resting_order_at_its_limit() -> None:
    broker = _broker()
    broker.submit(make_request(qty="2", order_type=OrderType.LIMIT, limit="100"), now_ns=11)
    assert broker.on_trade(_trade("100", "5")) == []  # at the limit: queue unknown, no fill
    events = broker.on_trade(_trade("99.5", "0.5", ts=21))
    assert [(e.fill_price, e.fill_qty, e.status) for e in events] == [
        (D(100), D("0.5"), S.PARTIALLY_FILLED)
    ]


def test_ioc_expires_remainder_and_fok_fills_all_or_nothing() -> None:
    broker = _broker()
    ioc = make_request(
        coid="i", qty="2", order_type=OrderType.LIMIT, limit="101", tif=TimeInForce.IOC
    )
    assert [e.status for e in broker.submit(ioc, 11)] == [S.ACCEPTED, S.PARTIALLY_FILLED, S.EXPIRED]
    fok = make_request(
        coid="f", qty="3", order_type=OrderType.LIMIT, limit="102", tif=TimeInForce.FOK
    )
    assert [e.status for e in broker.submit(fok, 12)] == [S.ACCEPTED, S.EXPIRED]
    fok_ok = make_request(
        coid="g", qty="2", order_type=OrderType.LIMIT, limit="102", tif=TimeInForce.FOK
    )
    assert [e.status for e in broker.submit(fok_ok, 13)] == [S.ACCEPTED, S.FILLED]


def test_latency_executes_against_the_book_current_at_arrival() -> None:
    broker = _broker(latency_ns=5)
    assert broker.submit(make_request(qty="1"), now_ns=11) == []  # arrives at 16
    events = broker.on_book_top(make_top(BIDS, levels(("200", "1")), ts=20))
    assert [(e.status, e.fill_price, e.ts_event) for e in events] == [
        (S.ACCEPTED, None, 16),
        (S.FILLED, D(101), 16),
    ]
    assert broker.submit(make_request(coid="x", qty="1"), now_ns=21) == []
    assert [e.fill_price for e in broker.advance(26)] == [None, D(200)]


def test_duplicate_client_order_id_is_not_executed_twice() -> None:
    broker = _broker()
    assert len(broker.submit(make_request(), 11)) == 2
    assert broker.submit(make_request(), 12) == []


def test_cancel_resting_and_unknown() -> None:
    broker = _broker()
    broker.submit(make_request(qty="1", order_type=OrderType.LIMIT, limit="90"), 11)
    (event,) = broker.cancel("c1", now_ns=12, reason="user")
    assert event.status is S.CANCELLED and event.reason == "user"
    assert broker.cancel("c1", now_ns=13) == []  # already closed: nothing more
    with pytest.raises(UnknownOrderError, match="'nope'"):
        broker.cancel("nope", now_ns=13)


def test_state_restore_keeps_open_orders_working() -> None:
    broker = _broker()
    broker.submit(make_request(qty="1", order_type=OrderType.LIMIT, limit="100"), 11)
    broker.submit(make_request(coid="done"), 12)
    restored = PaperBroker(fee_rate=D("0.001"), fee_currency="USDT")
    restored.load_state(broker.to_state())
    assert [o.client_order_id for o in restored.open_orders()] == ["c1"]
    assert restored.submit(make_request(coid="done"), 13) == []  # still de-duplicated
    events = restored.on_book_top(make_top(BIDS, levels(("99.5", "3")), ts=14))
    assert [(e.status, e.fill_price) for e in events] == [(S.FILLED, D("99.5"))]
    assert events[0] == broker.on_book_top(make_top(BIDS, levels(("99.5", "3")), ts=14))[0]


# ------------------------------------------------------------------ property

prices = st.integers(min_value=90, max_value=110)
qtys = st.integers(min_value=1, max_value=5)


@st.composite
def books(draw: st.DrawFn) -> tuple[list[tuple[D, D]], list[tuple[D, D]]]:
    mid = draw(st.integers(min_value=95, max_value=105))
    bid_px = sorted(draw(st.sets(st.integers(80, mid - 1), max_size=4)), reverse=True)
    ask_px = sorted(draw(st.sets(st.integers(mid + 1, 120), max_size=4)))
    return ([(D(p), D(draw(qtys))) for p in bid_px], [(D(p), D(draw(qtys))) for p in ask_px])


@st.composite
def actions(draw: st.DrawFn) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for i in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            out.append(("book", draw(books())))
        else:
            kind = draw(st.sampled_from([OrderType.MARKET, OrderType.LIMIT]))
            limit = str(draw(prices)) if kind is OrderType.LIMIT else None
            out.append(
                (
                    "order",
                    make_request(
                        coid=f"o{i}",
                        side=draw(st.sampled_from(list(Side))),
                        qty=str(draw(qtys)),
                        order_type=kind,
                        limit=limit,
                        tif=draw(st.sampled_from(list(TimeInForce))),
                    ),
                )
            )
    return out


@settings(max_examples=200, deadline=None)
@given(first=books(), steps=actions())
def test_never_fills_at_a_price_the_book_did_not_offer(first, steps) -> None:  # type: ignore[no-untyped-def]
    broker = PaperBroker(fee_rate=D("0.001"))
    bids, asks = first
    broker.on_book_top(make_top(bids, asks, ts=1))
    offered = {Side.BUY: dict(asks), Side.SELL: dict(bids)}
    taken: dict[tuple[Side, D], D] = {}
    for ts, (kind, payload) in enumerate(steps, start=2):
        if kind == "book":
            bids, asks = payload  # type: ignore[misc]
            new = {Side.BUY: dict(asks), Side.SELL: dict(bids)}
            # liquidity memory resets when a price disappears from the book
            taken = {k: min(v, new[k[0]][k[1]]) for k, v in taken.items() if k[1] in new[k[0]]}
            offered = new
            events = broker.on_book_top(make_top(bids, asks, ts=ts))
        else:
            events = broker.submit(payload, now_ns=ts)  # type: ignore[arg-type]
        for e in events:
            assert e.cum_qty <= e.quantity
            if e.fill_price is None:
                continue
            assert e.fill_price in offered[e.side], "filled at a price the book did not show"
            if e.limit_price is not None:
                assert (e.fill_price - e.limit_price) * e.side.sign <= 0
            key = (e.side, e.fill_price)
            taken[key] = taken.get(key, D(0)) + e.fill_qty
            assert taken[key] <= offered[e.side][e.fill_price], "took more than displayed"
            assert e.fee == D("0.001") * e.fill_price * e.fill_qty
