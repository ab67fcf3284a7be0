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
    """MARKET and LIMIT work at once; the stop and take-profit types are held untriggered
    until the market reaches ``stop_price`` (stop: a buy on a rise / a sell on a fall;
    take-profit: a buy on a fall / a sell on a rise), then work as MARKET or LIMIT."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"

    @property
    def has_limit_price(self) -> bool:
        """LIMIT, STOP_LIMIT, TAKE_PROFIT_LIMIT: a limit price is required."""
        return self in _LIMIT_TYPES

    @property
    def is_conditional(self) -> bool:
        """Stop and take-profit types: held until ``stop_price`` is reached."""
        return self in _CONDITIONAL_TYPES

    def triggers_on_rise(self, side: Side) -> bool:
        """Whether the order triggers when the price rises to its stop (else on a fall)."""
        stop = self in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
        return stop == (side is Side.BUY)


_LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
_CONDITIONAL_TYPES = frozenset(
    {
        OrderType.STOP_MARKET,
        OrderType.STOP_LIMIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TAKE_PROFIT_LIMIT,
    }
)


class OrderAction(StrEnum):
    """What an ``OrderRequest`` asks: a NEW order, or to CANCEL / REPLACE an open one
    (``target_id``: the open order's client order id)."""

    NEW = "NEW"
    CANCEL = "CANCEL"
    REPLACE = "REPLACE"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    NEW = "NEW"
    ACCEPTED = "ACCEPTED"
    #: a stop / take-profit order whose stop price was reached: it now works
    TRIGGERED = "TRIGGERED"
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
