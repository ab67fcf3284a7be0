"""Execution: order lifecycle, slippage, paper broker, Binance REST client, router, reconcile."""

from algostream.execution.binance_client import (
    BinanceCredentials,
    BinanceRestClient,
    NewOrder,
    sign,
)
from algostream.execution.errors import (
    AuthError,
    BinanceError,
    BookError,
    ExecutionError,
    IllegalTransitionError,
    OrderRejectedError,
    OrderStateError,
    OrderStatusUnknownError,
    RateLimitedError,
    TimestampError,
    TransientError,
    UnknownOrderError,
)
from algostream.execution.orders import ALLOWED_TRANSITIONS, ManagedOrder, can_transition
from algostream.execution.paper import PaperBroker
from algostream.execution.reconcile import (
    BalanceDiscrepancy,
    ReconcileResult,
    VenueFill,
    VenueOrder,
    balances_from_binance,
    events_to_match,
    reconcile_balances,
    reconcile_orders,
)
from algostream.execution.retry import RetryPolicy
from algostream.execution.router import ExecutionRouter
from algostream.execution.slippage import FillEstimate, estimate_fill, mid_price, walk_levels

__all__ = [
    "ALLOWED_TRANSITIONS",
    "AuthError",
    "BalanceDiscrepancy",
    "BinanceCredentials",
    "BinanceError",
    "BinanceRestClient",
    "BookError",
    "ExecutionError",
    "ExecutionRouter",
    "FillEstimate",
    "IllegalTransitionError",
    "ManagedOrder",
    "NewOrder",
    "OrderRejectedError",
    "OrderStateError",
    "OrderStatusUnknownError",
    "PaperBroker",
    "RateLimitedError",
    "ReconcileResult",
    "RetryPolicy",
    "TimestampError",
    "TransientError",
    "UnknownOrderError",
    "VenueFill",
    "VenueOrder",
    "balances_from_binance",
    "can_transition",
    "estimate_fill",
    "events_to_match",
    "mid_price",
    "reconcile_balances",
    "reconcile_orders",
    "sign",
    "walk_levels",
]
