"""``SignalProcessor``: feature vectors in, signals out, one strategy instance per instrument.

The pure core of the signal agent. The strategy named by ``SignalConfig.strategy`` is built
once (a model is loaded once) and cloned per instrument. A feature vector that does not
advance its instrument's last ``ts_event`` (redelivery after a restart) is ignored, so
at-least-once delivery cannot emit twice. ``snapshot``/``restore`` carry per-instrument
strategy memory through a Faust table.

>>> from algostream.config import SignalConfig
>>> SignalProcessor(SignalConfig(strategy="macd_crossover")).strategy_name
'macd_crossover'
"""

from __future__ import annotations

from typing import Any

from algostream.config import SignalConfig
from algostream.model.records import Bar, BookTop, FeatureVector, Signal
from algostream.signals.base import Strategy
from algostream.signals.errors import StrategyStateError
from algostream.signals.registry import build_strategy


class SignalProcessor:
    """Per-instrument strategy state; maps a ``FeatureVector`` to an optional ``Signal``."""

    def __init__(self, config: SignalConfig | None = None, strategy: Strategy[Any] | None = None):
        self.config = config or SignalConfig()
        self._prototype = strategy or build_strategy(self.config.strategy, self.config)
        self._strategies: dict[str, Strategy[Any]] = {}
        self._last_ts: dict[str, int] = {}

    @property
    def strategy_name(self) -> str:
        """The registry name of the strategy in use."""
        return self._prototype.name

    def strategy(self, instrument: str) -> Strategy[Any]:
        """The strategy instance of ``instrument`` (cloned on first use)."""
        strategy = self._strategies.get(instrument)
        if strategy is None:
            strategy = self._strategies[instrument] = self._prototype.clone()
        return strategy

    def on_bar(self, bar: Bar) -> None:
        """Forward a bar to its instrument's strategy."""
        self.strategy(bar.instrument).on_bar(bar)

    def on_book(self, top: BookTop) -> None:
        """Forward a book top to its instrument's strategy."""
        self.strategy(top.instrument).on_book(top)

    def on_features(self, fv: FeatureVector, ts_init: int | None = None) -> Signal | None:
        """Run the instrument's strategy; ``None`` for no signal or a stale vector."""
        last = self._last_ts.get(fv.instrument)
        if last is not None and fv.ts_event <= last:
            return None
        self._last_ts[fv.instrument] = fv.ts_event
        signal = self.strategy(fv.instrument).on_features(fv)
        if signal is not None and ts_init is not None:
            signal = signal.model_copy(update={"ts_init": ts_init})
        return signal

    def snapshot(self, instrument: str) -> dict[str, Any] | None:
        """JSON-able state of one instrument (``None`` if never seen)."""
        strategy = self._strategies.get(instrument)
        if strategy is None:
            return None
        return {
            "strategy": strategy.name,
            "last_ts_event": self._last_ts.get(instrument),
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
        self._strategies[instrument] = strategy
        if last is None:
            self._last_ts.pop(instrument, None)
        else:
            self._last_ts[instrument] = last
