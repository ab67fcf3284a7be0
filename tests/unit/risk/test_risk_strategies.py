"""Several strategies in one account: own ledgers, budgets and halts (``signal.strategies``)."""

from __future__ import annotations

from algostream.config import RiskConfig, StrategySpec
from algostream.model import ControlAction, ControlCommand, Side
from algostream.model.records import OrderRejected, OrderRequest, PnL, Position, RiskEvent
from algostream.risk import RiskProcessor
from tests.unit.risk.risk_testkit import BTC, D, fill, order, top

SPECS = (
    StrategySpec(id="fast", strategy="sma_crossover", max_position_size=D("2")),
    StrategySpec(id="slow", strategy="rsi_mean_reversion", max_daily_loss=D("50")),
)


def proposal(coid: str, strategy: str, qty: str = "1", side: Side = Side.BUY) -> OrderRequest:
    return order(coid, side, qty).model_copy(update={"strategy": strategy})


def approve_and_fill(
    p: RiskProcessor, coid: str, strategy: str, qty: str, price: str, side: Side = Side.BUY
) -> list[object]:
    (decision,) = p.on_proposal(proposal(coid, strategy, qty, side), 12)
    assert isinstance(decision, OrderRequest), decision
    event = fill(f"f-{coid}", side, qty, price, coid=coid)
    return list(p.on_order_event(event.model_copy(update={"strategy": strategy})))


def control(action: ControlAction, strategy: str | None, rid: str) -> ControlCommand:
    return ControlCommand(
        instrument="ALL:*",
        ts_event=30,
        ts_init=30,
        record_id=rid,
        lineage_id="operator",
        action=action,
        actor="ops",
        reason="drill",
        strategy=strategy,
    )


def test_positions_are_kept_per_strategy_and_netted_per_account() -> None:
    p = RiskProcessor(RiskConfig(), strategies=SPECS)
    p.on_book_top(top())
    out = approve_and_fill(p, "a1", "fast", "1.5", "100")
    out += approve_and_fill(p, "b1", "slow", "0.5", "100", Side.SELL)
    assert p.ledger("paper").quantity(BTC) == D("1.0")  # netted: the account-wide limits
    assert p.books[("paper", "fast")].quantity(BTC) == D("1.5")
    assert p.books[("paper", "slow")].quantity(BTC) == D("-0.5")
    mine = [r for r in out if isinstance(r, Position) and r.strategy == "slow"]
    assert mine and mine[-1].quantity == D("-0.5") and mine[-1].key == f"paper|slow|{BTC}"
    pnls = {r.strategy for r in out if isinstance(r, PnL)}
    assert pnls == {None, "fast", "slow"}


def test_strategy_max_position_refuses_only_that_strategy() -> None:
    p = RiskProcessor(RiskConfig(), strategies=SPECS)
    p.on_book_top(top())
    approve_and_fill(p, "a1", "fast", "1.5", "100")
    (refused,) = p.on_proposal(proposal("a2", "fast", "1"), 12)
    assert isinstance(refused, OrderRejected) and "max_position_size" in refused.message
    (ok,) = p.on_proposal(proposal("b2", "slow", "1"), 12)  # the account has room
    assert isinstance(ok, OrderRequest)


def test_halt_one_strategy_while_the_others_trade_then_resume() -> None:
    p = RiskProcessor(RiskConfig(), strategies=SPECS)
    p.on_book_top(top())
    (event,) = p.on_control(control(ControlAction.HALT, "fast", "h1"))
    assert isinstance(event, RiskEvent) and event.detail["strategy"] == "fast"
    (refused,) = p.on_proposal(proposal("a1", "fast"), 12)
    assert isinstance(refused, OrderRejected) and refused.limit == "STRATEGY_HALTED"
    (ok,) = p.on_proposal(proposal("b1", "slow"), 12)
    assert isinstance(ok, OrderRequest)
    # the halt survives a restart of the gate
    again = RiskProcessor.from_state(RiskConfig(), None, p.to_state(), strategies=SPECS)
    (still,) = again.on_proposal(proposal("a2", "fast"), 12)
    assert isinstance(still, OrderRejected)
    again.on_control(control(ControlAction.RESUME, "fast", "r1"))
    (now_ok,) = again.on_proposal(proposal("a3", "fast"), 12)
    assert isinstance(now_ok, OrderRequest)


def test_daily_loss_budget_halts_the_strategy() -> None:
    p = RiskProcessor(RiskConfig(), strategies=SPECS)
    p.on_book_top(top(bid="99", ask="101"))
    approve_and_fill(p, "b1", "slow", "1", "100")
    out = p.on_book_top(top(bid="39", ask="41", ts=2 * 10**9))  # -60 on the position
    trips = [r for r in out if isinstance(r, RiskEvent) and r.detail.get("strategy") == "slow"]
    assert trips and "daily loss" in trips[0].reason
    assert "slow" in p.halted and "fast" not in p.halted


def test_flatten_one_strategy_closes_only_its_positions() -> None:
    p = RiskProcessor(RiskConfig(), strategies=SPECS)
    p.on_book_top(top())
    approve_and_fill(p, "a1", "fast", "1", "100")
    approve_and_fill(p, "b1", "slow", "2", "100")
    out = p.on_control(control(ControlAction.FLATTEN, "fast", "x1"))
    closes = [r for r in out if isinstance(r, OrderRequest)]
    assert [(c.strategy, c.quantity, c.side) for c in closes] == [("fast", D("1"), Side.SELL)]
    (decision,) = p.on_proposal(closes[0], 40)  # reduce-only: allowed while it is halted
    assert isinstance(decision, OrderRequest)


def test_one_strategy_deployment_emits_what_it_always_did() -> None:
    p = RiskProcessor(RiskConfig())
    p.on_book_top(top())
    out = approve_and_fill(p, "a1", "rsi_mean_reversion", "1", "100")
    assert [type(r).__name__ for r in out] == ["Position", "PnL"]
    assert all(r.strategy is None for r in out if isinstance(r, Position | PnL))
    assert "books" not in p.to_state()


def test_a_close_in_no_strategys_name_closes_the_strategies_positions() -> None:
    """A stop or the account's flatten reduces the account: the strategies' own positions
    are reduced with it (in configured order), so they still add up to the account's."""
    p = RiskProcessor(RiskConfig(), strategies=SPECS)
    p.on_book_top(top())
    approve_and_fill(p, "a1", "fast", "1", "100")
    approve_and_fill(p, "b1", "slow", "2", "100")
    close = fill("f-flat", Side.SELL, "1.5", "105", fee="0.3", coid="flat-1")
    out = p.on_order_event(close.model_copy(update={"strategy": "risk-flatten"}))
    assert p.books[("paper", "fast")].quantity(BTC) == D("0")
    assert p.books[("paper", "slow")].quantity(BTC) == D("1.5")
    assert p.ledger("paper").quantity(BTC) == D("1.5")
    fast = p.books[("paper", "fast")].positions[BTC]
    assert fast.realized_pnl == D("5") and fast.fees == D("0.2")  # 1 of 1.5: 2/3 of the fee
    assert {r.strategy for r in out if isinstance(r, Position)} == {None, "fast", "slow"}
