"""Incremental technical indicators: O(1) per bar, exact save/restore, ``ta``-compatible.

Each indicator takes one bar at a time (``update``) and returns its value, or ``None``
while warming up. ``to_state()`` returns a JSON-able dict (parameters included) and
``from_state(dict)`` rebuilds an indicator that continues bit-for-bit as if never stopped:
floats survive JSON exactly (shortest repr round-trips) and rolling sums are exact
(:mod:`algostream.features.rolling`), so no drift accumulates and none is lost on restore.

Conventions (chosen to agree with the ``ta`` package, v0.11, to ~1e-15 relative; TA-Lib
differs where noted, mostly in the first few hundred bars until the seeds decay):

* **EWM** is pandas' ``ewm(adjust=False)``, replicated operation for operation:
  ``alpha = 1 / (1 + com)``, ``y = ((1 - alpha) * y + alpha * x) / ((1 - alpha) + alpha)``,
  seeded with the first observation; ``min_periods`` counts observations.
* **RSI** (``ta.momentum.RSIIndicator``): Wilder smoothing as ``ewm(alpha=1/n)``; the first
  bar's change counts as a zero gain and a zero loss, so the first value is at bar index
  ``n - 1``; ``RSI = 100`` when the average loss is 0. TA-Lib instead seeds the averages
  with the simple mean of the first ``n`` changes and first outputs at index ``n``.
* **MACD** (``ta.trend.MACD``): EMAs use ``span`` (``alpha = 2 / (span + 1)``), seeded with
  the first close; the line is defined from index ``max(fast, slow) - 1``, the signal EMA is
  seeded with the first defined line value and defined ``signal - 1`` bars later;
  histogram = line - signal. TA-Lib seeds each EMA with an SMA and aligns both EMAs to the
  slow one's start, so early values differ.
* **Bollinger** (``ta.volatility.BollingerBands``): SMA and *population* std (``ddof=0``,
  as TA-Lib; pandas' default ``std()`` is ``ddof=1``). ``%b = (close - lower) / (upper -
  lower)``, undefined (``None``) when the bands coincide; ``width = (upper - lower) / middle
  * 100`` (percent, as ``ta``'s ``bollinger_wband``; TA-Lib has no width output).
* **ATR** (``ta.volatility.AverageTrueRange``): the first bar's true range is ``high - low``
  (no previous close); the seed is the mean of the first ``n`` true ranges (index ``n - 1``),
  then ``atr = (atr * (n - 1) + tr) / n``. ``ta`` reports 0.0 during warm-up; we report
  ``None``. TA-Lib skips bar 0 and seeds with the mean of true ranges 1..n (index ``n``).
* **Log return** ``ln(close / previous close)``; **realised volatility** is the *sample* std
  (``ddof=1``, as pandas ``rolling(n).std()``) of the last ``n`` log returns, per bar, not
  annualised.
* **VWAP distance**: rolling VWAP over the last ``n`` bars, ``sum(price * volume) /
  sum(volume)`` where each bar's ``price * volume`` is its quote volume when known, else
  typical price ``(high + low + close) / 3`` times volume; distance is ``(close - vwap) /
  vwap``. ``None`` while the window is not full or holds no volume.

>>> rsi = RSI(3)
>>> [rsi.update(c) for c in (10.0, 11.0, 12.0, 11.0)]
[None, None, 100.0, 52.63157894736843]
"""

from __future__ import annotations

import math
from typing import Any

from algostream.features.errors import FeatureInputError, FeatureStateError
from algostream.features.rolling import RollingMoments, RollingSum

State = dict[str, Any]


