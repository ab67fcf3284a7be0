"""``FeatureProcessor``: bars (and book tops) in, ``FeatureVector`` records out.

The pure core of the feature agent. It keeps one :class:`FeatureEngine` per instrument for
the configured bar interval, ignores bars of other intervals, and ignores a bar that does
not advance the instrument's last bar end (a redelivered or replayed bar after a restart),
so at-least-once delivery cannot double-count. ``snapshot(instrument)`` is the JSON-able
state to keep in a Faust table; ``restore(instrument, state)`` puts it back.

>>> from algostream.model.records import Bar
>>> proc = FeatureProcessor(SignalConfig(bar_interval="1s"))
>>> bar = Bar(instrument="SIM:BTCUSDT", ts_event=2_000, ts_init=2_001, record_id="bar-1",
...           lineage_id="t-9", interval="1s", start_ns=1_000, end_ns=2_000, open="10",
...           high="11", low="9", close="10.5", volume="2", quote_volume="21", trades=3)
>>> fv = proc.on_bar(bar)
>>> fv.lineage_id, fv.values["rsi"] is None, proc.on_bar(bar) is None
('bar-1', True, True)
"""

from __future__ import annotations

from typing import Any

from algostream.config import SignalConfig
from algostream.features.engine import FeatureEngine, FeatureParams
from algostream.features.errors import FeatureStateError
from algostream.model.fast import from_fields
from algostream.model.ids import derive_id
from algostream.model.records import Bar, BookTop, FeatureVector

_INF = float("inf")


class FeatureProcessor:
    """Per-instrument incremental features; maps a ``Bar`` to a ``FeatureVector``."""

    def __init__(self, config: SignalConfig | None = None) -> None:
        self.config = config or SignalConfig()
        self.params = FeatureParams.from_config(self.config)
        self.interval = self.config.bar_interval
        self._engines: dict[str, FeatureEngine] = {}
        self._last_end: dict[str, int] = {}

    @property
    def instruments(self) -> tuple[str, ...]:
        """Instruments with an engine, in first-seen order."""
        return tuple(self._engines)

    def engine(self, instrument: str) -> FeatureEngine:
        """The engine for ``instrument`` (created on first use)."""
        engine = self._engines.get(instrument)
        if engine is None:
            engine = self._engines[instrument] = FeatureEngine(self.params)
        return engine

    def on_book(self, top: BookTop) -> None:
        """Remember the latest book top for its instrument."""
        self.engine(top.instrument).on_book(top)

    def on_bar(self, bar: Bar, ts_init: int | None = None) -> FeatureVector | None:
        """Update the instrument's engine; ``None`` for another interval or a stale bar.

        ``ts_init`` is the time the record is created (ns); by default the bar's own
        ``ts_init`` so that a replay produces identical records.
        """
        if bar.interval != self.interval:
            return None
        last = self._last_end.get(bar.instrument)
        if last is not None and bar.end_ns <= last:
            return None
        values = self.engine(bar.instrument).on_bar(bar)
        self._last_end[bar.instrument] = bar.end_ns
        fields: dict[str, Any] = {
            "instrument": bar.instrument,
            "ts_event": bar.ts_event,
            "ts_init": bar.ts_init if ts_init is None else ts_init,
            "record_id": derive_id("features", bar.record_id),
            "lineage_id": bar.record_id,
            "interval": bar.interval,
            "close": bar.close,
            "values": values,
        }
        # Built without the model's validation (12 µs a bar) when it would change
        # nothing: the bar's fields are validated, the values floats or None (NaN is
        # stored as None, as the model's validator stores it); anything else (an
        # infinite value, a value not a float, a negative ts_init) goes through the
        # model, which converts it or refuses it naming the field.
        kept: dict[str, float | None] = {}
        for name, v in values.items():
            if v is not None:
                if type(v) is not float or v in (_INF, -_INF):
                    return FeatureVector(**fields)
                if v != v:  # NaN
                    v = None
            kept[name] = v
        if fields["ts_init"] < 0:
            return FeatureVector(**fields)
        fields["values"] = kept
        return from_fields(FeatureVector, fields)

    def snapshot(self, instrument: str) -> dict[str, Any] | None:
        """JSON-able state of one instrument (``None`` if never seen)."""
        engine = self._engines.get(instrument)
        if engine is None:
            return None
        return {"last_end_ns": self._last_end.get(instrument), "engine": engine.to_state()}

    def restore(self, instrument: str, state: dict[str, Any]) -> None:
        """Restore one instrument from :meth:`snapshot` output."""
        if not isinstance(state, dict) or "engine" not in state:
            raise FeatureStateError(f"snapshot for {instrument!r} has no 'engine' section")
        engine = FeatureEngine.from_state(state["engine"])
        if engine.params != self.params:
            raise FeatureStateError(
                f"snapshot for {instrument!r} has parameters {engine.params} but the "
                f"configuration says {self.params}; drop the saved state to rebuild"
            )
        last = state.get("last_end_ns")
        if last is not None and not isinstance(last, int):
            raise FeatureStateError(f"snapshot for {instrument!r} has last_end_ns {last!r}")
        self._engines[instrument] = engine
        if last is None:
            self._last_end.pop(instrument, None)
        else:
            self._last_end[instrument] = last
