"""The trading worker's position gauges: notional by venue and side (a flip moves it to
the other side, never both), futures margin in use at ``risk.leverage``."""

from __future__ import annotations

from decimal import Decimal

from algostream.model import CostMethod, Position
from algostream.observability import metrics
from streams.futures import observe_position


def position(instrument: str, qty: str, mark: str, account: str = "futs") -> Position:
    return Position(
        instrument=instrument, ts_event=1, ts_init=1, record_id=f"p-{qty}", lineage_id="f",
        account=account, quantity=Decimal(qty), avg_price=Decimal(mark),
        cost_method=CostMethod.FIFO, realized_pnl=Decimal(0), unrealized_pnl=Decimal(0),
        fees=Decimal(0), mark_price=Decimal(mark),
    )  # fmt: skip


def value(metric: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(metric, labels)


def test_a_short_then_a_flip_by_venue_and_side_with_margin() -> None:
    perp = "BINANCE_USDM:BTCUSDT"
    observe_position(position(perp, "-0.5", "30000"), leverage=10)
    labels = {"account": "futs", "venue": "BINANCE_USDM", "instrument": perp}
    assert value("algostream_position_notional", side="SHORT", **labels) == 15000
    assert value("algostream_position_notional", side="LONG", **labels) == 0
    assert value("algostream_margin_used", account="futs", instrument=perp) == 1500
    observe_position(position(perp, "0.1", "30000"), leverage=10)
    assert value("algostream_position_notional", side="SHORT", **labels) == 0
    assert value("algostream_position_notional", side="LONG", **labels) == 3000


def test_spot_has_no_margin() -> None:
    spot = "BINANCE:ETHUSDT"
    observe_position(position(spot, "2", "2000", account="spot"), leverage=10)
    labels = {"account": "spot", "venue": "BINANCE", "instrument": spot}
    assert value("algostream_position_notional", side="LONG", **labels) == 4000
    assert value("algostream_margin_used", account="spot", instrument=spot) is None
