"""The incremental feature engine: every indicator, one bar at a time, exact save/restore.

One :class:`FeatureEngine` per instrument (and bar interval). ``update``/``on_bar`` costs
O(1) per bar; ``to_state()`` is JSON-able and ``FeatureEngine.from_state(state)`` continues
bit-for-bit, so a Faust table can hold the engine state and a restarted worker carries on
exactly where it left off. The batch :class:`~algostream.features.computer.FeatureComputer`
runs this same engine, so batch and live values are identical.

>>> engine = FeatureEngine(FeatureParams(rsi_window=2, bb_window=2, volatility_window=2))
>>> for close in (10.0, 11.0, 10.5):
...     values = engine.update(high=close + 0.5, low=close - 0.5, close=close, volume=1.0)
>>> round(values["rsi"], 6), values["bb_mid"]
(50.0, 10.75)
>>> restored = FeatureEngine.from_state(engine.to_state())
>>> restored.update(11.5, 10.5, 11.0, 1.0) == engine.update(11.5, 10.5, 11.0, 1.0)
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from algostream.config import SignalConfig
from algostream.features.book import BOOK_FEATURE_NAMES, book_features, empty_book_features
from algostream.features.errors import FeatureInputError, FeatureStateError
from algostream.features.indicators import (
    ATR,
    MACD,
    RSI,
    BollingerBands,
    LogReturn,
    RealisedVolatility,
    VwapDistance,
)
from algostream.model.records import Bar, BookTop

#: Features computed from bars, in output order.
BAR_FEATURE_NAMES: tuple[str, ...] = (
    "log_return",
    "volatility",
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_mid",
    "bb_upper",
    "bb_lower",
    "bb_pctb",
    "bb_width",
    "atr",
    "vwap",
    "vwap_dist",
)
#: Every feature a :class:`FeatureEngine` reports (bar features, then book features).
FEATURE_NAMES: tuple[str, ...] = BAR_FEATURE_NAMES + BOOK_FEATURE_NAMES

STATE_VERSION = 1


@dataclass(frozen=True)
class FeatureParams:
    """Indicator parameters; build from settings with :meth:`from_config`."""

    rsi_window: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bb_window: int = 20
    bb_std: float = 2.0
    atr_window: int = 14
    volatility_window: int = 20
    vwap_window: int = 20

    @classmethod
    def from_config(cls, config: SignalConfig) -> FeatureParams:
        """Parameters from ``SignalConfig``; the VWAP window defaults to ``bb_window``."""
        return cls(
            rsi_window=config.rsi_window,
            macd_fast=config.macd_fast,
            macd_slow=config.macd_slow,
            macd_signal=config.macd_signal,
            bb_window=config.bb_window,
            bb_std=config.bb_std,
            atr_window=config.atr_window,
            volatility_window=config.volatility_window,
            vwap_window=config.vwap_window,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureParams:
        """Parse the ``params`` of a saved state; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FeatureStateError(f"unknown feature parameter(s) {unknown} in saved state")
        return cls(**data)


def _check_bar(high: float, low: float, close: float, volume: float) -> None:
    for name, value in (("high", high), ("low", low), ("close", close), ("volume", volume)):
        if not math.isfinite(value):
            raise FeatureInputError(f"{name} must be a finite number, got {value!r}")
    if not close > 0:
        raise FeatureInputError(f"close must be > 0, got {close!r}")
    if volume < 0:
        raise FeatureInputError(f"volume must be >= 0, got {volume!r}")
    if high < low:
        raise FeatureInputError(f"high {high!r} is below low {low!r}")


