"""Drift-free rolling windows: exact running sums over float64 values.

Every finite float64 is an integer multiple of 2**-1074, so scaling by a power of two turns
it into a Python ``int`` with no rounding. Running sums of those integers (and of their
squares) are exact however many values are added and removed, so a window that has slid
over millions of bars has exactly the sums of its current contents: no Kahan
compensation, no periodic recompute, no drift. Results are then rounded once, correctly
(``int / int`` is correctly rounded in Python), so the mean and variance are the float64
nearest the true value.

The scale is the smallest power of two that makes every value seen an integer (a price of
about 100 needs 2**46, a log return of 1e-3 about 2**62): the sums stay a few machine
words, where the fixed 2**1074 every float fits made ~1,100-bit numbers and ~2,200-bit
squares. A value needing a finer scale shifts the sums up once (exact); the results are
the same rationals, so the same floats, whatever the scale. Each update is O(1). The
state saved is only the window contents; sums are rebuilt on restore.

>>> w = RollingMoments(3)
>>> for x in (1.0, 2.0, 4.0, 8.0):
...     w.push(x)
>>> w.values(), w.mean(), w.variance(ddof=0)
([2.0, 4.0, 8.0], 4.666666666666667, 6.222222222222222)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from algostream.features.errors import FeatureInputError, FeatureStateError


def _require_finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise FeatureInputError(f"{name} must be a finite number, got {value!r}")
    return value


class RollingSum:
    """Exact sum of the last ``window`` values."""

    __slots__ = ("_scale", "_sum", "_values", "window")

    def __init__(self, window: int, values: Iterable[float] = ()) -> None:
        if window < 1:
            raise FeatureInputError(f"window must be >= 1, got {window!r}")
        self.window = window
        self._values: deque[float] = deque()
        #: the sum is of the values times ``2**_scale`` (each of them an integer then)
        self._scale = 0
        self._sum = 0
        for value in values:
            self.push(value)

    def push(self, value: float) -> None:
        """Add ``value``; drop the oldest value once the window is full."""
        numerator, denominator = _require_finite("value", value).as_integer_ratio()
        bits = denominator.bit_length() - 1  # the value is numerator / 2**bits
        if bits > self._scale:
            self._sum <<= bits - self._scale
            self._scale = bits
        values = self._values
        values.append(value)
        self._sum += numerator << (self._scale - bits)
        if len(values) > self.window:
            numerator, denominator = values.popleft().as_integer_ratio()
            self._sum -= numerator << (self._scale + 1 - denominator.bit_length())

    @property
    def full(self) -> bool:
        """True once the window holds ``window`` values."""
        return len(self._values) == self.window

    def total(self) -> float:
        """The exact sum, rounded once to float64."""
        return self._sum / (1 << self._scale)

    def ratio_to(self, other: RollingSum) -> float:
        """``self.total() / other.total()`` computed exactly, rounded once."""
        return (self._sum << other._scale) / (other._sum << self._scale)

    def values(self) -> list[float]:
        """The window contents, oldest first."""
        return list(self._values)

    @classmethod
    def from_values(cls, window: int, values: list[float]) -> RollingSum:
        """Rebuild from saved contents (see :meth:`values`)."""
        if len(values) > window:
            raise FeatureStateError(f"window state has {len(values)} values > window {window}")
        return cls(window, (float(v) for v in values))


class RollingMoments:
    """Exact mean and variance of the last ``window`` values."""

    __slots__ = ("_scale", "_sum", "_sum_sq", "_values", "window")

    def __init__(self, window: int, values: Iterable[float] = ()) -> None:
        if window < 1:
            raise FeatureInputError(f"window must be >= 1, got {window!r}")
        self.window = window
        self._values: deque[float] = deque()
        #: the sums are of the values times ``2**_scale`` (and of their squares)
        self._scale = 0
        self._sum = 0
        self._sum_sq = 0
        for value in values:
            self.push(value)

    def push(self, value: float) -> None:
        """Add ``value``; drop the oldest value once the window is full."""
        numerator, denominator = _require_finite("value", value).as_integer_ratio()
        bits = denominator.bit_length() - 1  # the value is numerator / 2**bits
        scale = self._scale
        if bits > scale:
            self._sum <<= bits - scale
            self._sum_sq <<= 2 * (bits - scale)
            self._scale = scale = bits
        fixed = numerator << (scale - bits)
        values = self._values
        values.append(value)
        self._sum += fixed
        self._sum_sq += fixed * fixed
        if len(values) > self.window:
            numerator, denominator = values.popleft().as_integer_ratio()
            old = numerator << (scale + 1 - denominator.bit_length())
            self._sum -= old
            self._sum_sq -= old * old

    @property
    def full(self) -> bool:
        """True once the window holds ``window`` values."""
        return len(self._values) == self.window

    def mean(self) -> float:
        """Mean of the window, correctly rounded."""
        return self._sum / (len(self._values) << self._scale)

    def variance(self, ddof: int = 0) -> float:
        """Variance (``ddof=0`` population, ``1`` sample), correctly rounded, never < 0."""
        n = len(self._values)
        if n - ddof <= 0:
            raise FeatureInputError(f"variance needs more than ddof={ddof} values, have {n}")
        numerator = n * self._sum_sq - self._sum * self._sum
        return numerator / ((n * (n - ddof)) << (2 * self._scale))

    def std(self, ddof: int = 0) -> float:
        """Standard deviation (square root of :meth:`variance`)."""
        return math.sqrt(self.variance(ddof))

    def values(self) -> list[float]:
        """The window contents, oldest first."""
        return list(self._values)

    @classmethod
    def from_values(cls, window: int, values: list[float]) -> RollingMoments:
        """Rebuild from saved contents (see :meth:`values`)."""
        if len(values) > window:
            raise FeatureStateError(f"window state has {len(values)} values > window {window}")
        return cls(window, (float(v) for v in values))
