"""OrderSizer: exact, rounded-down quantities and deterministic client order ids."""

from __future__ import annotations

from decimal import Decimal

import pytest
from signal_helpers import fv

from algostream.config import RiskConfig, SignalConfig
from algostream.model.enums import OrderType, Side
from algostream.model.ids import derive_id
from algostream.model.records import OrderRequest, Signal
from algostream.signals import OrderSizer, SignalError
from algostream.signals.base import Strategy, StrategyConfig


class _Fixed(Strategy[StrategyConfig]):
    name = "fixed"

    def __init__(self, strength: float) -> None:
        super().__init__(StrategyConfig())
        self.strength = strength

    def on_features(self, vector):  # type: ignore[no-untyped-def]
        return self.signal(vector, Side.SELL, "test", strength=self.strength, confidence=0.7)


def _signal(strength: float) -> Signal:
    signal = _Fixed(strength).on_features(fv(3, close="27123.45"))
    assert signal is not None
    return signal


@pytest.mark.parametrize(
    ("base", "strength", "step", "expected"),
    [
        ("0.01", 1.0, "0.00001", "0.01"),
        ("0.01", 0.5, "0.00001", "0.005"),
        ("0.01", 0.123456789, "0.00001", "0.00123"),
        ("0.5", 0.37, "0.01", "0.18"),  # 0.185 rounds down
        ("3", 0.9999, "1", "2"),
        ("0.01", 0.0009, "0.00001", "0"),
    ],
)
def test_quantity_is_base_times_strength_rounded_down(
    base: str, strength: float, step: str, expected: str
) -> None:
    sizer = OrderSizer(SignalConfig(order_quantity=Decimal(base)), RiskConfig(), step=step)
    assert sizer.quantity(strength) == Decimal(expected)


def test_order_request_fields() -> None:
    signal = _signal(0.5)
    sizer = OrderSizer(SignalConfig(order_quantity=Decimal("0.02")), RiskConfig(account="acct-1"))
    order = sizer.to_order(signal)
    assert order is not None
    assert order.client_order_id == derive_id(signal.record_id)
    assert order.lineage_id == signal.record_id
    assert (order.account, order.strategy, order.side) == ("acct-1", "fixed", Side.SELL)
    assert (order.order_type, order.quantity) == (OrderType.MARKET, Decimal("0.01"))
    assert order.arrival_mid == Decimal("27123.45") and order.limit_price is None
    assert (order.ts_event, order.ts_init) == (signal.ts_event, signal.ts_init)
    assert OrderRequest.decode(order.encode()) == order
    assert sizer.to_order(signal) == order  # replay: same proposal, same ids
    assert sizer.to_order(signal, ts_init=7).ts_init == 7  # type: ignore[union-attr]


def test_zero_size_gives_no_order() -> None:
    sizer = OrderSizer(SignalConfig(), RiskConfig(), step="0.01")
    assert sizer.to_order(_signal(0.5)) is None  # 0.005 rounds down to 0


def test_bad_step_is_refused() -> None:
    with pytest.raises(SignalError, match="step must be > 0, got 0"):
        OrderSizer(SignalConfig(), RiskConfig(), step="0")
