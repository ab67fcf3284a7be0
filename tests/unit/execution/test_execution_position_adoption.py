"""Start-up position reconciliation on USD-M: what ``risk.position_mismatch`` makes of the
differences between the ledger (the fills on ``orders.events``) and the venue."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from algostream.config import load_settings
from algostream.execution.errors import ExecutionError
from algostream.execution.futures import FuturesAccount, PositionDiscrepancy
from algostream.execution.futures_venue import (
    ADOPTED,
    MISMATCH_HALT,
    adoption_event,
    settle_positions,
)
from algostream.model import OrderStatus, Side
from algostream.risk.ledger import AccountLedger, CostMethod

PERP = "BINANCE_USDM:BTCUSDT"
ETH = "BINANCE_USDM:ETHUSDT"


def settings(mode: str = "adopt", tolerance: str = "0"):  # type: ignore[no-untyped-def]
    return load_settings(
        env={
            "ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm",
            "ALGOSTREAM__RISK__POSITION_MISMATCH": mode,
            "ALGOSTREAM__RISK__POSITION_MISMATCH_TOLERANCE": tolerance,
        }
    )


def test_a_venue_position_the_ledger_lacks_is_adopted_at_the_venue_entry() -> None:
    diff = PositionDiscrepancy(PERP, D(0), D("-0.02"), D("30000"), D("30100"))
    done = settle_positions([diff], settings(), 5_000_000_000)
    assert done.halt is None and done.refused == ()
    (ev,) = done.events
    assert (ev.status, ev.side, ev.fill_qty, ev.fill_price) == (
        OrderStatus.FILLED, Side.SELL, D("0.02"), D("30000"),
    )  # fmt: skip
    assert ev.reason.startswith(ADOPTED) and "-0.02" in ev.reason and PERP in ev.reason
    assert ev.client_order_id == "adopt-BTCUSDT-5000" and ev.venue == "BINANCE_USDM"
    # the risk gate's ledger applies it like any fill: now it holds what the venue holds
    ledger = AccountLedger("paper", CostMethod.FIFO, D(1000))
    assert ev.fill_price is not None
    ledger.apply_fill(ev.instrument, ev.side, ev.fill_qty, ev.fill_price, ev.fee)
    assert ledger.quantity(PERP) == D("-0.02")


def test_a_position_the_venue_has_closed_is_closed_at_its_mark() -> None:
    # ours long 0.05 at 29000, the venue flat (mark 30100): SELL 0.05 at the mark
    diff = PositionDiscrepancy(PERP, D("0.05"), D(0), D(0), D("30100"), D("29000"))
    ev = adoption_event(diff, "paper", 1)
    assert (ev.side, ev.fill_qty, ev.fill_price) == (Side.SELL, D("0.05"), D("30100"))
    acct = FuturesAccount(wallet=D(1000))
    acct.fill(PERP, Side.BUY, D("0.05"), D("29000"))
    assert acct.fill(PERP, ev.side, ev.fill_qty, D("30100")) == D("55")  # 0.05 * 1100
    assert acct.positions[PERP].qty == 0


def test_no_price_at_all_is_an_error_naming_the_instrument() -> None:
    with pytest.raises(ExecutionError, match=r"BINANCE_USDM:BTCUSDT.*no price"):
        adoption_event(PositionDiscrepancy(PERP, D(0), D(1)), "paper", 1)


def test_halt_mode_halts_above_the_tolerance_and_adopts_below() -> None:
    small = PositionDiscrepancy(ETH, D("1"), D("1.001"), D("2000"), D("2000"))
    big = PositionDiscrepancy(PERP, D(0), D("-0.5"), D("30000"), D("30000"))
    done = settle_positions([small, big], settings("halt", "0.01"), 1)
    assert [e.instrument for e in done.events] == [ETH]  # 0.001 <= 0.01: adopted
    assert done.refused == (big,)
    assert done.halt is not None and done.halt.startswith(MISMATCH_HALT)
    assert "BINANCE_USDM:BTCUSDT ours 0 venue -0.5" in done.halt
    assert "position_mismatch_tolerance 0.01" in done.halt
    # at the tolerance nothing halts
    assert settle_positions([small], settings("halt", "0.001"), 1).halt is None


def test_the_mode_is_checked_at_start() -> None:
    with pytest.raises(Exception, match="position_mismatch"):
        settings("ignore")
