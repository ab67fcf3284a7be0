"""Enumerations shared by every layer. Values are the wire strings."""

from __future__ import annotations

from enum import Enum


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(str, Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(str, Enum):
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


class BookUpdateKind(str, Enum):
    SNAPSHOT = "SNAPSHOT"
    DELTA = "DELTA"


class IntegrityKind(str, Enum):
    GAP = "GAP"
    CROSSED = "CROSSED"
    STALE = "STALE"
    RESYNCED = "RESYNCED"
    DISCONNECTED = "DISCONNECTED"


class TradingState(str, Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class ControlAction(str, Enum):
    HALT = "HALT"
    REDUCE = "REDUCE"
    RESUME = "RESUME"
    FLATTEN = "FLATTEN"


class CostMethod(str, Enum):
    FIFO = "FIFO"
    LIFO = "LIFO"
    AVERAGE = "AVERAGE"


class RiskEventKind(str, Enum):
    STATE_CHANGED = "STATE_CHANGED"
    STOP_HIT = "STOP_HIT"
    BREAKER_TRIPPED = "BREAKER_TRIPPED"
    BREAKER_RESET = "BREAKER_RESET"
    INTEGRITY = "INTEGRITY"
    CONTROL = "CONTROL"
