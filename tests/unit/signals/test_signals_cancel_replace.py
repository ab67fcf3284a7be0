"""``ctx.cancel`` / ``ctx.replace``: the open order named by object or id, bad asks named;
the processor and the sizer turn them into CANCEL / REPLACE requests with the target id;
live portfolios follow open orders from ``orders.events``."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any, ClassVar

import pytest

from algostream.config import RiskConfig, SignalConfig
from algostream.model.enums import OrderAction, OrderStatus, OrderType, Side
from algostream.model.ids import derive_id
from algostream.model.records import Bar, OrderEvent
from algostream.signals.base import Strategy, StrategyConfig
from algostream.signals.context import LedgerPortfolio, OpenOrder, RecordPortfolio, StrategyContext
from algostream.signals.errors import StrategyOrderError
from algostream.signals.processor import SignalProcessor
from algostream.signals.sizing import OrderSizer

INST = "BINANCE:BTCUSDT"


def event(coid: str, status: OrderStatus, qty: str = "2", cum: str = "0", **kw: Any) -> OrderEvent:
    fields: dict[str, Any] = {
        "instrument": INST, "ts_event": 1, "ts_init": 1, "record_id": f"{coid}-{status}",
        "lineage_id": "a", "account": "paper", "client_order_id": coid, "status": status,
        "side": Side.BUY, "order_type": OrderType.LIMIT, "quantity": qty,
        "limit_price": "99", "cum_qty": cum,
    } | kw  # fmt: skip
    return OrderEvent(**fields)


def context_with(*events: OrderEvent) -> StrategyContext:
    portfolio = RecordPortfolio("paper", D(1000))
    for ev in events:
        portfolio.on_order_event(ev)
    return StrategyContext(INST, portfolio)


def test_live_portfolio_follows_open_orders_from_their_events() -> None:
    ctx = context_with(
        event("a", OrderStatus.ACCEPTED),
        event("b", OrderStatus.ACCEPTED),
        event("a", OrderStatus.PARTIALLY_FILLED, cum="0.5"),
        event("b", OrderStatus.CANCELLED),
        event("c", OrderStatus.ACCEPTED, account="other"),
    )
    assert ctx.open_orders == (OpenOrder("a", Side.BUY, "units", D("1.5"), D(99), None),)


def test_cancel_and_replace_by_object_or_id() -> None:
    ctx = context_with(event("a", OrderStatus.ACCEPTED))
    (held,) = ctx.open_orders
    ctx.replace(held, price=D("98.5"))
    ctx.replace("a", quantity=D("3"))
    ctx.cancel("a")
    got = [(i.action, i.target_id, i.side, i.size, i.limit_price) for i in ctx.take_intents()]
    assert got == [
        (OrderAction.REPLACE, "a", Side.BUY, D(2), D("98.5")),
        (OrderAction.REPLACE, "a", Side.BUY, D(3), D(99)),
        (OrderAction.CANCEL, "a", Side.BUY, D(2), D(99)),
    ]


@pytest.mark.parametrize(
    ("ask", "words"),
    [
        (lambda ctx: ctx.cancel("zz"), "'zz' is not an open order"),
        (lambda ctx: ctx.replace("zz", price=D(1)), "'zz' is not an open order"),
        (lambda ctx: ctx.replace("a"), "give price or quantity"),
        (lambda ctx: ctx.replace("a", price=D(-1)), "price=Decimal('-1')"),
        (lambda ctx: ctx.replace("a", quantity=D(0)), "quantity=Decimal('0')"),
    ],
)
def test_bad_asks_are_named(ask: Any, words: str) -> None:
    ctx = context_with(event("a", OrderStatus.ACCEPTED))
    with pytest.raises(StrategyOrderError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ask(ctx)
    assert ctx.take_intents() == []


class Mover(Strategy[StrategyConfig]):
    name: ClassVar[str] = "mover"

    def on_bar(self, bar: Bar) -> None:
        for held in self.ctx.open_orders:
            self.ctx.replace(held, price=bar.close)


def bar(i: int, close: str) -> Bar:
    return Bar(instrument=INST, ts_event=i * 60, ts_init=i * 60, record_id=f"bar{i}",
               lineage_id="t", interval="1m", start_ns=(i - 1) * 60, end_ns=i * 60,
               open=close, high=close, low=close, close=close, volume="1",
               quote_volume="0", trades=1)  # fmt: skip


def test_the_processor_and_the_sizer_make_a_replace_request_keyed_by_the_signal() -> None:
    portfolio = RecordPortfolio("paper", D(1000))
    portfolio.on_order_event(event("a", OrderStatus.ACCEPTED))
    proc = SignalProcessor(SignalConfig(bar_interval="1m"), Mover(StrategyConfig()),
                           portfolio=portfolio)  # fmt: skip
    (signal,) = proc.on_bar(bar(1, "98.7"))
    assert (signal.action, signal.target_id, signal.limit_price) == ("REPLACE", "a", D("98.7"))
    sizer = OrderSizer(SignalConfig(), RiskConfig())
    request = sizer.to_order(signal)
    assert request is not None and request.action is OrderAction.REPLACE
    assert (request.target_id, request.order_type, request.quantity) == ("a", "LIMIT", D(2))
    assert request.client_order_id == derive_id(signal.record_id)
    assert sizer.to_order(signal) == request  # the same signal twice: the same request


def test_a_cancel_request_is_made_even_when_its_size_rounds_to_zero() -> None:
    ctx = context_with(event("a", OrderStatus.ACCEPTED, qty="0.000001"))
    ctx.price = D(99)
    ctx.cancel("a")
    proc = SignalProcessor(SignalConfig(), Mover(StrategyConfig()))
    strategy = proc.strategy(INST)
    strategy.ctx = ctx
    (signal,) = proc._signals(strategy, "cause", 1, 1)
    request = OrderSizer(SignalConfig(), RiskConfig()).to_order(signal)
    assert request is not None and request.action is OrderAction.CANCEL
    assert (request.target_id, request.quantity) == ("a", 0)


def test_an_order_request_refuses_a_cancel_without_a_target() -> None:
    from algostream.model.errors import RecordDecodeError
    from algostream.model.records import OrderRequest

    base = {"instrument": INST, "ts_event": 1, "ts_init": 1, "record_id": "r",
            "lineage_id": "l", "account": "paper", "client_order_id": "c", "strategy": "s",
            "side": "BUY", "order_type": "LIMIT", "quantity": "1", "limit_price": "1"}  # fmt: skip
    with pytest.raises(RecordDecodeError, match="CANCEL needs a target_id"):
        OrderRequest.from_obj(base | {"action": "CANCEL"})
    with pytest.raises(RecordDecodeError, match="only for a CANCEL or REPLACE"):
        OrderRequest.from_obj(base | {"target_id": "x"})
    with pytest.raises(RecordDecodeError, match="own client_order_id"):
        OrderRequest.from_obj(base | {"action": "REPLACE", "target_id": "c"})
    ok = OrderRequest.from_obj(base | {"action": "REPLACE", "target_id": "x"})
    assert OrderRequest.decode(ok.encode()) == ok


def test_the_tick_engine_portfolio_keeps_its_strategy_orders_only() -> None:
    from algostream.risk import RiskProcessor

    held = LedgerPortfolio(RiskProcessor(RiskConfig()), "paper", "s1")
    held.on_order_event(event("a", OrderStatus.ACCEPTED, strategy="s1"))
    held.on_order_event(event("b", OrderStatus.ACCEPTED, strategy="s2"))
    assert [o.client_order_id for o in held.open_orders(INST)] == ["a"]
    held.on_order_event(event("a", OrderStatus.FILLED, cum="2", strategy="s1"))
    assert held.open_orders(INST) == ()


class Seller(Strategy[StrategyConfig]):
    name: ClassVar[str] = "seller"

    def on_bar(self, bar: Bar) -> None:
        self.ctx.sell(fraction=D("0.5"))


def test_live_a_sell_of_a_fraction_of_equity_is_a_sell() -> None:
    proc = SignalProcessor(SignalConfig(bar_interval="1m"), Seller(StrategyConfig()),
                           portfolio=RecordPortfolio("paper", D(1000)))  # fmt: skip
    (signal,) = proc.on_bar(bar(1, "10"))
    assert (signal.side, signal.sizing, signal.size) == (Side.SELL, "units", D(50))
