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
    #: an exit of an OCO / bracket: the list's id (one leg filling drops the other)
    group: str | None = None


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
            if signal.order_list == "OCO":  # two exits, from the next bar
                side = signal.side
                self._add_exits(signal, side, abs(signal.size or ZERO), bar.end_ns)
                continue
            is_market = signal.limit_price is None and signal.stop_price is None
            if is_market and self.fill.market == "close":
                self._execute(signal, bar.close, bar.end_ns)
            else:
                self._pending.append(_Pending(signal, bar.end_ns))
                self._track(signal)

    def _add_exits(self, owner: Signal, side: Side, qty: Decimal, ts: int) -> None:
        """A take-profit limit and a stop-loss stop for ``qty``, one cancelling the other
        (an OCO's, or a bracket's once its entry has filled), pending from the next bar."""
        if qty <= 0 or owner.take_profit is None or owner.stop_loss is None:
            return
        common = {
            "side": side,
            "sizing": "units",
            "size": qty,
            "order_list": None,
            "take_profit": None,
            "stop_loss": None,
            "ts_event": ts,
            "ts_init": ts,
        }
        for suffix, limit, stop in (("tp", owner.take_profit, None), ("sl", None, owner.stop_loss)):
            leg = owner.model_copy(
                update=common
                | {
                    "record_id": f"{owner.record_id}-{suffix}",
                    "limit_price": limit,
                    "stop_price": stop,
                }
            )
            self._pending.append(_Pending(leg, ts, group=owner.record_id))
            self._track(leg)

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
        pending, self._pending = self._pending, []  # what fills may stage exits in
        reached = [self._reached(p.signal, bar) for p in pending]
        # a bar that reaches both exits of a list: the stop-loss is taken (the pessimistic
        # reading of a bar, whose path inside is unknown)
        stopped = {
            p.group
            for p, price in zip(pending, reached, strict=True)
            if p.group and p.signal.stop_price is not None and price is not None
        }
        still: list[_Pending] = []
        ended: set[str] = set()
        for p, price in zip(pending, reached, strict=True):
            if p.group in ended:
                continue
            if p.group in stopped and p.signal.stop_price is None:
                price = None
            if price is None:
                still.append(p)
                continue
            self._execute(p.signal, price, bar.start_ns, leg=p.group is not None)
            if p.group:
                ended.add(p.group)  # filled or refused: the other leg goes too
        self._pending = [p for p in still if p.group not in ended] + self._pending
        orders = self.portfolio.orders
        open_ids = {p.signal.record_id for p in self._pending}
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

    def _execute(self, signal: Signal, price: Decimal, ts: int, *, leg: bool = False) -> None:
        """Size ``signal`` at ``price``, ask risk, fill when approved (``leg``: an exit of
        a list, reduce-only); a bracket's filled entry stages its exits."""
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
            order_type=_order_type(signal),
            quantity=abs(qty),
            limit_price=signal.limit_price,
            stop_price=signal.stop_price,
            time_in_force=OrderRequest.model_fields["time_in_force"].default,
            reduce_only=leg,
            arrival_mid=price,
            post_only=False,
            order_list=signal.order_list,
            take_profit=signal.take_profit,
            stop_loss=signal.stop_loss,
            list_id=None,
        )
        self._set_top(signal.instrument, price, ts, signal.record_id)
        if self._propose(order, fill_price) and signal.order_list == "BRACKET":
            self._add_exits(signal, side.opposite(), abs(qty), ts)

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

    def _propose(self, order: OrderRequest, fill_price: Decimal) -> bool:
        """Ask risk; fill what it approves; whether it did."""
        out = self.result.outputs
        out.append(("orders.proposed", order))
        approved = False
        for decision in self.risk.on_proposal(order, order.ts_event):
            if not isinstance(decision, OrderRequest):
                out.append(("orders.rejected", decision))
                continue
            approved = True
            out.append(("orders.approved", decision))
            self._fills += 1
            event = self._fill_event(decision, fill_price)
            out.append(("orders.events", event))
            for record in self.risk.on_order_event(event, event.ts_event):
                out.append((output_topic(record, from_proposal=False), record))
        return approved

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


def _order_type(signal: Signal) -> OrderType:
    if signal.stop_price is not None:
        return OrderType.STOP_MARKET if signal.limit_price is None else OrderType.STOP_LIMIT
    return OrderType.MARKET if signal.limit_price is None else OrderType.LIMIT


def bar_backtest(
    settings: Settings,
    bars: Sequence[Bar] | Iterable[Bar],
    fill: FillModel | None = None,
    strategy: Strategy[Any] | None = None,
    marks: Iterable[MarkPrice] = (),
) -> BarBacktestResult:
    """Run a :class:`BarBacktest` once."""
    return BarBacktest(settings, fill, strategy).run(bars, marks)
