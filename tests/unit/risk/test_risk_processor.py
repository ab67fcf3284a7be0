"""RiskProcessor end to end: idempotence, fills, stops, breaker, flatten, state round trip."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TypeVar

import pytest
from risk_testkit import (
    BTC,
    ETH,
    SECOND,
    D,
    control,
    fill,
    integrity,
    order,
    status_event,
    top,
)

from algostream.config import RiskConfig
from algostream.execution.futures_venue import halt_record
from algostream.model import (
    BookIntegrity,
    BookTop,
    ControlAction,
    ControlCommand,
    IntegrityKind,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    PnL,
    Position,
    Record,
    RiskEvent,
    RiskEventKind,
    Side,
    TradingState,
)
from algostream.risk import InstrumentFilters, RiskProcessor, StateRestoreError
from algostream.risk.processor import RECENT_APPLIED, RECENT_DECIDED

CONFIG = RiskConfig(
    max_position_size=D("3"), stop_loss_percent=D("2"), trailing_stop_percent=D("1.5")
)


T = TypeVar("T", bound=Record)


def of_type(records: list[Record], cls: type[T]) -> list[T]:
    return [r for r in records if isinstance(r, cls)]


def with_btc_long(qty: str = "1", price: str = "100") -> RiskProcessor:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top(bid="99", ask="101", ts=1))
    p.on_order_event(fill("f-open", Side.BUY, qty, price, coid="c0", ts=2))
    return p


def test_redelivered_proposal_is_approved_at_most_once() -> None:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top())
    proposal = order("c1", Side.BUY, "2")
    [first] = p.on_proposal(proposal, now_ns=100)
    assert isinstance(first, OrderRequest) and first.lineage_id == proposal.record_id
    [again] = p.on_proposal(proposal, now_ns=200)
    assert again == first  # same decision, same record_id, same ts_init
    # Counted once: 2 pending (not 4), so 1 more fits under max_position_size 3 ...
    assert p.pending_quantity("paper", BTC, Side.BUY) == D("2")
    [ok] = p.on_proposal(order("c2", Side.BUY, "1"), now_ns=300)
    assert isinstance(ok, OrderRequest)
    # ... and a third lot does not (2 + 1 + 1 = 4 > 3).
    [no] = p.on_proposal(order("c3", Side.BUY, "1"), now_ns=400)
    assert isinstance(no, OrderRejected) and no.reason == "MAX_POSITION_SIZE"
    # Redelivery after a restart still answers with the first decision.
    restored = RiskProcessor.from_state(CONFIG, None, json.loads(json.dumps(p.to_state())))
    assert restored.on_proposal(proposal, now_ns=999) == [first]


def test_new_proposal_reusing_a_decided_client_order_id_is_rejected() -> None:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top())
    [first] = p.on_proposal(order("c1", qty="1"), now_ns=1)
    [dup] = p.on_proposal(order("c1", qty="1", rid="another-proposal"), now_ns=2)
    assert isinstance(dup, OrderRejected) and dup.reason == "DUPLICATE_CLIENT_ORDER_ID"
    assert p.pending_quantity("paper", BTC, Side.BUY) == D("1")
    assert p.on_proposal(order("c1", qty="1"), now_ns=3) == [first]


def test_fills_update_position_and_redelivered_fill_is_not_double_counted() -> None:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top(bid="99", ask="101"))
    p.on_proposal(order("c1", Side.BUY, "1"), now_ns=5)
    part = fill(
        "e1",
        Side.BUY,
        "0.4",
        "100.5",
        fee="0.04",
        coid="c1",
        status=OrderStatus.PARTIALLY_FILLED,
        order_qty="1",
        cum_qty="0.4",
    )
    out = p.on_order_event(part)
    [pos] = of_type(out, Position)
    [pnl] = of_type(out, PnL)
    # 0.4 @ 100.5 marked at mid 100: unrealised 0.4 * (100 - 100.5) = -0.2
    assert (pos.quantity, pos.avg_price, pos.unrealized_pnl) == (D("0.4"), D("100.5"), D("-0.2"))
    # Equity 100000 - 0.2 - 0.04 fee = 99999.76
    assert pnl.equity == D("99999.76") and pnl.lineage_id == "e1"
    assert p.pending_quantity("paper", BTC, Side.BUY) == D("0.6")
    assert p.on_order_event(part) == []
    assert p.ledger("paper").quantity(BTC) == D("0.4")
    p.on_order_event(fill("e2", Side.BUY, "0.6", "101", coid="c1", order_qty="1", cum_qty="1"))
    assert p.ledger("paper").quantity(BTC) == D("1")
    assert p.pending_quantity("paper", BTC, Side.BUY) == 0  # FILLED is terminal


def test_small_state_alone_knows_its_newest_fills() -> None:
    # the risk agent keeps applied ids in their own table; a kill -9 can land the state
    # record (ledger with the fill) without the id's key: the state itself must know it
    p = RiskProcessor(CONFIG)
    p.on_book_top(top(bid="99", ask="101"))
    p.on_proposal(order("c1", Side.BUY, "1"), now_ns=5)
    e1 = fill("e1", Side.BUY, "1", "100.5", coid="c1", order_qty="1", cum_qty="1")
    p.on_order_event(e1)
    small = json.loads(json.dumps(p.to_state(memories=False)))
    restored = RiskProcessor.from_state(CONFIG, None, small | {"decided": [], "applied": []})
    assert restored.on_order_event(e1) == []  # re-delivered: not counted twice
    assert restored.ledger("paper").quantity(BTC) == D("1")
    for n in range(RECENT_APPLIED + 10):  # bounded: only the newest ids ride along
        p.on_order_event(fill(f"x{n}", Side.BUY, "0", "100", coid="c1", order_qty="1"))
    assert len(p.to_state(memories=False)["recent_applied"]) == RECENT_APPLIED
    assert p.to_state(memories=False)["recent_applied"][-1] == f"x{RECENT_APPLIED + 9}"


def test_small_state_alone_knows_its_newest_decisions() -> None:
    # likewise a decision: the state record (with the approval's reservation) can land
    # without the decision's own key; the re-delivered proposal must get the same answer
    p = RiskProcessor(CONFIG)
    p.on_book_top(top(bid="99", ask="101"))
    c1 = order("c1", Side.BUY, "1")
    [approved] = p.on_proposal(c1, now_ns=5)
    assert isinstance(approved, OrderRequest)
    small = json.loads(json.dumps(p.to_state(memories=False)))
    restored = RiskProcessor.from_state(CONFIG, None, small | {"decided": [], "applied": []})
    assert restored.on_proposal(c1, now_ns=6) == [approved]  # the same decision, once
    assert restored.pending_quantity("paper", BTC, Side.BUY) == D("1")  # reserved once
    for n in range(RECENT_DECIDED + 5):  # bounded: only the newest decisions ride along
        p.on_proposal(order(f"d{n}", Side.BUY, "0.001"), now_ns=10 + n)
    recent = p.to_state(memories=False)["recent_decided"]
    assert len(recent) == RECENT_DECIDED and recent[-1][0] == f"d{RECENT_DECIDED + 4}"


def test_a_decision_whose_state_was_lost_takes_its_effect_again_on_restore() -> None:
    # the reverse crash: the decision's own key (risk-decisions) landed, the state record
    # written with it (its reservation) did not; the restored gate must still count it
    p = RiskProcessor(CONFIG)
    p.on_book_top(top(bid="99", ask="101"))
    before = json.loads(json.dumps(p.to_state(memories=False)))  # the last state that landed
    c1 = order("c1", Side.BUY, "1")
    [approved] = p.on_proposal(c1, now_ns=5)
    key = ["c1", *json.loads(json.dumps(p.decision_state("c1")))]  # the key that landed
    restored = RiskProcessor.from_state(CONFIG, None, before | {"decided": [key], "applied": []})
    assert restored.pending_quantity("paper", BTC, Side.BUY) == D("1")  # reserved
    assert restored.on_proposal(c1, now_ns=6) == [approved]  # the same decision, once
    assert restored.pending_quantity("paper", BTC, Side.BUY) == D("1")
    # the same key with a state that did land: counted once, not again
    after = json.loads(json.dumps(p.to_state(memories=False)))
    again = RiskProcessor.from_state(CONFIG, None, after | {"decided": [key], "applied": []})
    assert again.pending_quantity("paper", BTC, Side.BUY) == D("1")
    # and the next decision is numbered after it in both
    restored.on_proposal(order("c2", Side.BUY, "0.5"), now_ns=7)
    again.on_proposal(order("c2", Side.BUY, "0.5"), now_ns=7)
    assert restored.decision_state("c2") == again.decision_state("c2")
    assert restored.to_state() == again.to_state()


def test_decisions_written_before_they_were_numbered_are_restored_as_they_are() -> None:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top(bid="99", ask="101"))
    c1 = order("c1", Side.BUY, "1")
    [approved] = p.on_proposal(c1, now_ns=5)
    state = json.loads(json.dumps(p.to_state()))
    state.pop("decisions")
    state["decided"] = [row[:4] for row in state["decided"]]
    state["recent_decided"] = [row[:4] for row in state["recent_decided"]]
    restored = RiskProcessor.from_state(CONFIG, None, state)
    assert restored.pending_quantity("paper", BTC, Side.BUY) == D("1")
    assert restored.on_proposal(c1, now_ns=6) == [approved]


def test_non_fill_events_only_track_open_orders() -> None:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top())
    p.on_proposal(order("c1", Side.BUY, "1"), now_ns=5)
    assert p.on_order_event(status_event("a1", "c1", OrderStatus.ACCEPTED, Side.BUY)) == []
    assert p.pending_quantity("paper", BTC, Side.BUY) == D("1")
    assert p.on_order_event(status_event("x1", "c1", OrderStatus.CANCELLED, Side.BUY)) == []
    assert p.pending_quantity("paper", BTC, Side.BUY) == 0


def test_mark_updates_are_throttled_in_event_time() -> None:
    p = with_btc_long()
    first = p.on_book_top(top(bid="99.5", ask="100.5", ts=2 * SECOND))
    assert len(of_type(first, Position)) == 1 and len(of_type(first, PnL)) == 1
    assert p.on_book_top(top(bid="99.6", ask="100.6", ts=2 * SECOND + SECOND // 2)) == []
    later = p.on_book_top(top(bid="99.7", ask="100.7", ts=3 * SECOND))
    [pos] = of_type(later, Position)
    assert pos.mark_price == D("100.2")  # the latest mid, not the last emitted one
    assert p.on_book_top(top(ETH, "10", "11", ts=5 * SECOND)) == []  # no ETH position


def test_stop_hit_proposes_a_close_once_and_close_flattens() -> None:
    p = with_btc_long()  # long 1 @ 100, stop 98
    out = p.on_book_top(top(bid="97.9", ask="98.1", ts=SECOND))
    [close] = of_type(out, OrderRequest)
    [event] = of_type(out, RiskEvent)
    assert event.kind is RiskEventKind.STOP_HIT and event.reason == "STOP_LOSS"
    assert (close.side, close.quantity, close.reduce_only) == (Side.SELL, D("1"), True)
    assert of_type(p.on_book_top(top(bid="90", ask="91", ts=2 * SECOND)), OrderRequest) == []
    [approved] = p.on_proposal(close, now_ns=3 * SECOND)
    assert isinstance(approved, OrderRequest)
    p.on_order_event(fill("e-close", Side.SELL, "1", "90", coid=close.client_order_id))
    assert p.ledger("paper").quantity(BTC) == 0
    assert p.stops.tracker("paper", BTC) is None


def test_refused_stop_close_rearms_the_stop() -> None:
    p = with_btc_long()
    out = p.on_book_top(top(bid="97", ask="99", ts=SECOND))
    [close] = of_type(out, OrderRequest)
    p.on_order_event(status_event("rej", close.client_order_id, OrderStatus.REJECTED))
    retry = of_type(p.on_book_top(top(bid="97", ask="99", ts=2 * SECOND)), OrderRequest)
    assert len(retry) == 1 and retry[0].client_order_id != close.client_order_id


def test_loss_trips_breaker_and_halted_rejects_proposals() -> None:
    cfg = RiskConfig(
        max_loss_threshold=D("50"), stop_loss_percent=D("0"), trailing_stop_percent=D("0")
    )
    p = RiskProcessor(cfg)
    p.on_book_top(top(bid="99", ask="101", ts=1))
    p.on_order_event(fill("f1", Side.BUY, "1", "100", coid="c0", ts=2))
    out = p.on_book_top(top(bid="48", ask="50", ts=3))  # mid 49: -51
    [trip] = of_type(out, RiskEvent)
    assert trip.kind is RiskEventKind.BREAKER_TRIPPED and trip.state is TradingState.HALTED
    [rej] = p.on_proposal(order("c9", Side.SELL, "1", ts=4), now_ns=5)
    assert isinstance(rej, OrderRejected) and rej.reason == "TRADING_HALTED"


def test_integrity_problem_reduces_until_resynced() -> None:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top())
    [ev] = of_type(p.on_integrity(integrity(IntegrityKind.GAP)), RiskEvent)
    assert ev.kind is RiskEventKind.INTEGRITY and ev.state is TradingState.REDUCING
    [rej] = p.on_proposal(order("c1"), now_ns=1)
    assert isinstance(rej, OrderRejected) and rej.reason == "TRADING_REDUCING"
    p.on_integrity(integrity(IntegrityKind.RESYNCED, ts=6))
    [ok] = p.on_proposal(order("c2"), now_ns=2)
    assert isinstance(ok, OrderRequest)


def test_flatten_proposes_closes_for_every_position_and_reduces() -> None:
    p = with_btc_long("1.5")
    p.on_book_top(top(ETH, "1999", "2001", ts=3))
    p.on_order_event(fill("f-eth", Side.SELL, "2", "2000", instrument=ETH, coid="c-eth", ts=4))
    out = p.on_control(control(ControlAction.FLATTEN, ts=5))
    closes = {(o.instrument, o.side, o.quantity) for o in of_type(out, OrderRequest)}
    assert closes == {(BTC, Side.SELL, D("1.5")), (ETH, Side.BUY, D("2"))}
    [ev] = of_type(out, RiskEvent)
    assert (ev.kind, ev.state, ev.actor) == (RiskEventKind.CONTROL, TradingState.REDUCING, "alice")
    for close in of_type(out, OrderRequest):
        assert isinstance(p.on_proposal(close, now_ns=6)[0], OrderRequest)
    [rej] = p.on_proposal(order("new", Side.BUY, "0.1"), now_ns=7)
    assert isinstance(rej, OrderRejected) and rej.reason == "TRADING_REDUCING"


def test_rate_limit_counts_approvals_once_in_a_sliding_second() -> None:
    p = RiskProcessor(RiskConfig(max_orders_per_second=2))
    p.on_book_top(top())
    a = order("r1", ts=0)
    assert isinstance(p.on_proposal(a, now_ns=0)[0], OrderRequest)
    p.on_proposal(a, now_ns=1)  # redelivery: not a second approval
    assert isinstance(p.on_proposal(order("r2", ts=SECOND // 2), now_ns=2)[0], OrderRequest)
    [rej] = p.on_proposal(order("r3", ts=SECOND - 1), now_ns=3)
    assert isinstance(rej, OrderRejected) and rej.reason == "MAX_ORDERS_PER_SECOND"
    # At 1 s the approval at 0 has left the window; the one at 0.5 s is still in it.
    assert isinstance(p.on_proposal(order("r4", ts=SECOND), now_ns=4)[0], OrderRequest)


def test_partial_fill_then_cancel_releases_the_rest_of_the_order() -> None:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top())
    p.on_proposal(order("c1", Side.BUY, "2"), now_ns=1)
    p.on_order_event(
        fill(
            "e1",
            Side.BUY,
            "0.5",
            "100",
            coid="c1",
            status=OrderStatus.PARTIALLY_FILLED,
            order_qty="2",
            cum_qty="0.5",
        )
    )
    assert p.pending_quantity("paper", BTC, Side.BUY) == D("1.5")
    p.on_order_event(status_event("x1", "c1", OrderStatus.CANCELLED, Side.BUY, qty="2"))
    assert p.pending_quantity("paper", BTC, Side.BUY) == 0
    # 0.5 held: 2.5 more fits under 3, 2.6 does not.
    assert isinstance(p.on_proposal(order("c2", qty="2.5", price="100"), now_ns=2)[0], OrderRequest)


def test_stops_wait_while_halted_and_fire_after_resume() -> None:
    p = with_btc_long()
    p.on_control(control(ControlAction.HALT, ts=3))
    out = p.on_book_top(top(bid="90", ask="91", ts=SECOND))
    assert of_type(out, OrderRequest) == []
    p.on_control(control(ControlAction.RESUME, ts=SECOND + 1))
    out = p.on_book_top(top(bid="90", ask="91", ts=2 * SECOND))
    assert len(of_type(out, OrderRequest)) == 1


def test_decision_memory_is_bounded() -> None:
    p = RiskProcessor(CONFIG, memory=2)
    p.on_book_top(top())
    for i in range(5):
        p.on_proposal(order(f"m{i}", qty="0.1"), now_ns=i)
        p.on_order_event(fill(f"mf{i}", Side.BUY, "0.1", "100", coid=f"m{i}"))
    state = p.to_state()
    assert [row[0] for row in state["decided"]] == ["m3", "m4"]
    assert state["applied"] == ["mf3", "mf4"]


def test_from_state_refuses_unknown_version() -> None:
    state = RiskProcessor(CONFIG).to_state()
    state["version"] = 99
    with pytest.raises(StateRestoreError, match="version"):
        RiskProcessor.from_state(CONFIG, None, state)


# --------------------------------------------------------------------------- round trip


def _dispatch(p: RiskProcessor, rec: Record) -> list[Record]:
    if isinstance(rec, BookTop):
        return p.on_book_top(rec)
    if isinstance(rec, OrderEvent):
        return p.on_order_event(rec)
    if isinstance(rec, BookIntegrity):
        return p.on_integrity(rec)
    if isinstance(rec, ControlCommand):
        return p.on_control(rec)
    assert isinstance(rec, OrderRequest)
    return p.on_proposal(rec, now_ns=rec.ts_init)


def _step(p: RiskProcessor, rec: Record, books: dict[str, BookTop]) -> list[Record]:
    """Process one input, feeding risk's own proposals back and filling approvals.

    Orders whose client_order_id starts with ``slow`` stay open (filled later by inputs).
    """
    if isinstance(rec, BookTop):
        books[rec.instrument] = rec
    out: list[Record] = []
    queue = [rec]
    while queue:
        current = queue.pop(0)
        produced = _dispatch(p, current)
        out += produced
        for r in produced:
            if isinstance(r, OrderRequest) and not isinstance(current, OrderRequest):
                queue.append(r)  # a stop / flatten proposal goes back through the checks
            elif isinstance(r, OrderRequest) and not r.client_order_id.startswith("slow"):
                queue.append(_paper_fill(r, books[r.instrument]))
    return out


def _paper_fill(o: OrderRequest, book: BookTop) -> OrderEvent:
    touch = book.best_ask if o.side is Side.BUY else book.best_bid
    assert touch is not None
    price = o.limit_price if o.order_type is OrderType.LIMIT and o.limit_price else touch
    return OrderEvent(
        instrument=o.instrument,
        ts_event=o.ts_event + 1,
        ts_init=o.ts_event + 2,
        record_id=f"fill-{o.client_order_id}",
        lineage_id=o.record_id,
        account=o.account,
        client_order_id=o.client_order_id,
        status=OrderStatus.FILLED,
        side=o.side,
        order_type=o.order_type,
        quantity=o.quantity,
        fill_price=price,
        fill_qty=o.quantity,
        cum_qty=o.quantity,
        fee=(o.quantity * price * Decimal("0.001")),
    )


def _sequence() -> list[Record]:
    s = SECOND
    return [
        top(BTC, "99", "101", ts=1 * s),
        top(ETH, "1999", "2001", ts=1 * s + 1),
        order("b1", Side.BUY, "1", ts=1 * s + 2),
        order("e1", Side.SELL, "2", price="1999", instrument=ETH, ts=1 * s + 3),
        order("b1", Side.BUY, "1", ts=1 * s + 2),  # redelivered proposal
        order("slow1", Side.SELL, "0.5", instrument=ETH, ts=1 * s + 4),  # stays open
        order("e3", Side.SELL, "0.6", instrument=ETH, ts=1 * s + 5),  # 2 + 0.5 + 0.6 > 3
        top(BTC, "104", "106", ts=2 * s),
        top(ETH, "1990", "1992", ts=2 * s + 1),
        top(BTC, "104.5", "106", ts=2 * s + 2),  # throttled
        integrity(IntegrityKind.GAP, ts=2 * s + 3),
        order("b2", Side.BUY, "1", ts=2 * s + 4),  # REDUCING: rejected
        integrity(IntegrityKind.RESYNCED, ts=2 * s + 5),
        order("b3", Side.BUY, "0.5", ts=2 * s + 6),
        fill(
            "slow-f",
            Side.SELL,
            "0.2",
            "1990",
            instrument=ETH,
            coid="slow1",
            ts=2 * s + 7,
            status=OrderStatus.PARTIALLY_FILLED,
            order_qty="0.5",
            cum_qty="0.2",
        ),
        status_event(
            "slow-x", "slow1", OrderStatus.CANCELLED, qty="0.5", instrument=ETH, ts=2 * s + 8
        ),
        top(BTC, "103", "104", ts=3 * s),
        top(BTC, "101", "102", ts=4 * s),  # trailing stop: high 104.5 * 0.985 = 102.9325
        fill("fill-b1", Side.BUY, "1", "101", ts=1 * s + 3, coid="b1"),  # redelivered fill
        top(ETH, "2100", "2102", ts=5 * s),  # ETH short stop: entry 1999 * 1.02 = 2038.98
        order("e2", Side.SELL, "0.1", instrument=ETH, ts=5 * s + 1),
        control(ControlAction.FLATTEN, ts=6 * s),
        control(ControlAction.RESUME, ts=7 * s),
        order("b4", Side.BUY, "10", ts=7 * s + 1),  # MAX_POSITION_SIZE
    ]


def test_state_round_trip_mid_sequence_gives_identical_results() -> None:
    inputs = _sequence()
    full_proc, books = RiskProcessor(CONFIG), dict[str, BookTop]()
    outputs = [_step(full_proc, rec, books) for rec in inputs]
    full = [[r.encode() for r in out] for out in outputs]
    all_out = [r for out in outputs for r in out]
    # The sequence exercises what matters: rejections, a stop, a flatten, the events.
    assert {r.reason for r in of_type(all_out, OrderRejected)} >= {
        "TRADING_REDUCING",
        "MAX_POSITION_SIZE",
    }
    assert {e.kind for e in of_type(all_out, RiskEvent)} >= {
        RiskEventKind.STOP_HIT,
        RiskEventKind.INTEGRITY,
        RiskEventKind.CONTROL,
    }
    assert any(o.strategy == "risk-flatten" for o in of_type(all_out, OrderRequest))
    for k in range(1, len(inputs)):
        head, books_k = RiskProcessor(CONFIG), dict[str, BookTop]()
        for rec in inputs[:k]:
            _step(head, rec, books_k)
        state = json.loads(json.dumps(head.to_state()))
        tail_proc = RiskProcessor.from_state(CONFIG, None, state)
        tail = [[r.encode() for r in _step(tail_proc, rec, books_k)] for rec in inputs[k:]]
        assert tail == full[k:], f"diverged after restoring at input {k}"
        assert tail_proc.to_state() == full_proc.to_state()


def test_filters_are_applied_per_instrument() -> None:
    filters = {BTC: InstrumentFilters(D("0.01"), D("0.001"), D("0.001"), D("5"))}
    p = RiskProcessor(CONFIG, filters)
    p.on_book_top(top())
    [rej] = p.on_proposal(order("c1", qty="0.0005"), now_ns=1)
    assert isinstance(rej, OrderRejected) and rej.reason == "LOT_SIZE"
    p.on_book_top(top(ETH, "10", "11"))
    [ok] = p.on_proposal(order("c2", qty="0.0005", instrument=ETH), now_ns=2)
    assert isinstance(ok, OrderRequest)


def test_proposal_older_than_max_order_age_is_rejected_with_its_own_reason() -> None:
    p = RiskProcessor(RiskConfig(max_order_age_ms=2000))
    p.on_book_top(top(ts=5 * SECOND))
    fresh = order("fresh", ts=5 * SECOND)  # ts_init = ts + 1
    [ok] = p.on_proposal(fresh, now_ns=fresh.ts_init + 2 * SECOND)  # exactly at the limit
    assert isinstance(ok, OrderRequest)
    old = order("old", ts=5 * SECOND)
    [rej] = p.on_proposal(old, now_ns=old.ts_init + 2 * SECOND + 1)
    assert isinstance(rej, OrderRejected) and rej.reason == "ORDER_TOO_OLD"
    assert (rej.limit, rej.value) == ("2000 ms", "2000 ms")
    late = order("late", ts=5 * SECOND)
    [rej] = p.on_proposal(late, now_ns=late.ts_init + 26_400_000_000)
    assert rej.reason == "ORDER_TOO_OLD" and rej.value == "26400 ms"
    assert "late" in rej.message and "max_order_age_ms = 2000" in rej.message
    # a refused stale order reserves nothing: the next fresh one is decided on its own
    assert p.pending_quantity("paper", BTC, Side.BUY) == D("1")


def test_stale_close_is_refused_and_a_redelivery_gets_the_same_decision() -> None:
    p = with_btc_long("1")
    stale_close = order("close", Side.SELL, "1", ts=3 * SECOND)
    [rej] = p.on_proposal(stale_close, now_ns=stale_close.ts_init + 6 * SECOND)
    assert rej.reason == "ORDER_TOO_OLD"  # the default limit is 5 s
    # a redelivery later gets the same decision back, not a second (different) one
    assert p.on_proposal(stale_close, now_ns=stale_close.ts_init) == [rej]


def test_max_order_age_is_validated_and_zero_turns_it_off() -> None:
    with pytest.raises(ValueError, match="max_order_age_ms"):
        RiskConfig(max_order_age_ms=-1)
    with pytest.raises(ValueError, match="max_order_age_ms"):
        RiskConfig(max_order_age_ms=3_600_001)
    assert RiskConfig().max_order_age_ms == 5000
    p = RiskProcessor(RiskConfig(max_order_age_ms=0))  # history replayed through live agents
    p.on_book_top(top(ts=5 * SECOND))
    months_old = order("replayed", ts=5 * SECOND)
    [ok] = p.on_proposal(months_old, now_ns=months_old.ts_init + 10**17)
    assert isinstance(ok, OrderRequest)


def test_a_position_mismatch_halts_the_gate_until_resume_or_a_clean_reconciliation() -> None:
    why = "POSITION_MISMATCH: BINANCE_USDM:BTCUSDT ours 0 venue -0.05 (difference -0.05 ...)"
    p = RiskProcessor(CONFIG)
    p.on_book_top(top())
    assert p.on_risk_event(halt_record(why, "paper", 2), now_ns=2) == []  # its own record
    [rej] = p.on_proposal(order("c1"), now_ns=3)
    assert isinstance(rej, OrderRejected) and rej.reason == "TRADING_HALTED"
    assert rej.message.endswith(f"is HALTED: {why}"), rej.message
    # the halt survives a restart of the gate (its state)
    p = RiskProcessor.from_state(CONFIG, None, json.loads(json.dumps(p.to_state())))
    [rej] = p.on_proposal(order("c2"), now_ns=4)
    assert isinstance(rej, OrderRejected) and rej.reason == "TRADING_HALTED"
    # the operator's RESUME lifts it, with a record naming what halted
    out = of_type(p.on_control(control(ControlAction.RESUME, ts=5)), RiskEvent)
    lifted = [e for e in out if e.detail.get("layer") == "reconciliation"]
    assert [(e.state, e.previous_state) for e in lifted] == [
        (TradingState.ACTIVE, TradingState.HALTED)
    ]
    assert lifted[0].detail["halted_by"] == why
    [ok] = p.on_proposal(order("c3"), now_ns=6)
    assert isinstance(ok, OrderRequest)
    # halted again; a reconciliation that finds no mismatch lifts it
    p.on_risk_event(halt_record(why, "paper", 7), now_ns=7)
    [rej] = p.on_proposal(order("c4"), now_ns=8)
    assert isinstance(rej, OrderRejected)
    [clear] = p.on_risk_event(halt_record(None, "paper", 9), now_ns=9)
    assert (clear.state, clear.actor) == (TradingState.ACTIVE, "reconciliation")
    [ok] = p.on_proposal(order("c5"), now_ns=10)
    assert isinstance(ok, OrderRequest)
    assert p.on_risk_event(halt_record(None, "paper", 11), now_ns=11) == []  # nothing to lift


def test_risk_events_of_other_actors_or_accounts_change_nothing() -> None:
    p = RiskProcessor(CONFIG)
    p.on_book_top(top())
    other = halt_record("POSITION_MISMATCH: x", "other", 1)
    p.on_risk_event(other, now_ns=1)
    p.on_risk_event(other.model_copy(update={"actor": "someone", "detail": {}}), now_ns=1)
    [ok] = p.on_proposal(order("c1"), now_ns=2)
    assert isinstance(ok, OrderRequest)