def _check_window(name: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise FeatureInputError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _get(state: State, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(state, dict) or key not in state:
        raise FeatureStateError(f"state is missing key {key!r}")
    value = state[key]
    if value is not None and not isinstance(value, kind):
        raise FeatureStateError(f"state key {key!r} has a bad value {value!r}")
    return value


def _opt_float(state: State, key: str) -> float | None:
    value = _get(state, key, (int, float))
    return None if value is None else float(value)


class Ewm:
    """pandas ``ewm(com=..., adjust=False).mean()``, one observation at a time."""

    __slots__ = ("_old", "alpha", "com", "nobs", "value")

    def __init__(self, com: float) -> None:
        if not com >= 0.0:
            raise FeatureInputError(f"com must be >= 0, got {com!r}")
        self.com = float(com)
        self.alpha = 1.0 / (1.0 + self.com)
        self._old = 1.0 - self.alpha
        self.value: float | None = None
        self.nobs = 0

    @classmethod
    def from_span(cls, span: int) -> Ewm:
        """As ``ewm(span=span)``: ``com = (span - 1) / 2``."""
        return cls((_check_window("span", span) - 1) / 2)

    @classmethod
    def from_alpha(cls, alpha: float) -> Ewm:
        """As ``ewm(alpha=alpha)``: ``com = (1 - alpha) / alpha``."""
        if not 0.0 < alpha <= 1.0:
            raise FeatureInputError(f"alpha must be in (0, 1], got {alpha!r}")
        return cls((1 - alpha) / alpha)

    def push(self, x: float) -> float:
        """Add an observation and return the new average."""
        value = self.value
        if value is None:
            value = x
        elif value != x:
            value = (self._old * value + self.alpha * x) / (self._old + self.alpha)
        self.value = value
        self.nobs += 1
        return value

    def to_state(self) -> State:
        """JSON-able state, parameters included."""
        return {"com": self.com, "value": self.value, "nobs": self.nobs}

    @classmethod
    def from_state(cls, state: State) -> Ewm:
        """Rebuild from :meth:`to_state` output."""
        ewm = cls(float(_get(state, "com", (int, float))))
        ewm.value = _opt_float(state, "value")
        ewm.nobs = int(_get(state, "nobs", int))
        return ewm


class RSI:
    """Relative Strength Index, as ``ta.momentum.RSIIndicator(close, window)``."""

    __slots__ = ("_down", "_prev", "_up", "window")

    def __init__(self, window: int = 14) -> None:
        self.window = _check_window("rsi_window", window)
        self._up = Ewm.from_alpha(1 / window)
        self._down = Ewm.from_alpha(1 / window)
        self._prev: float | None = None

    def update(self, close: float) -> float | None:
        """Feed a close; return RSI in [0, 100] or ``None`` while warming up."""
        gain = loss = 0.0
        if self._prev is not None:
            diff = close - self._prev
            gain = diff if diff > 0 else 0.0
            loss = -diff if diff < 0 else 0.0
        self._prev = close
        up = self._up.push(gain)
        down = self._down.push(loss)
        if self._up.nobs < self.window:
            return None
        if down == 0:
            return 100.0
        return 100 - (100 / (1 + up / down))

    def to_state(self) -> State:
        """JSON-able state, parameters included."""
        return {
            "window": self.window,
            "prev": self._prev,
            "up": self._up.to_state(),
            "down": self._down.to_state(),
        }

    @classmethod
    def from_state(cls, state: State) -> RSI:
        """Rebuild from :meth:`to_state` output."""
        rsi = cls(_get(state, "window", int))
        rsi._prev = _opt_float(state, "prev")
        rsi._up = Ewm.from_state(_get(state, "up", dict))
        rsi._down = Ewm.from_state(_get(state, "down", dict))
        return rsi


class MACD:
    """MACD line, signal and histogram, as ``ta.trend.MACD``."""

    __slots__ = ("_fast", "_signal", "_slow", "fast", "signal", "slow")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast = _check_window("macd_fast", fast)
        self.slow = _check_window("macd_slow", slow)
        self.signal = _check_window("macd_signal", signal)
        self._fast = Ewm.from_span(fast)
        self._slow = Ewm.from_span(slow)
        self._signal = Ewm.from_span(signal)

    def update(self, close: float) -> tuple[float | None, float | None, float | None]:
        """Feed a close; return ``(line, signal, histogram)``, each ``None`` until defined."""
        fast = self._fast.push(close)
        slow = self._slow.push(close)
        if self._fast.nobs < max(self.fast, self.slow):
            return None, None, None
        line = fast - slow
        signal = self._signal.push(line)
        if self._signal.nobs < self.signal:
            return line, None, None
        return line, signal, line - signal

    def to_state(self) -> State:
        """JSON-able state, parameters included."""
        return {
            "fast": self.fast,
            "slow": self.slow,
            "signal": self.signal,
            "ema_fast": self._fast.to_state(),
            "ema_slow": self._slow.to_state(),
            "ema_signal": self._signal.to_state(),
        }

    @classmethod
    def from_state(cls, state: State) -> MACD:
        """Rebuild from :meth:`to_state` output."""
        macd = cls(_get(state, "fast", int), _get(state, "slow", int), _get(state, "signal", int))
        macd._fast = Ewm.from_state(_get(state, "ema_fast", dict))
        macd._slow = Ewm.from_state(_get(state, "ema_slow", dict))
        macd._signal = Ewm.from_state(_get(state, "ema_signal", dict))
        return macd


BollingerValues = tuple[float, float, float, float | None, float]


class BollingerBands:
    """Bollinger middle, upper, lower, %b and width, as ``ta.volatility.BollingerBands``."""

    __slots__ = ("_window", "num_std", "window")

    def __init__(self, window: int = 20, num_std: float = 2.0) -> None:
        self.window = _check_window("bb_window", window)
        if not (isinstance(num_std, (int, float)) and math.isfinite(num_std) and num_std > 0):
            raise FeatureInputError(f"bb_std must be a finite number > 0, got {num_std!r}")
        self.num_std = float(num_std)
        self._window = RollingMoments(window)

    def update(self, close: float) -> BollingerValues | None:
        """Feed a close; return ``(middle, upper, lower, pctb, width)`` once the window is full."""
        self._window.push(close)
        if not self._window.full:
            return None
        middle = self._window.mean()
        std = self._window.std(ddof=0)
        upper = middle + self.num_std * std
        lower = middle - self.num_std * std
        pctb = (close - lower) / (upper - lower) if upper != lower else None
        width = ((upper - lower) / middle) * 100
        return middle, upper, lower, pctb, width

    def to_state(self) -> State:
        """JSON-able state, parameters included."""
        return {"window": self.window, "num_std": self.num_std, "values": self._window.values()}

    @classmethod
    def from_state(cls, state: State) -> BollingerBands:
        """Rebuild from :meth:`to_state` output."""
        bands = cls(_get(state, "window", int), float(_get(state, "num_std", (int, float))))
        bands._window = RollingMoments.from_values(bands.window, _get(state, "values", list))
        return bands


class ATR:
    """Average True Range, as ``ta.volatility.AverageTrueRange`` (``None`` in warm-up)."""

    __slots__ = ("_atr", "_prev_close", "_seed", "window")

    def __init__(self, window: int = 14) -> None:
        self.window = _check_window("atr_window", window)
        self._prev_close: float | None = None
        self._seed: list[float] = []
        self._atr: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        """Feed a bar; return the ATR or ``None`` before ``window`` bars have been seen."""
        tr = high - low
        if self._prev_close is not None:
            tr = max(tr, abs(high - self._prev_close), abs(low - self._prev_close))
        self._prev_close = close
        if self._atr is not None:
            self._atr = (self._atr * (self.window - 1) + tr) / float(self.window)
        else:
            self._seed.append(tr)
            if len(self._seed) == self.window:
                self._atr = math.fsum(self._seed) / self.window
                self._seed = []
        return self._atr

    def to_state(self) -> State:
        """JSON-able state, parameters included."""
        return {
            "window": self.window,
            "prev_close": self._prev_close,
            "seed": list(self._seed),
            "atr": self._atr,
        }

    @classmethod
    def from_state(cls, state: State) -> ATR:
        """Rebuild from :meth:`to_state` output."""
        atr = cls(_get(state, "window", int))
        atr._prev_close = _opt_float(state, "prev_close")
        atr._seed = [float(v) for v in _get(state, "seed", list)]
        atr._atr = _opt_float(state, "atr")
        if len(atr._seed) >= atr.window:
            raise FeatureStateError(f"ATR seed has {len(atr._seed)} values >= {atr.window}")
        return atr


class LogReturn:
    """``ln(close / previous close)``; ``None`` for the first bar."""

    __slots__ = ("_prev",)

    def __init__(self) -> None:
        self._prev: float | None = None

    def update(self, close: float) -> float | None:
        """Feed a close (> 0); return the log return since the previous close."""
        if not close > 0:
            raise FeatureInputError(f"close must be > 0 for a log return, got {close!r}")
        prev, self._prev = self._prev, close
        return None if prev is None else math.log(close / prev)

    def to_state(self) -> State:
        """JSON-able state."""
        return {"prev": self._prev}

    @classmethod
    def from_state(cls, state: State) -> LogReturn:
        """Rebuild from :meth:`to_state` output."""
        log_return = cls()
        log_return._prev = _opt_float(state, "prev")
        return log_return


class RealisedVolatility:
    """Sample std (``ddof=1``) of the last ``window`` log returns, per bar."""

    __slots__ = ("_window", "window")

    def __init__(self, window: int = 20) -> None:
        self.window = _check_window("volatility_window", window, minimum=2)
        self._window = RollingMoments(window)

    def update(self, log_return: float | None) -> float | None:
        """Feed a return (``None`` for the first bar is skipped); std once the window is full."""
        if log_return is None:
            return None
        self._window.push(log_return)
        return self._window.std(ddof=1) if self._window.full else None

    def to_state(self) -> State:
        """JSON-able state, parameters included."""
        return {"window": self.window, "values": self._window.values()}

    @classmethod
    def from_state(cls, state: State) -> RealisedVolatility:
        """Rebuild from :meth:`to_state` output."""
        vol = cls(_get(state, "window", int))
        vol._window = RollingMoments.from_values(vol.window, _get(state, "values", list))
        return vol


class VwapDistance:
    """Rolling VWAP over ``window`` bars and the close's relative distance from it."""

    __slots__ = ("_pv", "_volume", "window")

    def __init__(self, window: int = 20) -> None:
        self.window = _check_window("vwap_window", window)
        self._pv = RollingSum(window)
        self._volume = RollingSum(window)

    def update(
        self, close: float, volume: float, price_volume: float
    ) -> tuple[float | None, float | None]:
        """Feed a bar's close, volume and ``price * volume``; return ``(vwap, distance)``."""
        if not volume >= 0:
            raise FeatureInputError(f"volume must be >= 0, got {volume!r}")
        self._pv.push(price_volume)
        self._volume.push(volume)
        if not self._volume.full or self._volume.total() <= 0:
            return None, None
        vwap = self._pv.ratio_to(self._volume)
        return vwap, (close - vwap) / vwap

    def to_state(self) -> State:
        """JSON-able state, parameters included."""
        return {"window": self.window, "pv": self._pv.values(), "volume": self._volume.values()}

    @classmethod
    def from_state(cls, state: State) -> VwapDistance:
        """Rebuild from :meth:`to_state` output."""
        vwap = cls(_get(state, "window", int))
        vwap._pv = RollingSum.from_values(vwap.window, _get(state, "pv", list))
        vwap._volume = RollingSum.from_values(vwap.window, _get(state, "volume", list))
        if len(vwap._pv.values()) != len(vwap._volume.values()):
            raise FeatureStateError("VWAP state has different pv and volume window lengths")
        return vwap
