"""``SignalProcessor``: feature vectors in, signals out, one strategy instance per instrument.

The pure core of the signal agent. The strategy named by ``SignalConfig.strategy`` is built
once (a model is loaded once) and cloned per instrument. A feature vector that does not
advance its instrument's last ``ts_event`` (redelivery after a restart) is ignored, so
at-least-once delivery cannot emit twice (a bar that does not advance its instrument's
last bar end likewise). ``snapshot``/``restore`` carry per-instrument strategy memory
through a Faust table.

Before every hook the strategy's ``ctx`` (:class:`~algostream.signals.context.StrategyContext`)
is set to the record's clock and price; what the strategy asks of it becomes signals
with a ``sizing``. With ``resolve`` (live, the tick engine) a fraction of equity or a
target is turned into units here, at the context's price; without (the bar backtest) it
is sized at the fill.

>>> from algostream.config import SignalConfig
>>> SignalProcessor(SignalConfig(strategy="macd_crossover")).strategy_name
'macd_crossover'
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from algostream.config import SignalConfig
from algostream.model.enums import Side
from algostream.model.ids import derive_id
from algostream.model.records import Bar, BookTop, FeatureVector, Signal
from algostream.signals.base import Strategy
from algostream.signals.context import (
    FlatPortfolio,
    OrderIntent,
    Portfolio,
    StrategyContext,
)
from algostream.signals.errors import StrategyOrderError, StrategyStateError
from algostream.signals.registry import build_strategy

if TYPE_CHECKING:
    from algostream.risk.limits import InstrumentFilters

DEFAULT_STEP = Decimal("0.00001")


class SignalProcessor:
    """Per-instrument strategy state; maps a ``FeatureVector`` to an optional ``Signal``."""

    def __init__(
        self,
        config: SignalConfig | None = None,
        strategy: Strategy[Any] | None = None,
        *,
        portfolio: Portfolio | None = None,
        filters: dict[str, InstrumentFilters] | None = None,
        resolve: bool = True,
    ):
        self.config = config or SignalConfig()
        self._prototype = strategy or build_strategy(self.config.strategy, self.config)
        self._strategies: dict[str, Strategy[Any]] = {}
        self._last_ts: dict[str, int] = {}
        self._last_bar: dict[str, int] = {}
        self.portfolio: Portfolio = portfolio or FlatPortfolio(Decimal(0))
        self.filters = dict(filters or {})
        self.resolve = resolve
        #: which hooks the strategy overrides (the others need not be called at all)
        kind = type(self._prototype)
        self.uses_features = kind.on_features is not Strategy.on_features
        self.uses_bars = kind.on_bar is not Strategy.on_bar
        self.uses_books = kind.on_book is not Strategy.on_book

    @property
    def strategy_name(self) -> str:
        """The registry name of the strategy in use."""
        return self._prototype.name

    def strategy(self, instrument: str) -> Strategy[Any]:
        """The strategy instance of ``instrument`` (cloned on first use)."""
        strategy = self._strategies.get(instrument)
        if strategy is None:
            strategy = self._strategies[instrument] = self._prototype.clone()
            self._attach(instrument, strategy)
        return strategy

    def _attach(self, instrument: str, strategy: Strategy[Any]) -> None:
        strategy.ctx = StrategyContext(instrument, self.portfolio, self.filters.get(instrument))

    def on_bar(self, bar: Bar) -> list[Signal]:
        """Run the strategy's ``on_bar`` on a closed bar of ``signal.bar_interval``; the
        signals it asked for."""
        if bar.interval != self.config.bar_interval:
            return []
        last = self._last_bar.get(bar.instrument)
        if last is not None and bar.end_ns <= last:
            return []
        self._last_bar[bar.instrument] = bar.end_ns
        strategy = self.strategy(bar.instrument)
        ctx = strategy.ctx
        ctx.now_ns, ctx.price = bar.ts_event, bar.close
        strategy.on_bar(bar)
        if not ctx.intents:
            return []
        return self._signals(strategy, bar.record_id, bar.ts_event, bar.ts_init)

    def on_book(self, top: BookTop) -> list[Signal]:
        """Run the strategy's ``on_book`` on a book top; the signals it asked for."""
        strategy = self.strategy(top.instrument)
        ctx = strategy.ctx
        ctx.now_ns = top.ts_event
        if top.mid is not None:
            ctx.price = top.mid
        strategy.on_book(top)
        if not ctx.intents:
            return []
        return self._signals(strategy, top.record_id, top.ts_event, top.ts_init)

    def on_features(self, fv: FeatureVector, ts_init: int | None = None) -> Signal | None:
        """Run the instrument's strategy; ``None`` for no signal or a stale vector (the
        first signal when it also placed orders: :meth:`decide` has them all)."""
        signals = self.decide(fv, ts_init)
        return signals[0] if signals else None

    def decide(self, fv: FeatureVector, ts_init: int | None = None) -> list[Signal]:
        """Every signal of one feature vector: the one returned, then those asked for."""
        last = self._last_ts.get(fv.instrument)
        if last is not None and fv.ts_event <= last:
            return []
        self._last_ts[fv.instrument] = fv.ts_event
        strategy = self.strategy(fv.instrument)
        ctx = strategy.ctx
        ctx.now_ns, ctx.price = fv.ts_event, fv.close
        signal = strategy.on_features(fv)
        out = [] if signal is None else [signal]
        if ctx.intents:
            out += self._signals(strategy, fv.record_id, fv.ts_event, fv.ts_init)
        if ts_init is not None:
            out = [s.model_copy(update={"ts_init": ts_init}) for s in out]
        return out

    # ------------------------------------------------------------------ orders asked for
    def _signals(
        self, strategy: Strategy[Any], cause_id: str, ts_event: int, ts_init: int
    ) -> list[Signal]:
        ctx = strategy.ctx
        out: list[Signal] = []
        for n, asked in enumerate(ctx.take_intents()):
            intent = self._units(asked, ctx) if self.resolve else asked
            if intent is None:
                continue
            price = intent.limit_price or intent.stop_price or ctx.price
            if price is None:
                raise StrategyOrderError(
                    f"{ctx.instrument}: an order was asked for before any price was seen"
                )
            out.append(
                Signal(
                    instrument=ctx.instrument,
                    ts_event=ts_event,
                    ts_init=ts_init,
                    record_id=derive_id("signal", strategy.strategy_id, cause_id, n),
                    lineage_id=cause_id,
                    strategy=strategy.strategy_id,
                    side=intent.side,
                    strength=1.0,
                    confidence=1.0,
                    reason=intent.reason or f"{intent.sizing} {intent.size}",
                    price=price,
                    sizing=intent.sizing,
                    size=intent.size,
                    limit_price=intent.limit_price,
                    stop_price=intent.stop_price,
                    order_list=intent.order_list,
                    take_profit=intent.take_profit,
                    stop_loss=intent.stop_loss,
                )
            )
        return out

    def _units(self, intent: OrderIntent, ctx: StrategyContext) -> OrderIntent | None:
        """A fraction of equity or a target, in units at the context's price (live)."""
        if intent.stop_price is not None and intent.sizing != "units":
            raise StrategyOrderError(
                f"{ctx.instrument}: stop={intent.stop_price} with sizing={intent.sizing}: "
                "live, a stop order is sized in units (the fill price is not known yet)"
            )
        if intent.sizing == "units":
            return intent
        price = intent.limit_price or ctx.price
        if price is None:
            raise StrategyOrderError(
                f"{ctx.instrument}: cannot size {intent.sizing} without a price"
            )
        step = (
            self.filters[ctx.instrument].step_size
            if ctx.instrument in self.filters
            else DEFAULT_STEP
        )
        size = intent.size
        if intent.sizing in ("equity", "target_equity"):
            size = (abs(size) * ctx.equity / price / step).to_integral_value(ROUND_DOWN) * step
            size = -size if intent.size < 0 else size
        if intent.sizing.startswith("target"):
            size -= ctx.position.quantity
        if not size:
            return None
        side = Side.BUY if size > 0 else Side.SELL
        return replace(intent, side=side, sizing="units", size=abs(size), stop_price=None)

    def snapshot(self, instrument: str) -> dict[str, Any] | None:
        """JSON-able state of one instrument (``None`` if never seen)."""
        strategy = self._strategies.get(instrument)
        if strategy is None:
            return None
        return {
            "strategy": strategy.name,
            "last_ts_event": self._last_ts.get(instrument),
            "last_bar_end_ns": self._last_bar.get(instrument),
            "state": strategy.to_state(),
        }

    def restore(self, instrument: str, snapshot: dict[str, Any]) -> None:
        """Restore one instrument from :meth:`snapshot` output (same strategy required)."""
        if not isinstance(snapshot, dict) or snapshot.get("strategy") != self.strategy_name:
            found = snapshot.get("strategy") if isinstance(snapshot, dict) else snapshot
            raise StrategyStateError(
                f"snapshot for {instrument!r} is for strategy {found!r}, not {self.strategy_name!r}"
            )
        last = snapshot.get("last_ts_event")
        if last is not None and not isinstance(last, int):
            raise StrategyStateError(f"snapshot for {instrument!r} has last_ts_event {last!r}")
        strategy = self._prototype.clone()
        strategy.restore(snapshot.get("state", {}))
        self._attach(instrument, strategy)
        self._strategies[instrument] = strategy
        last_bar = snapshot.get("last_bar_end_ns")
        if isinstance(last_bar, int):
            self._last_bar[instrument] = last_bar
        if last is None:
            self._last_ts.pop(instrument, None)
        else:
            self._last_ts[instrument] = last
