"""The strategy interface: a frozen config and small hooks.

A strategy sees bars (``on_bar``), book tops (``on_book``) and, once per bar, the bar's
:class:`~algostream.model.records.FeatureVector` (``on_features``, which may return a
:class:`~algostream.model.records.Signal`). In every hook ``self.ctx`` is the
instrument's :class:`~algostream.signals.context.StrategyContext`: position, cash,
equity, open orders, filters, clock, and ``buy``/``sell``/``target``/``close`` to place
orders (units, a fraction of equity or a target position; market, limit or stop). One
instance serves one instrument (the
:class:`~algostream.signals.processor.SignalProcessor` clones a prototype per
instrument), so instance attributes are per-instrument memory; ``to_state``/``restore``
let that memory survive a restart. Start from :mod:`algostream.signals.template`.

>>> class AlwaysBuy(Strategy[StrategyConfig]):
...     name = "always_buy"
...     def on_features(self, fv: FeatureVector) -> Signal | None:
...         return self.signal(fv, Side.BUY, "because", strength=1.0, confidence=0.1)
>>> AlwaysBuy(StrategyConfig()).strategy_id
'always_buy'
"""

from __future__ import annotations

import math
from abc import ABC
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from algostream.model.enums import Side
from algostream.model.ids import StrategyId, derive_id
from algostream.model.records import Bar, BookTop, FeatureVector, Signal
from algostream.signals.context import FlatPortfolio, StrategyContext


class StrategyConfig(BaseModel):
    """Base of every strategy config: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy_id: StrategyId | None = Field(
        default=None, description="id on emitted signals and orders; default: strategy name"
    )


C = TypeVar("C", bound=StrategyConfig)


def feature(fv: FeatureVector, name: str) -> float | None:
    """A finite feature value from ``fv``, or ``None`` if missing, null or not finite."""
    value = fv.values.get(name)
    return value if value is not None and math.isfinite(value) else None


class Strategy(ABC, Generic[C]):
    """Base class: override ``on_features`` (and the other hooks if needed)."""

    #: registry name, also the default ``strategy_id``
    name: ClassVar[str] = "strategy"

    def __init__(self, config: C) -> None:
        self.config = config
        #: set by the signal processor to this instrument's context before every hook
        self.ctx = StrategyContext("", FlatPortfolio(Decimal(0)))

    @property
    def strategy_id(self) -> str:
        """The id put on signals: ``config.strategy_id`` or the strategy name."""
        return self.config.strategy_id or self.name

    def on_bar(self, bar: Bar) -> None:
        """Called for every closed bar of this instrument (before its features)."""

    def on_book(self, top: BookTop) -> None:
        """Called for every book top of this instrument."""

    def on_features(self, fv: FeatureVector) -> Signal | None:
        """Decide on one bar's features; return a signal or ``None`` (default: none)."""
        return None

    def to_state(self) -> dict[str, Any]:
        """JSON-able per-instrument memory (default: none)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`to_state` returned (default: nothing to restore)."""

    def clone(self) -> Strategy[C]:
        """A fresh instance with the same config (and shared read-only resources)."""
        return type(self)(self.config)

    def signal(
        self,
        fv: FeatureVector,
        side: Side,
        reason: str,
        *,
        strength: float,
        confidence: float,
    ) -> Signal:
        """Build a signal caused by ``fv`` with a deterministic ``record_id``."""
        return Signal(
            instrument=fv.instrument,
            ts_event=fv.ts_event,
            ts_init=fv.ts_init,
            record_id=derive_id("signal", self.strategy_id, fv.record_id),
            lineage_id=fv.record_id,
            strategy=self.strategy_id,
            side=side,
            strength=min(1.0, max(0.0, strength)),
            confidence=min(1.0, max(0.0, confidence)),
            reason=reason,
            price=fv.close,
        )
