"""Cancel and replace from the strategy API (``ctx.cancel`` / ``ctx.replace``) through
sizing, the risk gate and the paper broker of the tick engine, and in the bar backtest:
a resting limit replaced, then the replacement cancelled, each step on ``orders.events``;
a replayed request changes nothing; a request for an order no longer open is refused
naming it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D
from typing import Any, ClassVar

from algostream.backtest.bars import BarBacktest, FillModel
from algostream.backtest.engine import BacktestEngine
from algostream.config import load_settings
from algostream.model import BookTop, BookUpdate, BookUpdateKind, OrderEvent, OrderRequest
from algostream.model.enums import OrderAction, OrderStatus, Side
from algostream.model.records import Bar, OrderRejected
from algostream.signals.base import Strategy, StrategyConfig
from algostream.signals.context import StrategyContext
from algostream.signals.registry import register_strategy
from tests.unit.backtest.bar_testkit import WIDE, bar

INST = "BINANCE:BTCUSDT"
ENV = {"ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]'}
PLAN: dict[int, Callable[[StrategyContext], None]] = {}
SEEN: list[tuple[tuple[str, D | None, D], ...]] = []


class Scripted(Strategy[StrategyConfig]):
    name: ClassVar[str] = "scripted_amend"

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.n = 0

    def on_book(self, top: BookTop) -> None:
        SEEN.append(tuple((o.client_order_id, o.limit_price, o.size) for o in self.ctx.open_orders))
        step = PLAN.get(self.n)
        if step is not None:
            step(self.ctx)
        self.n += 1


register_strategy("scripted_amend", lambda cfg: Scripted(StrategyConfig()), replace=True)


def book(ts: int, bid: str, ask: str) -> BookUpdate:
    return BookUpdate(
        instrument=INST, ts_event=ts, ts_init=ts, record_id=f"b{ts}", lineage_id="raw",
        kind=BookUpdateKind.SNAPSHOT, bids=((D(bid), D("50")),), asks=((D(ask), D("50")),),
        first_update_id=ts, final_update_id=ts,
    )  # fmt: skip


def run(plan: dict[int, Callable[[StrategyContext], None]], n: int) -> tuple[Any, Any]:
    PLAN.clear()
    PLAN.update(plan)
    SEEN.clear()
    settings = load_settings(env=ENV | {"ALGOSTREAM__SIGNAL__STRATEGY": "scripted_amend"})
    engine = BacktestEngine(settings)
    start = 1_000_000_000_000
    result = engine.run(book(start + i * 1_000_000, "99.9", "100.1") for i in range(n))
    return engine, result


def rest(ctx: StrategyContext) -> None:
    ctx.buy(D("0.01"), limit=D("99"))


def move(ctx: StrategyContext) -> None:
    (order,) = ctx.open_orders
    ctx.replace(order, price=D("99.5"), quantity=D("0.02"))


def cancel(ctx: StrategyContext) -> None:
    (order,) = ctx.open_orders
    ctx.cancel(order.client_order_id)


def test_a_resting_limit_is_replaced_then_cancelled_each_step_on_orders_events() -> None:
    engine, result = run({0: rest, 1: move, 2: cancel}, 4)
    events = [e for e in result.on("orders.events") if isinstance(e, OrderEvent)]
    first, second = events[0].client_order_id, events[2].client_order_id
    assert [(e.client_order_id, e.status, e.limit_price, e.quantity) for e in events] == [
        (first, OrderStatus.ACCEPTED, D("99"), D("0.01")),
        (first, OrderStatus.CANCELLED, D("99"), D("0.01")),
        (second, OrderStatus.ACCEPTED, D("99.5"), D("0.02")),
        (second, OrderStatus.CANCELLED, D("99.5"), D("0.02")),
    ]
    assert events[1].reason == f"replaced by {second}"
    assert events[3].reason.startswith("cancelled by request ")
    # what the strategy saw: the order, its replacement, then nothing open
    assert [
        (),
        ((first, D("99"), D("0.01")),),
        ((second, D("99.5"), D("0.02")),),
        (),
    ] == SEEN
    proposed = [r for r in result.on("orders.proposed") if isinstance(r, OrderRequest)]
    assert [(p.action, p.target_id) for p in proposed] == [
        (OrderAction.NEW, None),
        (OrderAction.REPLACE, first),
        (OrderAction.CANCEL, second),
    ]
    assert len(result.on("orders.approved")) == 3 and not result.on("orders.rejected")
    assert not engine.risk._pending  # nothing left reserved
    # the same approved requests again (a redelivery): nothing changes
    for approved in result.on("orders.approved"):
        assert isinstance(approved, OrderRequest)
        assert engine.lists.submit(approved, approved.ts_init + 10) == []


def test_a_cancel_of_an_order_filled_meanwhile_is_refused_naming_it() -> None:
    engine, result = run({0: rest}, 1)
    (accepted,) = [e for e in result.on("orders.events") if isinstance(e, OrderEvent)]
    target = accepted.client_order_id
    # the order fills before the cancel arrives
    fill = engine.lists.on_book_top(
        BookTop(instrument=INST, ts_event=2 * 10**12, ts_init=2 * 10**12, record_id="x",
                lineage_id="u", bids=(("98", "1"),), asks=(("98.5", "1"),), update_id=9)
    )  # fmt: skip
    engine._fills(fill)
    request = OrderRequest(
        instrument=INST, ts_event=2 * 10**12, ts_init=2 * 10**12, record_id="p-late",
        lineage_id="s-late", account="paper", client_order_id="late", strategy="s",
        side=Side.BUY, order_type="LIMIT", quantity="0.01", limit_price="99",
        action=OrderAction.CANCEL, target_id=target,
    )  # fmt: skip
    engine._propose(request)
    (rejected,) = engine.result.on("orders.rejected")
    assert isinstance(rejected, OrderRejected)
    assert rejected.reason == "ORDER_NOT_OPEN" and target in rejected.message


# --------------------------------------------------------------------------- bars


class BarScript(Strategy[StrategyConfig]):
    name: ClassVar[str] = "bar_amend"
    plan: ClassVar[dict[int, Callable[[StrategyContext], None]]] = {}

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        step = self.plan.get(self.n)
        if step is not None:
            step(self.ctx)
        self.n += 1


def test_bar_backtest_replaces_a_pending_limit_and_the_replacement_fills() -> None:
    BarScript.plan = {
        0: lambda ctx: ctx.buy(D("1"), limit=D("90")),  # never reached
        1: lambda ctx: ctx.replace(ctx.open_orders[0], price=D("97")),  # reached on bar 2
    }
    bars = [bar(0, "100", "101", "99", "100"), bar(1, "100", "101", "98", "100"),
            bar(2, "99", "100", "96", "98"), bar(3, "98", "99", "97", "98")]  # fmt: skip
    result = BarBacktest(WIDE, FillModel(fee_rate=D(0)), BarScript(StrategyConfig())).run(bars)
    events = [e for e in result.on("orders.events") if isinstance(e, OrderEvent)]
    assert [(e.status, e.limit_price) for e in events] == [
        (OrderStatus.CANCELLED, D("90")),
        (OrderStatus.FILLED, D("97")),
    ]
    assert events[1].fill_price == D("97") and events[1].fill_qty == D("1")
    assert events[0].reason.startswith("replaced by ")


def test_bar_backtest_cancels_a_pending_stop() -> None:
    BarScript.plan = {
        0: lambda ctx: ctx.buy(D("1"), stop=D("105")),
        1: lambda ctx: ctx.cancel(ctx.open_orders[0]),
    }
    bars = [bar(0, "100", "101", "99", "100"), bar(1, "100", "101", "99", "100"),
            bar(2, "100", "110", "99", "108")]  # fmt: skip
    result = BarBacktest(WIDE, FillModel(fee_rate=D(0)), BarScript(StrategyConfig())).run(bars)
    events = [e for e in result.on("orders.events") if isinstance(e, OrderEvent)]
    assert [(e.status, e.stop_price) for e in events] == [(OrderStatus.CANCELLED, D("105"))]
    assert not result.fills  # the stop was reached on bar 2, but it was cancelled