class FeatureEngine:
    """All features for one instrument, updated one bar (and book top) at a time."""

    def __init__(self, params: FeatureParams | None = None) -> None:
        self.params = params or FeatureParams()
        p = self.params
        self.bars_seen = 0
        self._log_return = LogReturn()
        self._volatility = RealisedVolatility(p.volatility_window)
        self._rsi = RSI(p.rsi_window)
        self._macd = MACD(p.macd_fast, p.macd_slow, p.macd_signal)
        self._bollinger = BollingerBands(p.bb_window, p.bb_std)
        self._atr = ATR(p.atr_window)
        self._vwap = VwapDistance(p.vwap_window)
        self._book = empty_book_features()
        self._top: BookTop | None = None  # the latest top, its features not worked out yet

    @classmethod
    def from_config(cls, config: SignalConfig) -> FeatureEngine:
        """An engine with parameters from ``SignalConfig``."""
        return cls(FeatureParams.from_config(config))

    def update(
        self,
        high: float,
        low: float,
        close: float,
        volume: float,
        quote_volume: float | None = None,
    ) -> dict[str, float | None]:
        """Feed one bar; return every feature (``None`` = still warming up or unknown).

        ``quote_volume`` (sum of price * size) gives the bar's exact VWAP weight; without it
        the typical price times volume is used. Bad input raises
        :class:`~algostream.features.errors.FeatureInputError` before any state changes.
        """
        _check_bar(high, low, close, volume)
        if quote_volume is None:
            price_volume = (high + low + close) / 3.0 * volume
        elif math.isfinite(quote_volume) and quote_volume >= 0:
            price_volume = quote_volume
        else:
            raise FeatureInputError(f"quote_volume must be finite and >= 0, got {quote_volume!r}")
        self.bars_seen += 1
        log_return = self._log_return.update(close)
        line, signal, hist = self._macd.update(close)
        bands = self._bollinger.update(close) or (None, None, None, None, None)
        vwap, vwap_dist = self._vwap.update(close, volume, price_volume)
        values: dict[str, float | None] = {
            "log_return": log_return,
            "volatility": self._volatility.update(log_return),
            "rsi": self._rsi.update(close),
            "macd": line,
            "macd_signal": signal,
            "macd_hist": hist,
            "bb_mid": bands[0],
            "bb_upper": bands[1],
            "bb_lower": bands[2],
            "bb_pctb": bands[3],
            "bb_width": bands[4],
            "atr": self._atr.update(high, low, close),
            "vwap": vwap,
            "vwap_dist": vwap_dist,
        }
        values.update(self._book_values())
        return values

    def on_bar(self, bar: Bar) -> dict[str, float | None]:
        """Feed a model ``Bar`` (Decimal prices converted to float once). A bar with volume
        and a zero quote volume (an OHLCV file has none) is weighted by its typical price."""
        quote = None if not bar.quote_volume and bar.volume else float(bar.quote_volume)
        return self.update(
            float(bar.high),
            float(bar.low),
            float(bar.close),
            float(bar.volume),
            quote,
        )

    def on_book(self, top: BookTop) -> None:
        """Remember the latest book top; its features appear in the next bar's output
        (worked out then: a few bars a second read them, hundreds of tops arrive)."""
        self._top = top

    def _book_values(self) -> dict[str, float | None]:
        if self._top is not None:
            self._book, self._top = book_features(self._top), None
        return self._book

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (parameters included) for :meth:`from_state`."""
        return {
            "version": STATE_VERSION,
            "params": dataclasses.asdict(self.params),
            "bars_seen": self.bars_seen,
            "log_return": self._log_return.to_state(),
            "volatility": self._volatility.to_state(),
            "rsi": self._rsi.to_state(),
            "macd": self._macd.to_state(),
            "bollinger": self._bollinger.to_state(),
            "atr": self._atr.to_state(),
            "vwap": self._vwap.to_state(),
            "book": dict(self._book_values()),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureEngine:
        """Rebuild an engine that continues exactly where ``to_state`` was taken."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            found = state.get("version") if isinstance(state, dict) else state
            raise FeatureStateError(f"feature state version {found!r} != {STATE_VERSION}")
        try:
            engine = cls(FeatureParams.from_dict(dict(state["params"])))
            engine.bars_seen = int(state["bars_seen"])
            engine._log_return = LogReturn.from_state(state["log_return"])
            engine._volatility = RealisedVolatility.from_state(state["volatility"])
            engine._rsi = RSI.from_state(state["rsi"])
            engine._macd = MACD.from_state(state["macd"])
            engine._bollinger = BollingerBands.from_state(state["bollinger"])
            engine._atr = ATR.from_state(state["atr"])
            engine._vwap = VwapDistance.from_state(state["vwap"])
            engine._book = _book_from_state(state["book"])
        except KeyError as exc:
            raise FeatureStateError(f"feature state is missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError, FeatureInputError) as exc:
            raise FeatureStateError(f"feature state is invalid: {exc}") from None
        engine._check_params_match()
        return engine

    def _check_params_match(self) -> None:
        p = self.params
        pairs = (
            ("rsi_window", self._rsi.window),
            ("macd_fast", self._macd.fast),
            ("macd_slow", self._macd.slow),
            ("macd_signal", self._macd.signal),
            ("bb_window", self._bollinger.window),
            ("bb_std", self._bollinger.num_std),
            ("atr_window", self._atr.window),
            ("volatility_window", self._volatility.window),
            ("vwap_window", self._vwap.window),
        )
        for name, found in pairs:
            if getattr(p, name) != found:
                raise FeatureStateError(
                    f"feature state parameter {name}={getattr(p, name)!r} but indicator has "
                    f"{found!r}"
                )


def _book_from_state(book: Any) -> dict[str, float | None]:
    if not isinstance(book, dict) or set(book) != set(BOOK_FEATURE_NAMES):
        raise FeatureStateError(f"feature state book section is invalid: {book!r}")
    return {k: None if book[k] is None else float(book[k]) for k in BOOK_FEATURE_NAMES}


#: Alias: the incremental feature engine.
IncrementalFeatures = FeatureEngine
