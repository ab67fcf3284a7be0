"""Brackets and OCOs from the strategy API through sizing, the risk gate and the paper
broker of the tick engine: each leg's lifecycle on ``orders.events`` with the list id,
the first exit to fill cancelling the other, a bracket with its stop-loss on the wrong
side of the entry refused by the gate naming it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D
from typing import ClassVar

import pytest

from algostream.backtest.engine import BacktestEngine
from algostream.config import load_settings
from algostream.model import BookTop, BookUpdate, BookUpdateKind, OrderEvent, OrderRejected
from algostream.model.enums import OrderStatus, Side
from algostream.signals.base import Strategy, StrategyConfig
from algostream.signals.context import StrategyContext
from algostream.signals.registry import register_strategy

INST = "BINANCE:BTCUSDT"
ENV = {"ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]'}

#: what the strategy does on its n-th book top (set by each test)
PLAN: dict[int, Callable[[StrategyContext], None]] = {}


class Scripted(Strategy[StrategyConfig]):
    name: ClassVar[str] = "scripted_lists"

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.n = 0

    def on_book(self, top: BookTop) -> None:
        step = PLAN.get(self.n)
        if step is not None:
            step(self.ctx)
        self.n += 1


register_strategy("scripted_lists", lambda cfg: Scripted(StrategyConfig()), replace=True)


def top(ts: int, bid: str, ask: str) -> BookUpdate:
    return BookUpdate(
        instrument=INST, ts_event=ts, ts_init=ts, record_id=f"b{ts}", lineage_id="raw",
        kind=BookUpdateKind.SNAPSHOT, bids=((D(bid), D("50")),), asks=((D(ask), D("50")),),
        first_update_id=ts, final_update_id=ts,
    )  # fmt: skip


def run(plan: dict[int, Callable[[StrategyContext], None]], books: list[tuple[str, str]]):
    PLAN.clear()
    PLAN.update(plan)
    settings = load_settings(env=ENV | {"ALGOSTREAM__SIGNAL__STRATEGY": "scripted_lists"})
    engine = BacktestEngine(settings)
    start = 1_000_000_000_000
    result = engine.run(top(start + i * 1_000_000, b, a) for i, (b, a) in enumerate(books))
    events = [r for r in result.on("orders.events") if isinstance(r, OrderEvent)]
    return engine, result, events


def by_order(events: list[OrderEvent]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ev in events:
        out.setdefault(ev.client_order_id[-3:], []).append(ev.status.value)
    return out


def test_a_bracket_takes_profit_and_cancels_its_stop() -> None:
    def buy(ctx: StrategyContext) -> None:
        ctx.buy(D("0.01"), take_profit=D(101), stop_loss=D(99))

    engine, result, events = run({0: buy}, [("99.9", "100.1"), ("100", "100.2"), ("101.5", "102")])
    assert {e.list_id for e in events} == {events[0].client_order_id}
    legs = by_order(events)
    assert legs.pop("-tp") == ["ACCEPTED", "FILLED"]
    assert legs.pop("-sl") == ["ACCEPTED", "CANCELLED"]
    assert list(legs.values()) == [["ACCEPTED", "FILLED"]]  # the entry
    assert engine.risk.ledger("paper").quantity(INST) == 0
    exit_fill = next(e for e in events if e.client_order_id.endswith("-tp") and e.fill_qty)
    assert (exit_fill.side, exit_fill.fill_qty) == (Side.SELL, D("0.01"))
    assert exit_fill.fill_price == D("101.5")  # the bid crossed its limit: filled at the bid
    assert not result.on("orders.rejected")


def test_a_bracket_stops_out_and_cancels_its_take_profit() -> None:
    def sell(ctx: StrategyContext) -> None:
        ctx.sell(D("0.01"), take_profit=D(95), stop_loss=D(102))

    engine, _, events = run({0: sell}, [("99.9", "100.1"), ("100", "100.2"), ("102.5", "102.7")])
    legs = by_order(events)
    assert legs["-sl"] == ["ACCEPTED", "TRIGGERED", "FILLED"]
    assert legs["-tp"] == ["ACCEPTED", "CANCELLED"]
    cancel = next(e for e in events if e.status is OrderStatus.CANCELLED)
    assert "-sl filled" in cancel.reason
    assert engine.risk.ledger("paper").quantity(INST) == 0


def test_an_oco_exits_a_position_held() -> None:
    def buy(ctx: StrategyContext) -> None:
        ctx.buy(D("0.02"))

    def protect(ctx: StrategyContext) -> None:
        assert ctx.position.quantity == D("0.02")
        ctx.oco(take_profit=D(103), stop_loss=D(98))

    engine, _, events = run(
        {0: buy, 1: protect},
        [("99.9", "100.1"), ("100", "100.2"), ("97", "97.2"), ("104", "104.2")],
    )
    legs = by_order(events)
    assert legs["-sl"] == ["ACCEPTED", "TRIGGERED", "FILLED"]
    assert legs["-tp"] == ["ACCEPTED", "CANCELLED"]
    assert engine.risk.ledger("paper").quantity(INST) == 0
    assert not engine.risk._pending  # the OCO's own id is no longer counted as open


@pytest.mark.parametrize(
    ("side", "tp", "sl", "name"),
    [("buy", "101", "100.5", "stop_loss"), ("sell", "100.5", "102", "take_profit")],
)
def test_a_bracket_on_the_wrong_side_of_its_entry_is_rejected_naming_it(
    side: str, tp: str, sl: str, name: str
) -> None:
    def place(ctx: StrategyContext) -> None:
        getattr(ctx, side)(D("0.01"), take_profit=D(tp), stop_loss=D(sl))

    _, result, events = run({0: place}, [("99.9", "100.1"), ("100", "100.2")])
    assert not events
    [rejected] = result.on("orders.rejected")
    assert isinstance(rejected, OrderRejected)
    assert rejected.reason == "ORDER_LIST"
    assert name in rejected.message and "BRACKET" in rejected.message


def test_an_oco_that_would_increase_a_position_is_rejected() -> None:
    def place(ctx: StrategyContext) -> None:  # flat: a reduce-only exit of nothing
        ctx.oco(Side.SELL, D("0.01"), take_profit=D(103), stop_loss=D(98))

    _, result, events = run({0: place}, [("99.9", "100.1")])
    assert not events
    [rejected] = result.on("orders.rejected")
    assert isinstance(rejected, OrderRejected) and rejected.reason == "REDUCE_ONLY"
