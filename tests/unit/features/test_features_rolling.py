"""Rolling sums are exact: no drift after millions of updates, correctly rounded results."""

from __future__ import annotations

import math
import random
import statistics
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algostream.features.errors import FeatureInputError
from algostream.features.rolling import RollingMoments, RollingSum, to_fixed


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_fixed_point_is_exact(x: float) -> None:
    assert Fraction(to_fixed(x), 2**1074) == Fraction(x)


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
