"""Enumerations shared by every layer. Values are the wire strings."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    NEW = "NEW"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class BookUpdateKind(StrEnum):
    SNAPSHOT = "SNAPSHOT"
    DELTA = "DELTA"


class IntegrityKind(StrEnum):
    GAP = "GAP"
    CROSSED = "CROSSED"
    STALE = "STALE"
    RESYNCED = "RESYNCED"
    DISCONNECTED = "DISCONNECTED"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class ControlAction(StrEnum):
    HALT = "HALT"
    REDUCE = "REDUCE"
    RESUME = "RESUME"
    FLATTEN = "FLATTEN"


class CostMethod(StrEnum):
    FIFO = "FIFO"
    LIFO = "LIFO"
    AVERAGE = "AVERAGE"


class RiskEventKind(StrEnum):
    STATE_CHANGED = "STATE_CHANGED"
    STOP_HIT = "STOP_HIT"
    BREAKER_TRIPPED = "BREAKER_TRIPPED"
    BREAKER_RESET = "BREAKER_RESET"
    INTEGRITY = "INTEGRITY"
    CONTROL = "CONTROL"
    CONTROL_REFUSED = "CONTROL_REFUSED"
