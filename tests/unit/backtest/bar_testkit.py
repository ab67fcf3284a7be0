"""Hand-made daily bars and risk limits wide enough for them: the bar backtest tests' rig."""

from __future__ import annotations

from algostream.config import Settings
from algostream.model.ids import derive_id
from algostream.model.records import Bar

DAY = 86_400 * 10**9
#: limits no hand-made bar's order reaches: the tests see the fill model, not risk refusals
WIDE = Settings.model_validate(
    {
        "risk": {
            "max_order_notional": "1e9",
            "max_notional_exposure": "1e9",
            "max_position_size": "1e6",
            "enable_circuit_breaker": False,
            "stop_loss_percent": "0",
            "trailing_stop_percent": "0",
        }
    }
)


def bar(i: int, o: str, h: str, low: str, c: str, instrument: str = "SIM:ABC") -> Bar:
    """Day ``i``'s bar (it closes at the start of day ``i + 1``)."""
    return Bar(
        instrument=instrument, ts_event=(i + 1) * DAY, ts_init=(i + 1) * DAY,
        record_id=derive_id("bar", i), lineage_id="test", interval="1d", start_ns=i * DAY,
        end_ns=(i + 1) * DAY, open=o, high=h, low=low, close=c, volume="1",
        quote_volume="0", trades=0,
    )  # fmt: skip
