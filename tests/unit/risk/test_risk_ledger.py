"""Ledger: hand-worked FIFO / LIFO / AVERAGE examples (numbers worked in the comments)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from risk_testkit import BTC, ETH, D

from algostream.model import CostMethod, Side
from algostream.risk import AccountLedger, InvalidFillError, PositionLedger, StateRestoreError

BUY, SELL = Side.BUY, Side.SELL


def _scenario(method: CostMethod) -> PositionLedger:
    """BUY 2 @ 100 (fee 0.2), BUY 2 @ 106 (fee 0.212), SELL 3 @ 110 (fee 0.33)."""
    led = PositionLedger("paper", BTC, method)
    led.apply_fill(BUY, D("2"), D("100"), D("0.2"))
    led.apply_fill(BUY, D("2"), D("106"), D("0.212"))
    return led


def test_fifo_closes_oldest_lots_first() -> None:
    led = _scenario(CostMethod.FIFO)
    res = led.apply_fill(SELL, D("3"), D("110"), D("0.33"))
    # FIFO: close 2 @ 100 -> 2 * (110 - 100) = 20; then 1 @ 106 -> 1 * (110 - 106) = 4.
    assert res.realized_pnl == D("24")
    assert res.closed_quantity == D("3") and res.opened_quantity == 0
    # Left: 1 @ 106.
    assert led.quantity == D("1")
    assert [(lot.quantity, lot.price) for lot in led.lots] == [(D("1"), D("106"))]
    assert led.avg_price == D("106")
    # Fees 0.2 + 0.212 + 0.33 = 0.742, kept apart from realised P&L.
    assert led.fees == D("0.742")
    assert led.realized_pnl == D("24")
    # Unrealised at 108: 1 * (108 - 106) = 2.
    assert led.unrealized_pnl(D("108")) == D("2")


def test_lifo_closes_newest_lots_first() -> None:
    led = _scenario(CostMethod.LIFO)
    res = led.apply_fill(SELL, D("3"), D("110"), D("0.33"))
    # LIFO: close 2 @ 106 -> 2 * 4 = 8; then 1 @ 100 -> 1 * 10 = 10. Total 18.
    assert res.realized_pnl == D("18")
    assert [(lot.quantity, lot.price) for lot in led.lots] == [(D("1"), D("100"))]
    # Unrealised at 108: 1 * (108 - 100) = 8. Realised + unrealised = 26 as for FIFO.
    assert led.unrealized_pnl(D("108")) == D("8")
    assert led.fees == D("0.742")


def test_average_uses_weighted_average_cost() -> None:
    led = _scenario(CostMethod.AVERAGE)
    # Average cost: (2*100 + 2*106) / 4 = 412 / 4 = 103.
    assert led.avg_price == D("103")
    res = led.apply_fill(SELL, D("3"), D("110"), D("0.33"))
    # Realised: 3 * (110 - 103) = 21; 1 left at 103.
    assert res.realized_pnl == D("21")
    assert led.avg_price == D("103") and led.quantity == D("1")
    # Unrealised at 108: 1 * (108 - 103) = 5; 21 + 5 = 26, same total as FIFO/LIFO.
    assert led.unrealized_pnl(D("108")) == D("5")


@pytest.mark.parametrize(
    ("method", "realised_after_flip"),
    [
        # From 1 long: FIFO lot @106 -> 1*(104-106) = -2; 24 - 2 = 22.
        (CostMethod.FIFO, D("22")),
        # LIFO lot @100 -> 1*(104-100) = 4; 18 + 4 = 22.
        (CostMethod.LIFO, D("22")),
        # AVERAGE lot @103 -> 1*(104-103) = 1; 21 + 1 = 22.
        (CostMethod.AVERAGE, D("22")),
    ],
)
def test_flip_closes_whole_position_then_opens_remainder_at_fill(
    method: CostMethod, realised_after_flip: Decimal
) -> None:
    led = _scenario(method)
    led.apply_fill(SELL, D("3"), D("110"), D("0.33"))
    res = led.apply_fill(SELL, D("3"), D("104"), D("0.312"))
    assert res.flipped
    assert res.closed_quantity == D("1") and res.opened_quantity == D("2")
    assert led.realized_pnl == realised_after_flip
    # Short 2 opened at the fill price 104.
    assert led.quantity == D("-2")
    assert [(lot.quantity, lot.price) for lot in led.lots] == [(D("2"), D("104"))]
    # Short unrealised at 101: 2 * (104 - 101) = 6.
    assert led.unrealized_pnl(D("101")) == D("6")
    # Partial cover: BUY 1 @ 100 realises (104 - 100) * 1 = 4.
    assert led.apply_fill(BUY, D("1"), D("100")).realized_pnl == D("4")
    assert led.quantity == D("-1")
    assert led.fees == D("1.054")  # 0.742 + 0.312


def test_partial_fills_close_across_lots_in_fifo_order() -> None:
    led = PositionLedger("paper", BTC, CostMethod.FIFO)
    led.apply_fill(BUY, D("1"), D("100"))
    led.apply_fill(BUY, D("1"), D("102"))
    # First partial: 0.4 from the lot @100 -> 0.4 * (105 - 100) = 2.0
    assert led.apply_fill(SELL, D("0.4"), D("105")).realized_pnl == D("2.0")
    # Second partial 0.8 @106: 0.6 from lot @100 -> 3.6; 0.2 from lot @102 -> 0.8; = 4.4
    assert led.apply_fill(SELL, D("0.8"), D("106")).realized_pnl == D("4.4")
    assert led.realized_pnl == D("6.4")
    assert [(lot.quantity, lot.price) for lot in led.lots] == [(D("0.8"), D("102"))]


def test_average_short_and_non_terminating_average() -> None:
    led = PositionLedger("paper", BTC, CostMethod.AVERAGE)
    led.apply_fill(SELL, D("2"), D("50"))
    led.apply_fill(SELL, D("2"), D("40"))
    # Short 4 at (100 + 80) / 4 = 45; cover 1 @ 42 -> (45 - 42) * 1 = 3.
    assert led.avg_price == D("45")
    assert led.apply_fill(BUY, D("1"), D("42")).realized_pnl == D("3")
    other = PositionLedger("paper", BTC, CostMethod.AVERAGE)
    other.apply_fill(BUY, D("1"), D("100"))
    other.apply_fill(BUY, D("2"), D("101"))
    # 302 / 3 to 34 significant digits, half-even: 100.666...667 (30 sixes then a 7).
    assert other.avg_price == Decimal("100." + "6" * 30 + "7")


def test_closing_to_flat_leaves_no_lots_and_zero_unrealised() -> None:
    led = PositionLedger("paper", BTC, CostMethod.LIFO)
    led.apply_fill(BUY, D("1.5"), D("10"))
    led.apply_fill(SELL, D("1.5"), D("9"), D("-0.01"))  # maker rebate: a negative fee
    assert led.quantity == 0 and led.lots == () and led.avg_price == 0
    assert led.realized_pnl == D("-1.5")  # 1.5 * (9 - 10)
    assert led.unrealized_pnl(D("50")) == 0
    assert led.fees == D("-0.01")


@pytest.mark.parametrize(
    ("qty", "price", "fee", "field"),
    [
        ("0", "1", "0", "quantity"),
        ("-1", "1", "0", "quantity"),
        ("1", "0", "0", "price"),
        ("1", "1", "NaN", "fee"),
    ],
)
def test_invalid_fill_names_the_field(qty: str, price: str, fee: str, field: str) -> None:
    led = PositionLedger("paper", BTC, CostMethod.FIFO)
    with pytest.raises(InvalidFillError, match=f"fill {field}"):
        led.apply_fill(BUY, Decimal(qty), Decimal(price), Decimal(fee))


def test_account_equity_peak_drawdown_and_exposure() -> None:
    acct = AccountLedger("paper", CostMethod.FIFO, D("1000"))
    acct.apply_fill(BTC, BUY, D("2"), D("100"), D("0"))
    acct.set_mark(BTC, D("150"))
    # Unrealised 2 * 50 = 100 -> equity 1100, a new peak.
    assert acct.equity == D("1100") and acct.peak_equity == D("1100")
    acct.set_mark(BTC, D("95"))
    # Unrealised 2 * (95 - 100) = -10 -> equity 990; drawdown 1100 - 990 = 110 = 10 %.
    assert acct.equity == D("990") and acct.drawdown == D("110")
    assert acct.drawdown_percent == D("10")
    acct.apply_fill(ETH, SELL, D("3"), D("20"), D("0.5"))
    acct.set_mark(ETH, D("25"))
    # ETH short 3 @ 20 at 25: -15. Fees 0.5. Equity 1000 - 10 - 15 - 0.5 = 974.5.
    assert acct.unrealized_pnl == D("-25")
    assert acct.equity == D("974.5")
    # Exposure 2 * 95 + 3 * 25 = 265.
    assert acct.exposure == D("265")
    pnl = acct.pnl_record(ts_event=5, ts_init=6, cause_id="cause")
    assert pnl.instrument == "ACCOUNT:PAPER" and pnl.lineage_id == "cause"
    assert (pnl.equity, pnl.peak_equity, pnl.drawdown) == (D("974.5"), D("1100"), D("125.5"))


def test_position_record_carries_ledger_values() -> None:
    acct = AccountLedger("paper", CostMethod.AVERAGE, D("1000"))
    acct.apply_fill(BTC, BUY, D("1"), D("100"), D("0.1"))
    acct.set_mark(BTC, D("104"))
    rec = acct.positions[BTC].to_record(ts_event=1, ts_init=2, cause_id="f1")
    assert (rec.quantity, rec.avg_price, rec.unrealized_pnl, rec.fees, rec.mark_price) == (
        D("1"),
        D("100"),
        D("4"),
        D("0.1"),
        D("104"),
    )
    again = acct.positions[BTC].to_record(ts_event=1, ts_init=2, cause_id="f1")
    assert rec.record_id == again.record_id
    assert (
        rec.record_id
        != acct.positions[BTC].to_record(ts_event=1, ts_init=2, cause_id="f2").record_id
    )


@pytest.mark.parametrize("method", list(CostMethod))
def test_state_round_trip_continues_identically(method: CostMethod) -> None:
    acct = AccountLedger("paper", method, D("1000"))
    acct.apply_fill(BTC, BUY, D("1"), D("100"), D("0.1"))
    acct.apply_fill(BTC, BUY, D("2"), D("101"), D("0.2"))
    acct.set_mark(BTC, D("120"))
    acct.set_mark(BTC, D("99.5"))
    restored = AccountLedger.from_state(json.loads(json.dumps(acct.to_state())))
    assert restored.to_state() == acct.to_state()
    for led in (acct, restored):
        led.apply_fill(BTC, SELL, D("2.5"), D("98"), D("0.25"))
        led.set_mark(BTC, D("97"))
    assert restored.to_state() == acct.to_state()
    assert restored.equity == acct.equity and restored.peak_equity == acct.peak_equity


def test_restore_refuses_inconsistent_state() -> None:
    led = PositionLedger("paper", BTC, CostMethod.FIFO)
    led.apply_fill(BUY, D("1"), D("100"))
    state = led.to_state()
    state["quantity"] = "2"
    with pytest.raises(StateRestoreError, match="quantity"):
        PositionLedger.from_state(state)
    state = led.to_state()
    state["fees"] = "abc"
    with pytest.raises(StateRestoreError, match="fees"):
        PositionLedger.from_state(state)
