"""Circuit breaker, integrity states and operator commands."""

from __future__ import annotations

import json

from risk_testkit import BTC, ETH, D, control, integrity

from algostream.config import RiskConfig
from algostream.model import (
    ControlAction,
    CostMethod,
    IntegrityKind,
    RiskEventKind,
    Side,
    TradingState,
)
from algostream.risk import CircuitBreaker
from algostream.risk.ledger import AccountLedger

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def account(start: str = "100000") -> AccountLedger:
    return AccountLedger("paper", CostMethod.FIFO, D(start))


def test_loss_beyond_threshold_halts_the_account_once() -> None:
    b = CircuitBreaker(RiskConfig(max_loss_threshold=D("100"), max_drawdown_percent=D("50")))
    led = account()
    led.apply_fill(BTC, Side.BUY, D("1"), D("1000"), D("0"))
    led.set_mark(BTC, D("900"))  # unrealised -100: at the threshold, not beyond
    assert b.check_account(led) == []
    led.set_mark(BTC, D("899"))  # -101
    [change] = b.check_account(led)
    assert change.kind is RiskEventKind.BREAKER_TRIPPED and change.reason == "MAX_LOSS"
    assert (change.previous, change.state, change.detail["value"]) == (ACTIVE, HALTED, "101")
    assert b.state("paper", BTC) is HALTED and b.state("paper", ETH) is HALTED
    assert b.check_account(led) == []  # already halted: no second event


def test_drawdown_from_peak_beyond_limit_halts() -> None:
    b = CircuitBreaker(RiskConfig(max_loss_threshold=D("1e9"), max_drawdown_percent=D("10")))
    led = account("1000")
    led.apply_fill(BTC, Side.BUY, D("10"), D("100"), D("0"))
    led.set_mark(BTC, D("110"))  # equity 1100 = peak
    led.set_mark(BTC, D("99"))  # equity 990: drawdown 110 = exactly 10 %
    assert b.check_account(led) == []
    led.set_mark(BTC, D("98.9"))  # equity 989: drawdown 111 = 10.09 %
    [change] = b.check_account(led)
    assert change.reason == "MAX_DRAWDOWN" and change.detail["peak_equity"] == "1100"


def test_disabled_breaker_never_trips() -> None:
    b = CircuitBreaker(RiskConfig(enable_circuit_breaker=False, max_loss_threshold=D("1")))
    led = account()
    led.apply_fill(BTC, Side.BUY, D("1"), D("1000"), D("0"))
    led.set_mark(BTC, D("1"))
    assert b.check_account(led) == []
    assert b.state("paper", BTC) is ACTIVE


def test_book_problem_reduces_the_instrument_until_resynced() -> None:
    b = CircuitBreaker(RiskConfig())
    [change] = b.on_integrity(integrity(IntegrityKind.GAP))
    assert (change.kind, change.previous, change.state, change.scope) == (
        RiskEventKind.INTEGRITY,
        ACTIVE,
        REDUCING,
        BTC,
    )
    assert b.state("paper", BTC) is REDUCING and b.state("other", BTC) is REDUCING
    assert b.state("paper", ETH) is ACTIVE
    assert b.on_integrity(integrity(IntegrityKind.STALE, ts=6)) == []  # already reducing
    [back] = b.on_integrity(integrity(IntegrityKind.RESYNCED, ts=7))
    assert (back.previous, back.state) == (REDUCING, ACTIVE)
    assert b.state("paper", BTC) is ACTIVE
    assert b.on_integrity(integrity(IntegrityKind.RESYNCED, ts=8)) == []


def test_operator_commands_per_account_and_per_instrument() -> None:
    b = CircuitBreaker(RiskConfig())
    [halt] = b.on_control(control(ControlAction.HALT), ["paper"])
    assert (halt.kind, halt.actor, halt.state) == (RiskEventKind.CONTROL, "alice", HALTED)
    assert b.state("paper", BTC) is HALTED
    b.on_control(control(ControlAction.RESUME, ts=8), ["paper"])
    assert b.state("paper", BTC) is ACTIVE
    b.on_control(control(ControlAction.REDUCE, instrument=ETH), ["paper"])
    assert b.state("paper", ETH) is REDUCING and b.state("paper", BTC) is ACTIVE


def test_most_restrictive_layer_wins_and_resume_all_keeps_integrity() -> None:
    b = CircuitBreaker(RiskConfig())
    b.on_control(control(ControlAction.REDUCE), ["paper"])
    b.on_control(control(ControlAction.HALT, instrument=BTC), ["paper"])
    b.on_integrity(integrity(IntegrityKind.CROSSED, instrument=ETH))
    assert b.state("paper", BTC) is HALTED
    changes = b.on_control(control(ControlAction.RESUME, ts=9), ["paper"])
    # Account layer back to ACTIVE and the BTC override cleared: two changes.
    assert [(c.layer, c.scope, c.state) for c in changes] == [
        ("account", "ALL:*", ACTIVE),
        ("instrument", BTC, ACTIVE),
    ]
    assert b.state("paper", BTC) is ACTIVE
    assert b.state("paper", ETH) is REDUCING  # the book is still crossed


def test_resume_after_trip_is_a_breaker_reset_event() -> None:
    b = CircuitBreaker(RiskConfig(max_loss_threshold=D("10")))
    led = account()
    led.apply_fill(BTC, Side.BUY, D("1"), D("100"), D("0"))
    led.set_mark(BTC, D("50"))
    b.check_account(led)
    assert b.tripped_reason("paper") == "MAX_LOSS"
    changes = b.on_control(control(ControlAction.RESUME), ["paper"])
    assert [c.kind for c in changes] == [RiskEventKind.CONTROL, RiskEventKind.BREAKER_RESET]
    assert b.tripped_reason("paper") is None
    # Level-triggered: still 50 down, so the next check trips again.
    assert [c.reason for c in b.check_account(led)] == ["MAX_LOSS"]


def test_state_change_becomes_a_risk_event_with_lineage() -> None:
    b = CircuitBreaker(RiskConfig())
    cmd = control(ControlAction.HALT)
    [change] = b.on_control(cmd, ["paper"])
    event = change.to_event(cmd, now_ns=77)
    assert event.lineage_id == cmd.record_id and event.ts_event == cmd.ts_event
    assert event.ts_init == 77 and event.instrument == "ALL:*"
    assert (event.actor, event.reason, event.detail["account"]) == ("alice", "test", "paper")
    assert event.record_id == change.to_event(cmd, now_ns=78).record_id


def test_state_round_trip() -> None:
    b = CircuitBreaker(RiskConfig())
    b.on_control(control(ControlAction.REDUCE, instrument=ETH), ["paper"])
    b.on_integrity(integrity(IntegrityKind.DISCONNECTED))
    b2 = CircuitBreaker(RiskConfig())
    b2.restore(json.loads(json.dumps(b.to_state())))
    assert b2.to_state() == b.to_state()
    assert b2.state("paper", ETH) is REDUCING and b2.state("x", BTC) is REDUCING
