"""Rolling sums are exact: no drift after millions of updates, correctly rounded results."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algostream.features.errors import FeatureInputError
from algostream.features.rolling import RollingMoments, RollingSum

every_finite = st.floats(allow_nan=False, allow_infinity=False)  # subnormals and 1e308 too


@settings(max_examples=300)
@given(st.lists(every_finite, min_size=1, max_size=40), st.integers(min_value=1, max_value=8))
def test_any_magnitudes_give_the_exact_rationals_rounded_once(
    values: list[float], window: int
) -> None:
    """The sums' scale follows the finest value seen (shifting the sums when one comes):
    whatever the order of magnitudes in and out of the window, the results are the exact
    rationals of its contents, rounded once."""
    moments, total, ones = RollingMoments(window), RollingSum(window), RollingSum(window)
    for i, x in enumerate(values):
        moments.push(x)
        total.push(x)
        ones.push(1.0 if i % 2 else 0.75)
        tail = [Fraction(v) for v in values[max(0, i + 1 - window) : i + 1]]
        exact_sum = sum(tail, Fraction(0))
        mean = exact_sum / len(tail)
        _same(total.total, exact_sum)
        _same(lambda: total.ratio_to(ones), exact_sum / sum(Fraction(v) for v in ones.values()))
        _same(moments.mean, mean)
        _same(
            moments.variance,
            sum(((v - mean) ** 2 for v in tail), Fraction(0)) / len(tail),
        )
    assert moments.values() == values[-window:]


def _same(result: Callable[[], float], exact: Fraction) -> None:
    """``result()`` is ``exact`` as the nearest float64, or overflows as that does."""
    try:
        expected = exact.numerator / exact.denominator
    except OverflowError:
        with pytest.raises(OverflowError):
            result()
        return
    assert result() == expected


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_subnormal=False)


@settings(max_examples=200)
@given(st.lists(finite, min_size=1, max_size=60), st.integers(min_value=1, max_value=10))
def test_moments_equal_exact_rationals(values: list[float], window: int) -> None:
    moments = RollingMoments(window)
    for x in values:
        moments.push(x)
    tail = [Fraction(x) for x in values[-window:]]
    mean = sum(tail) / len(tail)
    assert moments.mean() == float(mean)
    assert moments.variance(ddof=0) == float(sum((v - mean) ** 2 for v in tail) / len(tail))


def test_no_drift_after_a_long_slide_across_wildly_different_magnitudes() -> None:
    rng = random.Random(5)
    moments, total = RollingMoments(20), RollingSum(20)
    for i in range(200_000):
        x = rng.uniform(-1, 1) * (1e15 if i % 1000 == 0 else 1e-3)
        moments.push(x)
        total.push(x)
    for _ in range(20):
        x = 30000.0 + rng.uniform(-1, 1)
        moments.push(x)
        total.push(x)
    tail = moments.values()
    # a naive running sum would be left with garbage from the 1e15 values it subtracted
    assert total.total() == math.fsum(tail)
    assert moments.mean() == float(sum(Fraction(v) for v in tail) / 20)
    assert moments.std(ddof=1) == pytest.approx(statistics.stdev(tail), rel=1e-15)


def test_constant_window_has_exactly_zero_variance() -> None:
    moments = RollingMoments(5)
    for x in [0.1, 0.7, 0.3] + [0.1] * 5:
        moments.push(x)
    assert moments.variance(ddof=1) == 0.0


def test_non_finite_value_is_refused_and_state_unchanged() -> None:
    moments = RollingMoments(3)
    moments.push(1.0)
    with pytest.raises(FeatureInputError, match="nan"):
        moments.push(float("nan"))
    assert moments.values() == [1.0]


def test_variance_needs_more_values_than_ddof() -> None:
    moments = RollingMoments(3)
    moments.push(1.0)
    with pytest.raises(FeatureInputError, match="ddof=1"):
        moments.variance(ddof=1)
