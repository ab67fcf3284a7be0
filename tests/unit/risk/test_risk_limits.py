"""Pre-trade checks, one behaviour per test. Book: bid 99 / ask 101, mid 100."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from risk_testkit import BTC, ETH, SECOND, SOL, D, order, top

from algostream.config import RiskConfig
from algostream.model import BookTop, OrderRejected, OrderRequest, Side, TradingState
from algostream.risk import (
    FilterError,
    InstrumentFilters,
    OrderRateWindow,
    PreTradeChecker,
    PreTradeContext,
    RejectReason,
)

CONFIG = RiskConfig(
    max_position_size=D("5"),
    max_notional_exposure=D("1000"),
    max_open_positions=2,
    max_order_notional=D("300"),
    max_orders_per_second=3,
    price_band_percent=D("5"),
)
CHECKER = PreTradeChecker(CONFIG)
CTX = PreTradeContext(state=TradingState.ACTIVE, top=top())


def reason(o: OrderRequest, ctx: PreTradeContext = CTX) -> str | None:
    rejection = CHECKER.check(o, ctx)
    return None if rejection is None else rejection.reason.value


def test_approval_is_the_same_order_with_derived_id_and_lineage() -> None:
    proposal = order("c1", Side.BUY, "1")
    approved = CHECKER.decide(proposal, CTX, now_ns=99)
    assert isinstance(approved, OrderRequest)
    assert approved.lineage_id == proposal.record_id
    assert approved.record_id != proposal.record_id
    assert approved.record_id == CHECKER.decide(proposal, CTX, now_ns=123).record_id
    assert approved.ts_init == 99
    same = {"client_order_id", "side", "quantity", "order_type", "account", "ts_event"}
    assert {k: getattr(approved, k) for k in same} == {k: getattr(proposal, k) for k in same}


def test_rejection_record_carries_reason_limit_value_and_order() -> None:
    proposal = order("c1", Side.BUY, "6")
    rejected = CHECKER.decide(proposal, CTX, now_ns=5)
    assert isinstance(rejected, OrderRejected)
    # MARKET BUY 6 at the ask 101 = 606 > 300 (order notional is checked before size).
    assert (rejected.reason, rejected.limit, rejected.value) == ("MAX_ORDER_NOTIONAL", "300", "606")
    assert rejected.order == proposal and rejected.lineage_id == proposal.record_id
    assert "606" in rejected.message
    assert OrderRejected.decode(rejected.encode()) == rejected


def test_position_size_counts_existing_position_and_open_orders() -> None:
    assert reason(order(qty="2"), replace(CTX, position=D("4"))) == "MAX_POSITION_SIZE"
    assert reason(order(qty="1"), replace(CTX, position=D("4"))) is None
    # 4 held + 1 open on the same side + 1 new = 6 > 5
    ctx = replace(CTX, position=D("4"), pending_same_side=D("1"))
    assert reason(order(qty="1"), ctx) == "MAX_POSITION_SIZE"
    # Short side: -4 - 2 = -6
    assert reason(order(side=Side.SELL, qty="2"), replace(CTX, position=D("-4"))) == (
        "MAX_POSITION_SIZE"
    )


def test_orders_that_reduce_an_oversized_position_pass() -> None:
    ctx = replace(CTX, position=D("7"))
    assert reason(order(side=Side.SELL, qty="1"), ctx) is None


def test_max_open_positions_only_blocks_opening_a_new_one() -> None:
    others = {ETH: D("1"), SOL: D("-1")}
    marks = {ETH: D("10"), SOL: D("10")}
    ctx = replace(CTX, other_positions=others, other_marks=marks)
    rej = CHECKER.check(order(qty="1"), ctx)
    assert rej is not None and rej.reason is RejectReason.MAX_OPEN_POSITIONS
    assert (rej.limit, rej.value) == ("2", "3")
    held = replace(ctx, position=D("1"), other_positions={**others, BTC: D("1")})
    assert reason(order(qty="1"), held) is None


def test_notional_exposure_sums_all_instruments_post_trade() -> None:
    ctx = replace(CTX, other_positions={ETH: D("5")}, other_marks={ETH: D("150")})
    # ETH 5 * 150 = 750; BTC post-trade 2.6 * mid 100 = 260; total 1010 > 1000.
    rej = CHECKER.check(order(qty="2.6", price="100"), ctx)
    assert rej is not None and rej.reason is RejectReason.MAX_NOTIONAL_EXPOSURE
    assert Decimal(rej.value) == D("1010")
    # 2.5 * 100 + 750 = 1000: at the limit, allowed.
    assert reason(order(qty="2.5", price="100"), ctx) is None


def test_order_notional_uses_the_touch_for_market_orders() -> None:
    # MARKET BUY 3 takes the ask 101: 303 > 300.
    rej = CHECKER.check(order(qty="3"), CTX)
    assert rej is not None and rej.reason is RejectReason.MAX_ORDER_NOTIONAL
    assert Decimal(rej.value) == D("303")
    # MARKET SELL 3 hits the bid 99: 297 <= 300.
    assert reason(order(side=Side.SELL, qty="3")) is None


def test_orders_per_second_limit() -> None:
    assert reason(order(), replace(CTX, orders_in_window=2)) is None
    assert reason(order(), replace(CTX, orders_in_window=3)) == "MAX_ORDERS_PER_SECOND"


def test_price_band_against_mid() -> None:
    # 106 is 6 % from 100; 105 is exactly 5 % (allowed); 94.9 is 5.1 % below.
    rej = CHECKER.check(order(qty="1", price="106"), CTX)
    assert rej is not None and rej.reason is RejectReason.PRICE_BAND
    assert Decimal(rej.value) == D("6") and rej.limit == "5"
    assert reason(order(qty="1", price="105")) is None
    assert reason(order(side=Side.SELL, qty="1", price="94.9")) == "PRICE_BAND"
    # A market BUY into a 90/110 book would pay 110: 10 % from mid.
    assert reason(order(qty="1"), replace(CTX, top=top(bid="90", ask="110"))) == "PRICE_BAND"


@pytest.mark.parametrize("book", [None, top(bid=None, ask="101"), top(bid="99", ask=None)])
def test_no_two_sided_book_is_no_market_data(book: BookTop | None) -> None:
    ctx = replace(CTX, top=book)
    assert reason(order(qty="1"), ctx) == "NO_MARKET_DATA"
    assert reason(order(qty="1", price="100"), ctx) == "NO_MARKET_DATA"


def test_exchange_filters() -> None:
    flt = InstrumentFilters(D("0.5"), D("0.01"), D("0.02"), D("10"))
    ctx = replace(CTX, filters=flt)
    assert reason(order(qty="0.5", price="100.25"), ctx) == "TICK_SIZE"
    assert reason(order(qty="0.015", price="100"), ctx) == "LOT_SIZE"
    assert reason(order(qty="0.01", price="100"), ctx) == "MIN_QTY"
    # 0.05 * 100 = 5 < 10
    assert reason(order(qty="0.05", price="100"), ctx) == "MIN_NOTIONAL"
    assert reason(order(qty="0.1", price="100.5"), ctx) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tick_size": D("0")}, "tick_size"),
        ({"step_size": D("-1")}, "step_size"),
        ({"min_qty": D("-0.1")}, "min_qty"),
        ({"min_notional": 5.0}, "min_notional"),
    ],
)
def test_invalid_filters_name_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"tick_size": D("0.01"), "step_size": D("0.001")}
    with pytest.raises(FilterError, match=field):
        InstrumentFilters(**{**base, **kwargs})  # type: ignore[arg-type]


def test_halted_rejects_everything_even_reducing_orders() -> None:
    ctx = replace(CTX, state=TradingState.HALTED, position=D("2"))
    assert reason(order(side=Side.SELL, qty="1", reduce_only=True), ctx) == "TRADING_HALTED"


def test_reducing_allows_only_orders_that_shrink_without_flipping() -> None:
    ctx = replace(CTX, state=TradingState.REDUCING, position=D("2"))
    assert reason(order(side=Side.SELL, qty="1"), ctx) is None
    assert reason(order(side=Side.SELL, qty="2"), ctx) is None
    assert reason(order(side=Side.SELL, qty="3"), ctx) == "TRADING_REDUCING"  # flip
    assert reason(order(side=Side.BUY, qty="1"), ctx) == "TRADING_REDUCING"
    # 1.5 already on its way out + 1 more would flip
    assert (
        reason(order(side=Side.SELL, qty="1"), replace(ctx, pending_same_side=D("1.5")))
        == "TRADING_REDUCING"
    )
    flat = replace(ctx, position=D("0"))
    assert reason(order(side=Side.SELL, qty="1"), flat) == "TRADING_REDUCING"


def test_reduce_only_flag_is_enforced_in_any_state() -> None:
    assert reason(order(side=Side.SELL, qty="1", reduce_only=True)) == "REDUCE_ONLY"
    short = replace(CTX, position=D("-1"))
    assert reason(order(side=Side.BUY, qty="1", reduce_only=True), short) is None


def test_zero_quantity_is_invalid() -> None:
    assert reason(order(qty="0")) == "INVALID_ORDER"


def test_rate_window_slides_in_event_time() -> None:
    w = OrderRateWindow()
    for ts in (0, SECOND // 2, SECOND // 2 + 1):
        w.record(ts)
    assert w.count(SECOND // 2 + 1) == 3
    # At exactly 1 s the order at 0 has left the window.
    assert w.count(SECOND) == 2
    assert w.count(2 * SECOND) == 0
    restored = OrderRateWindow.from_state(w.to_state())
    assert restored.count(SECOND) == 2
