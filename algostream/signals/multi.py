"""Several strategies in one deployment: ``signal.strategies``, each its own processor.

A :class:`StrategySet` holds one :class:`~algostream.signals.processor.SignalProcessor`
and one :class:`~algostream.signals.sizing.OrderSizer` per
:class:`~algostream.config.StrategySpec`, each with the spec's parameters, bar interval
and id (the id is on every signal and order it makes). A record goes to the strategies
that trade its instrument (``instruments``; empty: every one), in the configured order,
so the outputs are deterministic. The old single ``signal.strategy`` is a set of one
whose id is the strategy's name: its records are those it always made.

>>> from algostream.config import SignalConfig, StrategySpec
>>> cfg = SignalConfig(strategies=(StrategySpec(id="fast", strategy="sma_crossover"),
...                                StrategySpec(id="rsi", strategy="rsi_mean_reversion",
...                                             instruments=("BTCUSDT",))))
>>> s = StrategySet(cfg)
>>> [p.strategy_id for p in s.members]
['fast', 'rsi']
>>> [m.spec.id for m in s.trading("BINANCE:ETHUSDT")]
['fast']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from algostream.config import RiskConfig, SignalConfig, StrategySpec
from algostream.model.records import Bar, BookTop, FeatureVector, OrderRequest, Signal
from algostream.signals.context import FlatPortfolio, Portfolio
from algostream.signals.errors import StrategyStateError
from algostream.signals.processor import SignalProcessor
from algostream.signals.registry import build_strategy
from algostream.signals.sizing import OrderSizer

if TYPE_CHECKING:
    from algostream.risk.limits import InstrumentFilters

#: a strategy id -> the portfolio its context reads (its own position, or the account's)
PortfolioFor = Callable[[StrategySpec], Portfolio]


@dataclass
class Member:
    """One strategy of the set: its spec, processor and sizer."""

    spec: StrategySpec
    proc: SignalProcessor
    sizer: OrderSizer
    symbols: frozenset[str] = field(default_factory=frozenset)

    @property
    def strategy_id(self) -> str:
        return self.spec.id

    def trades(self, instrument: str) -> bool:
        if not self.symbols:
            return True
        return instrument.upper() in self.symbols or instrument.partition(":")[2] in self.symbols


class StrategySet:
    """Every strategy of ``signal.specs()`` (or only ``shadow``/live ones: ``only``)."""

    def __init__(
        self,
        config: SignalConfig | None = None,
        risk: RiskConfig | None = None,
        *,
        portfolio: PortfolioFor | None = None,
        filters: dict[str, InstrumentFilters] | None = None,
        resolve: bool = True,
        only: Callable[[StrategySpec], bool] | None = None,
    ) -> None:
        self.config = config or SignalConfig()
        risk = risk or RiskConfig()
        self.members: list[Member] = []
        for spec in self.config.specs():
            if only is not None and not only(spec):
                continue
            cfg = self.config.for_strategy(spec)
            proto = build_strategy(cfg.strategy, cfg)
            if proto.strategy_id != spec.id:
                proto.config = proto.config.model_copy(update={"strategy_id": spec.id})
            pf = portfolio(spec) if portfolio is not None else FlatPortfolio(risk.starting_equity)
            proc = SignalProcessor(cfg, proto, portfolio=pf, filters=filters, resolve=resolve)
            symbols = frozenset(i.upper() for i in spec.instruments)
            self.members.append(Member(spec, proc, OrderSizer(cfg, risk), symbols))
        self._by_id = {m.spec.id: m for m in self.members}
        self.uses_features = any(m.proc.uses_features for m in self.members)
        self.uses_bars = any(m.proc.uses_bars for m in self.members)
        self.uses_books = any(m.proc.uses_books for m in self.members)
        #: the bar intervals the strategies decide on
        self.intervals = tuple(dict.fromkeys(m.proc.config.bar_interval for m in self.members))

    def member(self, strategy_id: str) -> Member | None:
        return self._by_id.get(strategy_id)

    def trading(self, instrument: str) -> list[Member]:
        """The strategies that trade ``instrument``, in configured order."""
        return [m for m in self.members if m.trades(instrument)]

    def on_bar(self, bar: Bar) -> list[Signal]:
        out: list[Signal] = []
        for m in self.trading(bar.instrument):
            if m.proc.uses_bars:
                out += m.proc.on_bar(bar)
        return out

    def on_book(self, top: BookTop) -> list[Signal]:
        out: list[Signal] = []
        for m in self.trading(top.instrument):
            if m.proc.uses_books:
                out += m.proc.on_book(top)
        return out

    def decide(self, fv: FeatureVector, ts_init: int | None = None) -> list[Signal]:
        """Every signal of one feature vector, from each strategy on its bar interval."""
        out: list[Signal] = []
        for m in self.trading(fv.instrument):
            if fv.interval == m.proc.config.bar_interval:
                out += m.proc.decide(fv, ts_init)
        return out

    def to_order(self, signal: Signal) -> OrderRequest | None:
        """The proposal of ``signal``, sized by its strategy (None: not one of this set)."""
        m = self._by_id.get(signal.strategy)
        return None if m is None else m.sizer.to_order(signal)

    def snapshot(self, instrument: str) -> dict[str, Any] | None:
        """Every strategy's state of ``instrument`` (a single strategy: its own format)."""
        snaps = {m.spec.id: m.proc.snapshot(instrument) for m in self.members}
        snaps = {k: v for k, v in snaps.items() if v is not None}
        if not snaps:
            return None
        if len(self.members) == 1:
            return next(iter(snaps.values()))
        return {"strategies": snaps}

    def restore(self, instrument: str, saved: dict[str, Any]) -> None:
        """Put back :meth:`snapshot` output; a strategy not in it starts fresh."""
        if not isinstance(saved, dict):
            raise StrategyStateError(f"snapshot for {instrument!r} is {saved!r}")
        snaps = saved.get("strategies")
        if snaps is None:  # one strategy's own format (the single strategy, or before)
            snaps = {self.members[0].spec.id: saved} if self.members else {}
        for sid, snap in snaps.items():
            m = self._by_id.get(sid)
            if m is not None:
                m.proc.restore(instrument, snap)
