"""Per-strategy metrics from the risk stage's records (``signal.strategies``).

:func:`observe_strategy` keeps the ``algostream_strategy_*`` gauges in step with each
strategy's own ``Position``/``PnL`` records and counts its trades: a ``Position`` whose
``realized_pnl`` moved closed (part of) a position, a ``win`` if it rose, a ``loss`` if it
fell. A halt or resume of one strategy (a ``RiskEvent`` of layer ``strategy``) sets
``algostream_strategy_state``. Records of the account (no strategy) are not looked at.

>>> from decimal import Decimal
>>> tracker = TradeTracker()
>>> tracker.result("paper", "s", "SIM:X", Decimal(0)) is None
True
>>> tracker.result("paper", "s", "SIM:X", Decimal("1.5"))
'win'
"""

from __future__ import annotations

from decimal import Decimal

from algostream.model.enums import TradingState
from algostream.model.records import PnL, Position, Record, RiskEvent
from algostream.observability import metrics

STATE_LEVEL = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class TradeTracker:
    """The last realised P&L per (account, strategy, instrument): a change is a trade."""

    def __init__(self) -> None:
        self._realized: dict[tuple[str, str, str], Decimal] = {}

    def result(self, account: str, strategy: str, instrument: str, realized: Decimal) -> str | None:
        key = (account, strategy, instrument)
        before = self._realized.get(key)
        self._realized[key] = realized
        if before is None or realized == before:
            return None  # the first record seen (a restart), or a mark
        return "win" if realized > before else "loss"


_TRACKER = TradeTracker()


def observe_strategy(record: Record, mode: str = "live") -> bool:
    """Update the per-strategy metrics from ``record``; True if it was a strategy's own."""
    if isinstance(record, Position) and record.strategy is not None:
        metrics.STRATEGY_POSITION.labels(
            account=record.account,
            strategy=record.strategy,
            instrument=record.instrument,
            mode=mode,
        ).set(float(record.quantity))
        result = _TRACKER.result(
            record.account, record.strategy, record.instrument, record.realized_pnl
        )
        if result is not None:
            metrics.STRATEGY_TRADES.labels(strategy=record.strategy, result=result, mode=mode).inc()
        return True
    if isinstance(record, PnL) and record.strategy is not None:
        labels = {"account": record.account, "strategy": record.strategy, "mode": mode}
        metrics.STRATEGY_EQUITY.labels(**labels).set(float(record.equity))
        metrics.STRATEGY_DRAWDOWN.labels(**labels).set(float(record.drawdown))
        metrics.STRATEGY_REALIZED_PNL.labels(**labels).set(float(record.realized_pnl))
        return True
    if isinstance(record, RiskEvent) and record.detail.get("layer") == "strategy":
        strategy = record.detail["strategy"]
        metrics.STRATEGY_STATE.labels(strategy=strategy).set(STATE_LEVEL[record.state])
        return True
    return False
