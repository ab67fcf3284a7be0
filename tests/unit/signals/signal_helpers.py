"""Builders for the signal tests."""

from __future__ import annotations

from decimal import Decimal

from algostream.model.records import Bar, FeatureVector

BASE_TS = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def fv(
    i: int,
    instrument: str = "SIM:BTCUSDT",
    close: str = "100",
    **values: float | None,
) -> FeatureVector:
    """The feature vector of bar ``i`` with the given feature values."""
    return FeatureVector(
        instrument=instrument,
        ts_event=BASE_TS + i * SECOND,
        ts_init=BASE_TS + i * SECOND + 1,
        record_id=f"fv-{instrument}-{i}",
        lineage_id=f"bar-{instrument}-{i}",
        interval="1s",
        close=Decimal(close),
        values=dict(values),
    )


def series(name: str, values: list[float | None]) -> list[FeatureVector]:
    """One feature vector per value of feature ``name``."""
    return [fv(i, **{name: v}) for i, v in enumerate(values)]


def bar(i: int, instrument: str = "SIM:BTCUSDT", close: str = "100") -> Bar:
    """A flat 1s bar number ``i``."""
    price = Decimal(close)
    return Bar(
        instrument=instrument,
        ts_event=BASE_TS + i * SECOND,
        ts_init=BASE_TS + i * SECOND,
        record_id=f"bar-{instrument}-{i}",
        lineage_id=f"trade-{i}",
        interval="1s",
        start_ns=BASE_TS + (i - 1) * SECOND,
        end_ns=BASE_TS + i * SECOND,
        open=price,
        high=price,
        low=price,
        close=price,
        volume=Decimal(1),
        quote_volume=price,
        trades=1,
    )
