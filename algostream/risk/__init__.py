"""Risk: pre-trade limits, position ledger (FIFO/LIFO/average), stops, circuit breaker.

Pure logic behind :class:`RiskProcessor`; the risk agent in ``streams/`` only decodes,
calls the processor and sends what it returns.

>>> from algostream.config import RiskConfig
>>> processor = RiskProcessor(RiskConfig())
>>> processor.breaker.state("paper", "BINANCE:BTCUSDT").value
'ACTIVE'
"""

from algostream.risk.breaker import ALL_INSTRUMENTS, CircuitBreaker, StateChange
from algostream.risk.errors import FilterError, InvalidFillError, RiskError, StateRestoreError
from algostream.risk.ledger import AccountLedger, FillResult, Lot, PositionLedger
from algostream.risk.limits import (
    InstrumentFilters,
    OrderRateWindow,
    PreTradeChecker,
    PreTradeContext,
    Rejection,
    RejectReason,
)
from algostream.risk.processor import RiskProcessor
from algostream.risk.stops import StopHit, StopKind, StopManager

__all__ = [
    "ALL_INSTRUMENTS",
    "AccountLedger",
    "CircuitBreaker",
    "FillResult",
    "FilterError",
    "InstrumentFilters",
    "InvalidFillError",
    "Lot",
    "OrderRateWindow",
    "PositionLedger",
    "PreTradeChecker",
    "PreTradeContext",
    "RejectReason",
    "Rejection",
    "RiskError",
    "RiskProcessor",
    "StateChange",
    "StateRestoreError",
    "StopHit",
    "StopKind",
    "StopManager",
]
