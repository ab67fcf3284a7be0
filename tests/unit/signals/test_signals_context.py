"""The strategy context: what it shows and how the processor sizes what it asks for."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any, ClassVar

import pytest

from algostream.config import RiskConfig, SignalConfig
from algostream.model.enums import CostMethod, Side
from algostream.model.records import Bar, PnL, Position
from algostream.risk.limits import InstrumentFilters
from algostream.signals.base import Strategy, StrategyConfig
from algostream.signals.context import FlatPortfolio, PositionView, RecordPortfolio
from algostream.signals.errors import StrategyOrderError
from algostream.signals.processor import SignalProcessor
from algostream.signals.sizing import OrderSizer

INST = "BINANCE:BTCUSDT"


def position(ts: int, qty: str, avg: str = "100", mark: str = "110") -> Position:
    return Position(
        instrument=INST,
        ts_event=ts,
        ts_init=ts,
        record_id=f"p{ts}",
        lineage_id="x",
        account="paper",
        quantity=qty,
        avg_price=avg,
        cost_method=CostMethod.FIFO,
        realized_pnl="0",
        unrealized_pnl="10",
        fees="0",
        mark_price=mark,
    )


def pnl(ts: int, equity: str) -> PnL:
    return PnL(
        instrument="ACCOUNT:PAPER",
        ts_event=ts,
        ts_init=ts,
        record_id=f"e{ts}",
        lineage_id="x",
        account="paper",
        realized_pnl="0",
        unrealized_pnl="0",
        fees="0",
        equity=equity,
        peak_equity=equity,
        drawdown="0",
        exposure="0",
    )


def test_record_portfolio_keeps_the_newest_records_whatever_their_order() -> None:
    folio = RecordPortfolio("paper", D(1000))
    folio.on_position(position(2, "3"))
    folio.on_position(position(1, "9"))  # older, read later (the start-up seed)
    folio.on_pnl(pnl(2, "1030"))
    folio.on_pnl(pnl(1, "999"))
    assert folio.position(INST) == PositionView(D(3), D(100), D(10))
    assert folio.equity() == D(1030) and folio.cash() == D(1030) - 3 * D(110)
    other = RecordPortfolio("other", D(5))
    other.on_pnl(pnl(3, "1"))
    assert other.equity() == D(5)


class Asks(Strategy[StrategyConfig]):
    name: ClassVar[str] = "asks"
    ask: ClassVar[Any] = None

    def on_bar(self, bar: Bar) -> None:
        type(self).ask(self.ctx)


def bar(close: str) -> Bar:
    return Bar(
        instrument=INST,
        ts_event=2_000_000_000,
        ts_init=2_000_000_000,
        record_id="b1",
        lineage_id="t",
        interval="1s",
        start_ns=1_000_000_000,
        end_ns=2_000_000_000,
        open=close,
        high=close,
        low=close,
        close=close,
        volume="1",
        quote_volume=close,
        trades=1,
    )


def decide(ask: Any, folio: Any, **kw: Any) -> list[Any]:
    Asks.ask = ask
    proc = SignalProcessor(SignalConfig(), Asks(StrategyConfig()), portfolio=folio, **kw)
    return proc.on_bar(bar("250"))


def test_live_sizing_turns_a_fraction_and_a_target_into_units_at_the_price() -> None:
    folio = RecordPortfolio("paper", D(1000))
    folio.on_position(position(1, "3"))
    filters = {INST: InstrumentFilters(tick_size=D("0.01"), step_size=D("0.1"))}
    (sig,) = decide(lambda ctx: ctx.buy(fraction=D("0.5")), folio, filters=filters)
    assert (sig.sizing, sig.size, sig.side) == ("units", D("2.0"), Side.BUY)  # 500/250
    (sig,) = decide(lambda ctx: ctx.target(fraction=D("-1")), folio, filters=filters)
    assert (sig.side, sig.size) == (Side.SELL, D("7.0"))  # from +3 to -4
    assert decide(lambda ctx: ctx.target(units=D("3")), folio) == []  # already there
    order = OrderSizer(SignalConfig(), RiskConfig()).to_order(sig)
    assert order is not None and order.quantity == D(7) and order.side is Side.SELL


def test_a_limit_is_a_limit_order_and_a_stop_is_a_stop_order_live() -> None:
    (sig,) = decide(lambda ctx: ctx.buy(D("1"), limit=D("240")), FlatPortfolio(D(1000)))
    sizer = OrderSizer(SignalConfig(), RiskConfig())
    order = sizer.to_order(sig)
    assert order is not None and order.order_type.value == "LIMIT"
    assert order.limit_price == D(240)
    (sig,) = decide(lambda ctx: ctx.sell(D("1"), stop=D("200")), FlatPortfolio(D(1000)))
    order = sizer.to_order(sig)
    assert order is not None and order.order_type.value == "STOP_MARKET"
    assert (order.stop_price, order.limit_price, order.quantity) == (D(200), None, D(1))
    (sig,) = decide(lambda ctx: ctx.buy(D("1"), stop=D("260"), limit=D("262")),
                    FlatPortfolio(D(1000)))  # fmt: skip
    order = sizer.to_order(sig)
    assert order is not None and order.order_type.value == "STOP_LIMIT"
    assert (order.stop_price, order.limit_price) == (D(260), D(262))
    with pytest.raises(StrategyOrderError, match="stop=200 with sizing=equity"):
        decide(lambda ctx: ctx.sell(fraction=D("0.5"), stop=D("200")), FlatPortfolio(D(1000)))


@pytest.mark.parametrize(
    ("ask", "named"),
    [
        (lambda ctx: ctx.buy(), "units or fraction"),
        (lambda ctx: ctx.buy(D("-1")), "units"),
        (lambda ctx: ctx.target(fraction=D("2")), "fraction"),
        (lambda ctx: ctx.sell(D("1"), limit=D("0")), "limit"),
    ],
)
def test_bad_asks_name_the_argument(ask: Any, named: str) -> None:
    with pytest.raises(StrategyOrderError, match=named):
        decide(ask, FlatPortfolio(D(1000)))
