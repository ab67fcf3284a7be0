"""The bar backtest: OHLCV bars of any interval through features, strategy, sizing, risk
and a documented fill model.

Per bar, in this order (the same as backtesting.py):

1. **Orders placed before this bar are filled on it.** A market order fills at the bar's
   *open* (``FillModel.market="next_open"``, the default), a buy limit when the low reaches
   it (at the limit, or the open when the bar opens through it), a sell limit when the high
   does; a buy stop triggers when the high reaches it and fills at ``max(open, stop)``, a
   sell stop at ``min(open, stop)`` when the low does. An order not reached stays open.
   A size asked as a fraction of equity or a target is sized *here*, at the fill price:
   ``floor(fraction x equity / (price x (1 + fee_rate)))`` in lots of ``step`` (a target
   uses the equity after closing the current position), as backtesting.py does. Each
   sized order goes through the risk gate (the live :class:`RiskProcessor`, its book
   top set to the fill price) and, when approved, fills in full at that price, adverse
   ``slippage_bps`` applied, with ``fee_rate`` x notional as fee.
2. The positions are marked to the bar's close (the equity curve has one point per bar)
   and the risk stage's loss limits are checked (``risk.enable_circuit_breaker``: a
   breach halts the account, as live, and its orders are refused from then on). Risk's
   stop-loss and trailing stops, which live on every book top, are evaluated at fills
   only: use the strategy's stop orders in a bar backtest.
3. The strategy sees the bar (``on_bar``) and, when it uses them, the bar's features
   (``on_features``); what it asks for is filled on the next bar; with
   ``FillModel.market="close"`` a market order fills at once at this bar's close.

The input's last bar is a closed bar. ``close_at_end`` flattens what is still open after
it: at its close (``"close"``), or at its open (``"last_open"``: backtesting.py 0.6's
``finalize_trades``, which re-runs its broker on the last bar's prices); the closing fills
are fills like any other, so the report counts them. Orders still open then are dropped.

Futures (a ``BINANCE_USDM:*`` instrument): the risk gate applies the futures checks, and
``marks`` (``md.mark_price`` records, e.g. :func:`~algostream.backtest.run.funding_marks`
of a funding history) settle funding into the ledger as live: marks up to a bar's open
before its fills, the rest of the bar's before its close is marked. After a bar's fills,
a position whose liquidation price the bar's range reaches (low for a long, high for a
short) is liquidated at that price, as in the tick backtests (``BarBacktest._liquidate``).

Speed: records are only made for what happens (signals, orders, fills); a bar costs a
mark, the strategy hook and an equity point (``bench/bars.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

from algostream.backtest.engine import BacktestResult
from algostream.backtest.errors import BarInputError
from algostream.config import ConfigError, Settings
from algostream.features.processor import FeatureProcessor
from algostream.model.enums import OrderStatus, OrderType, Side
from algostream.model.ids import derive_id
from algostream.model.records import Bar, BookTop, MarkPrice, OrderEvent, OrderRequest, Signal
from algostream.risk import RiskProcessor
from algostream.risk.processor import output_topic
from algostream.signals.base import Strategy
from algostream.signals.context import LedgerPortfolio, OpenOrder
from algostream.signals.processor import SignalProcessor
from algostream.signals.sizing import OrderSizer

ZERO = Decimal(0)
ONE = Decimal(1)
_BPS = Decimal(10_000)


@dataclass(frozen=True)
class FillModel:
    """How orders fill on bars (see the module docstring)."""

    market: Literal["next_open", "close"] = "next_open"
    fee_rate: Decimal = Decimal("0.001")
    slippage_bps: Decimal = ZERO
    step: Decimal = Decimal("0.00001")
    close_at_end: Literal["off", "close", "last_open"] = "off"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FillModel:
        """Fees and slippage from ``execution.fee_rate`` / ``execution.slippage_bps``."""
        ex = settings.execution
        return cls(**({"fee_rate": ex.fee_rate, "slippage_bps": ex.slippage_bps} | overrides))


@dataclass
class _Pending:
    signal: Signal
    placed_ns: int


@dataclass
class BarBacktestResult(BacktestResult):
    """Outputs by topic (signals, orders, fills, positions, pnl) and one equity point per bar."""

    equity: list[tuple[int, Decimal]] = field(default_factory=list)
    bars: int = 0

    @property
    def equity_curve(self) -> list[tuple[int, Decimal]]:
        return self.equity


class BarBacktest:
    """Bars in, the live strategy/sizing/risk processors, fills by :class:`FillModel`."""

    def __init__(
        self,
        settings: Settings,
        fill: FillModel | None = None,
        strategy: Strategy[Any] | None = None,
    ) -> None:
        if strategy is None and len(settings.signal.specs()) > 1:
            raise ConfigError(
                f"config key 'signal.strategies' = {[s.id for s in settings.signal.specs()]}: "
                "the bar backtest runs one strategy; several run in the tick engine "
                "(algostream backtest run)"
            )
        self.settings = settings
        self.fill = fill or FillModel.from_settings(settings)
        self.risk = RiskProcessor(settings.risk)
        self.account = settings.risk.account
        self.portfolio = LedgerPortfolio(self.risk, self.account)
        self.strategy = strategy
        self.sizer = OrderSizer(settings.signal, settings.risk)
        self.result = BarBacktestResult()
        self._pending: list[_Pending] = []
        self._last: Bar | None = None
        self._fills = 0

    def _processors(self, interval: str) -> None:
        signal = self.settings.signal.model_copy(update={"bar_interval": interval})
        self.signals = SignalProcessor(
            signal, self.strategy, portfolio=self.portfolio, resolve=False
        )
        self.features = FeatureProcessor(signal) if self.signals.uses_features else None

    def run(self, bars: Iterable[Bar], marks: Iterable[MarkPrice] = ()) -> BarBacktestResult:
        """Run over ``bars`` (one instrument, one interval, in time order); ``marks``, in
        time order, settle futures funding (module docstring)."""
        ledger = self.risk.ledger(self.account)
        funding = iter(sorted(marks, key=lambda m: m.ts_event))
        next_mark = next(funding, None)

        def settle(until_ns: int, *, inclusive: bool) -> None:
            nonlocal next_mark
            while next_mark is not None and (
                next_mark.ts_event < until_ns or (inclusive and next_mark.ts_event == until_ns)
            ):
                for record in self.risk.on_mark_price(next_mark, next_mark.ts_init):
                    self.result.outputs.append((output_topic(record, from_proposal=False), record))
                next_mark = next(funding, None)

        equity = self.result.equity
        breaker_on = self.settings.risk.enable_circuit_breaker
        futures = False
        last: Bar | None = None
        for bar in bars:
            if last is None:
                self._processors(bar.interval)
                futures = self.risk.futures.is_futures(bar.instrument)
            elif bar.start_ns < last.end_ns or bar.instrument != last.instrument:
                raise BarInputError(
                    f"bar {bar.record_id} ({bar.instrument} start {bar.start_ns}) does not "
                    f"follow {last.record_id} ({last.instrument} end {last.end_ns}): one "
                    "instrument, in time order"
                )
            settle(bar.start_ns, inclusive=True)
            if self._pending:
                self._fill_pending(bar)
            settle(bar.end_ns, inclusive=False)
            if futures:
                self._liquidate(bar)
            position = ledger.positions.get(bar.instrument)
            held = position is not None and position.quantity
            if held:
                assert position is not None
                position.set_mark(bar.close)  # the peak is updated below, once per bar
            value = ledger.equity
            if value > ledger.peak_equity:
                ledger.peak_equity = value
            if held and breaker_on:  # the loss limits, as live on every mark
                for change in self.risk.breaker.check_account(ledger):
                    self.result.outputs.append(("risk.events", change.to_event(bar, bar.end_ns)))
            fills = self._fills
            self._decide(bar)
            if self._fills != fills:  # filled at this bar's close
                value = ledger.equity
                if value > ledger.peak_equity:
                    ledger.peak_equity = value
            equity.append((bar.end_ns, value))
            last = bar
            self.result.bars += 1
        self._last = last
        if last is not None and self.fill.close_at_end != "off":
            self._close_at_end(last)
        return self.result

    # ------------------------------------------------------------------ decisions
    def _decide(self, bar: Bar) -> None:
        signals = self.signals.on_bar(bar)
        if self.features is not None:
            fv = self.features.on_bar(bar)
            if fv is not None:
                self.result.outputs.append(("features", fv))
                signals = signals + self.signals.decide(fv)
        for signal in signals:
            self.result.outputs.append(("signals", signal))
            is_market = signal.limit_price is None and signal.stop_price is None
            if is_market and self.fill.market == "close":
                self._execute(signal, bar.close, bar.end_ns)
            else:
                self._pending.append(_Pending(signal, bar.end_ns))
                self._track(signal)

    def _track(self, signal: Signal) -> None:
        self.portfolio.orders.setdefault(signal.instrument, []).append(
            OpenOrder(
                signal.record_id,
                signal.side,
                signal.sizing,
                signal.size if signal.size is not None else ZERO,
                signal.limit_price,
                signal.stop_price,
            )
        )

    # ------------------------------------------------------------------ fills
    def _fill_pending(self, bar: Bar) -> None:
        still: list[_Pending] = []
        for pending in self._pending:
            price = self._reached(pending.signal, bar)
            if price is None:
                still.append(pending)
            else:
                self._execute(pending.signal, price, bar.start_ns)
        self._pending = still
        orders = self.portfolio.orders
        open_ids = {p.signal.record_id for p in still}
        for inst, listed in orders.items():
            orders[inst] = [o for o in listed if o.client_order_id in open_ids]

    @staticmethod
    def _reached(signal: Signal, bar: Bar) -> Decimal | None:
        """The fill price of ``signal`` on ``bar``, or ``None`` when the bar does not reach it."""
        buy = signal.side is Side.BUY
        stop, limit = signal.stop_price, signal.limit_price
        if stop is not None:
            if (bar.high < stop) if buy else (bar.low > stop):
                return None
            return max(bar.open, stop) if buy else min(bar.open, stop)
        if limit is not None:
            if (bar.low > limit) if buy else (bar.high < limit):
                return None
            return min(bar.open, limit) if buy else max(bar.open, limit)
        return bar.open

    def _quantity(self, signal: Signal, price: Decimal) -> Decimal:
        """Signed quantity to trade for ``signal`` at ``price`` (0: nothing to do)."""
        fill, inst = self.fill, signal.instrument
        sign = signal.side.sign
        if signal.sizing == "strength":
            return sign * self._floor(self.sizer.quantity(signal.strength))
        size = signal.size if signal.size is not None else ZERO
        if signal.sizing == "units":
            return sign * self._floor(abs(size))
        ledger = self.risk.ledger(self.account)
        held = ledger.quantity(inst)
        cost = price * (ONE + fill.fee_rate)
        if signal.sizing == "equity":
            value = ledger.equity + held * (price - self._mark(inst, price))
            return sign * self._floor(size * value / cost)
        if signal.sizing == "target_units":
            return self._floor_signed(size) - held
        # target_equity: the equity left once the current position is closed at ``price``
        flat = ledger.equity + held * (price - self._mark(inst, price))
        flat -= abs(held) * price * fill.fee_rate
        target = self._floor(abs(size) * flat / cost)
        return (target if size >= 0 else -target) - held

    def _mark(self, instrument: str, default: Decimal) -> Decimal:
        pos = self.risk.ledger(self.account).positions.get(instrument)
        if pos is None or not pos.quantity:
            return default
        return pos.avg_price if pos.mark_price is None else pos.mark_price

    def _floor(self, value: Decimal) -> Decimal:
        if value <= 0:
            return ZERO
        step = self.fill.step
        return (value / step).to_integral_value(ROUND_DOWN) * step

    def _floor_signed(self, value: Decimal) -> Decimal:
        return self._floor(value) if value >= 0 else -self._floor(-value)

    def _execute(self, signal: Signal, price: Decimal, ts: int) -> None:
        """Size ``signal`` at ``price``, ask risk, fill when approved."""
        qty = self._quantity(signal, price)
        if not qty:
            return
        side = Side.BUY if qty > 0 else Side.SELL
        slip = price * self.fill.slippage_bps / _BPS
        fill_price = price + slip if side is Side.BUY else price - slip
        order = OrderRequest.model_construct(
            instrument=signal.instrument,
            ts_event=ts,
            ts_init=ts,
            record_id=derive_id("order", signal.record_id),
            lineage_id=signal.record_id,
            account=self.account,
            client_order_id=derive_id(signal.record_id),
            strategy=signal.strategy,
            side=side,
            order_type=OrderType.MARKET if signal.limit_price is None else OrderType.LIMIT,
            quantity=abs(qty),
            limit_price=signal.limit_price,
            time_in_force=OrderRequest.model_fields["time_in_force"].default,
            reduce_only=False,
            arrival_mid=price,
        )
        self._set_top(signal.instrument, price, ts, signal.record_id)
        self._propose(order, fill_price)

    def _set_top(self, instrument: str, price: Decimal, ts: int, cause: str) -> None:
        level = ((price, ONE),)
        top = BookTop.model_construct(
            instrument=instrument,
            ts_event=ts,
            ts_init=ts,
            record_id=derive_id("bar-top", instrument, ts),
            lineage_id=cause,
            bids=level,
            asks=level,
            best_bid=price,
            best_ask=price,
            mid=price,
            spread=ZERO,
            imbalance=None,
            microprice=price,
            update_id=0,
        )
        for record in self.risk.on_book_top(top, ts):
            topic = output_topic(record, from_proposal=False)
            if topic == "orders.proposed" and isinstance(record, OrderRequest):
                self._propose(record, price)  # a risk stop: it closes at this price
            else:
                self.result.outputs.append((topic, record))

    def _propose(self, order: OrderRequest, fill_price: Decimal) -> None:
        out = self.result.outputs
        out.append(("orders.proposed", order))
        for decision in self.risk.on_proposal(order, order.ts_event):
            if not isinstance(decision, OrderRequest):
                out.append(("orders.rejected", decision))
                continue
            out.append(("orders.approved", decision))
            self._fills += 1
            event = self._fill_event(decision, fill_price)
            out.append(("orders.events", event))
            for record in self.risk.on_order_event(event, event.ts_event):
                out.append((output_topic(record, from_proposal=False), record))

    def _fill_event(self, order: OrderRequest, price: Decimal) -> OrderEvent:
        qty = order.quantity
        return OrderEvent.model_construct(
            instrument=order.instrument,
            ts_event=order.ts_event,
            ts_init=order.ts_init,
            record_id=derive_id("fill", order.client_order_id),
            lineage_id=order.record_id,
            account=order.account,
            client_order_id=order.client_order_id,
            venue_order_id=None,
            status=OrderStatus.FILLED,
            side=order.side,
            order_type=order.order_type,
            quantity=qty,
            limit_price=order.limit_price,
            fill_price=price,
            fill_qty=qty,
            cum_qty=qty,
            fee=qty * price * self.fill.fee_rate,
            fee_currency="QUOTE",
            slippage=None,
            reason="",
            venue="BACKTEST",
        )

    # ------------------------------------------------------------------ liquidation
    def _liquidate(self, bar: Bar) -> None:
        """A futures position whose liquidation price the bar's range reaches (a long:
        the low at or below it, a short: the high at or above it) closes there, after the
        bar's fills, as the tick backtests' paper account does: a FILLED event of its own
        (strategy ``liquidation``, reason ``LIQUIDATED: ...``) with the liquidation fee,
        applied to the ledger without the risk gate (the venue closes it); the orders
        still open on the instrument are dropped. The liquidation price is the gate's
        account's (:meth:`~algostream.execution.futures.FuturesAccount.liquidation_price`,
        the bracket at the bar's open)."""
        inst = bar.instrument
        ledger = self.risk.ledger(self.account)
        pos = ledger.positions.get(inst)
        if pos is None or not pos.quantity:
            return
        account = self.risk.futures.account(ledger, self.settings.risk.starting_equity)
        liq = account.liquidation_price(account.positions[inst], bar.open)
        long = pos.quantity > 0
        if liq is None or (bar.low > liq if long else bar.high < liq):
            return
        qty, ts = abs(pos.quantity), bar.start_ns
        side = Side.SELL if long else Side.BUY
        fee = qty * liq * self.settings.risk.liquidation_fee_percent / 100
        mode = self.risk.futures.mode.value
        extreme = f"low {bar.low:f}" if long else f"high {bar.high:f}"
        coid = "liq-" + derive_id("liquidation", inst, bar.record_id)
        event = OrderEvent.model_construct(
            instrument=inst, ts_event=ts, ts_init=ts, record_id=derive_id("fill", coid),
            lineage_id=bar.record_id, account=self.account, client_order_id=coid,
            venue_order_id=None, status=OrderStatus.FILLED, side=side,
            order_type=OrderType.MARKET, quantity=qty, limit_price=None, fill_price=liq,
            fill_qty=qty, cum_qty=qty, fee=fee, fee_currency="QUOTE", slippage=None,
            reason=(
                f"LIQUIDATED: {'LONG' if long else 'SHORT'} {qty:f} {inst} ({mode}): the "
                f"bar's {extreme} crossed the liquidation price {liq:f}"
            ),
            venue="BACKTEST", strategy="liquidation",
        )  # fmt: skip
        self._fills += 1
        out = self.result.outputs
        out.append(("orders.events", event))
        for record in self.risk.on_order_event(event, ts):
            out.append((output_topic(record, from_proposal=False), record))
        self._pending = [p for p in self._pending if p.signal.instrument != inst]
        self.portfolio.orders.pop(inst, None)

    # ------------------------------------------------------------------ end of input
    def _close_at_end(self, last: Bar) -> None:
        self._pending.clear()
        self.portfolio.orders.clear()
        ledger = self.risk.ledger(self.account)
        price = last.close if self.fill.close_at_end == "close" else last.open
        ts = last.end_ns
        for inst, pos in list(ledger.positions.items()):
            if not pos.quantity:
                continue
            signal = Signal.model_construct(
                instrument=inst,
                ts_event=ts,
                ts_init=ts,
                record_id=derive_id("close-at-end", inst, ts),
                lineage_id=last.record_id,
                strategy="close-at-end",
                side=Side.SELL if pos.quantity > 0 else Side.BUY,
                strength=1.0,
                confidence=1.0,
                reason="close at end of input",
                price=price,
                sizing="target_units",
                size=ZERO,
                limit_price=None,
                stop_price=None,
            )
            self.result.outputs.append(("signals", signal))
            self._execute(signal, price, ts)
        if self.result.equity:
            self.result.equity[-1] = (ts, ledger.equity)


def bar_backtest(
    settings: Settings,
    bars: Sequence[Bar] | Iterable[Bar],
    fill: FillModel | None = None,
    strategy: Strategy[Any] | None = None,
    marks: Iterable[MarkPrice] = (),
) -> BarBacktestResult:
    """Run a :class:`BarBacktest` once."""
    return BarBacktest(settings, fill, strategy).run(bars, marks)
