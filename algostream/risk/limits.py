"""Pre-trade checks: each check is a pure function that passes (``None``) or says why not.

A check takes the proposed order, a :class:`PreTradeContext` (a snapshot of what risk knows:
position, pending orders, book, trading state, filters, recent order count) and the
:class:`~algostream.config.RiskConfig`, and returns a :class:`Rejection` or ``None``.
:class:`PreTradeChecker` runs them cheapest-first; the first rejection wins and becomes an
``OrderRejected`` record, a pass becomes the approved ``OrderRequest``.

Conventions:

* The *estimated price* is the limit price of a LIMIT order; for a MARKET order it is the
  touch it would take (best ask for a BUY, best bid for a SELL; the mid if that side is
  empty). Notional = quantity x estimated price.
* The *post-trade position* is worst case: filled position + the remaining quantity of
  approved, still-open orders on the order's side + this order.
* An order that does not increase ``|position|`` is never blocked by the position-size,
  open-positions or exposure limits, so risk can always be reduced.
* Exposure is ``sum |qty| x mark`` over the account: this instrument at the book mid with
  its post-trade position, every other instrument at its last mark.

>>> from decimal import Decimal as D
>>> f = InstrumentFilters(D("0.01"), D("0.001"), D("0.001"), D("5"))
>>> f.tick_size
Decimal('0.01')
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from algostream.config import RiskConfig
from algostream.model.enums import Side, TradingState
from algostream.model.ids import derive_id
from algostream.model.records import BookTop, OrderRejected, OrderRequest
from algostream.risk.errors import FilterError, StateRestoreError
from algostream.risk.ledger import AVG_CONTEXT, ZERO

_HUNDRED = Decimal(100)
ONE_SECOND_NS = 1_000_000_000


class RejectReason(StrEnum):
    """Machine-readable reasons of ``OrderRejected.reason``."""

    INVALID_ORDER = "INVALID_ORDER"
    ORDER_TOO_OLD = "ORDER_TOO_OLD"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_REDUCING = "TRADING_REDUCING"
    REDUCE_ONLY = "REDUCE_ONLY"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    PRICE_BAND = "PRICE_BAND"
    TICK_SIZE = "TICK_SIZE"
    LOT_SIZE = "LOT_SIZE"
    MIN_QTY = "MIN_QTY"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    MAX_ORDERS_PER_SECOND = "MAX_ORDERS_PER_SECOND"
    MAX_POSITION_SIZE = "MAX_POSITION_SIZE"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    MAX_NOTIONAL_EXPOSURE = "MAX_NOTIONAL_EXPOSURE"
    # futures (algostream.risk.futures)
    LEVERAGE_ABOVE_BRACKET = "LEVERAGE_ABOVE_BRACKET"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    TOO_CLOSE_TO_LIQUIDATION = "TOO_CLOSE_TO_LIQUIDATION"
    REDUCE_ONLY_WOULD_INCREASE = "REDUCE_ONLY_WOULD_INCREASE"
    # OCO / bracket: an exit on the wrong side of the entry (or of the market)
    ORDER_LIST = "ORDER_LIST"


@dataclass(frozen=True, slots=True)
class InstrumentFilters:
    """Exchange trading rules of one instrument (Binance PRICE_FILTER, LOT_SIZE, NOTIONAL).

    A zero ``min_qty`` or ``min_notional`` disables that rule.
    """

    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal = ZERO
    min_notional: Decimal = ZERO

    def __post_init__(self) -> None:
        for name in ("tick_size", "step_size", "min_qty", "min_notional"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise FilterError(f"InstrumentFilters.{name} = {value!r}: need a finite Decimal")
            positive = name in ("tick_size", "step_size")
            if value < 0 or (positive and value == 0):
                bound = "> 0" if positive else ">= 0"
                raise FilterError(f"InstrumentFilters.{name} = {value}: must be {bound}")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an order was refused: the ``limit`` and the ``value`` that broke it."""

    reason: RejectReason
    limit: str
    value: str
    message: str


@dataclass(frozen=True, slots=True)
class PreTradeContext:
    """What risk knows when a proposal arrives (built by the processor, read by checks)."""

    state: TradingState
    position: Decimal = ZERO
    pending_same_side: Decimal = ZERO
    other_positions: Mapping[str, Decimal] = field(default_factory=dict)
    other_marks: Mapping[str, Decimal] = field(default_factory=dict)
    top: BookTop | None = None
    filters: InstrumentFilters | None = None
    orders_in_window: int = 0
    #: decision time - the proposal's ``ts_init`` (ns): how long it waited to be decided
    age_ns: int = 0
    #: why the state is HALTED, when the rejection names it (a position mismatch)
    halt_reason: str | None = None


def estimated_price(order: OrderRequest, top: BookTop | None) -> Decimal | None:
    """Limit price, or the touch a MARKET order would take (mid if that side is empty)."""
    if order.limit_price is not None and order.order_type.has_limit_price:
        return order.limit_price
    if top is None:
        return None
    touch = top.best_ask if order.side is Side.BUY else top.best_bid
    return touch if touch is not None else top.mid


def post_trade_position(order: OrderRequest, ctx: PreTradeContext) -> Decimal:
    """Worst-case position after the order and every open order on its side fill."""
    return ctx.position + order.side.sign * (ctx.pending_same_side + order.quantity)


def _increases_risk(order: OrderRequest, ctx: PreTradeContext) -> bool:
    return abs(post_trade_position(order, ctx)) > abs(ctx.position)


def _reduces_without_flip(order: OrderRequest, ctx: PreTradeContext) -> bool:
    if ctx.position == 0 or order.side.sign * ctx.position > 0:
        return False
    return ctx.pending_same_side + order.quantity <= abs(ctx.position)


# --------------------------------------------------------------------------- checks

Check = Callable[[OrderRequest, PreTradeContext, RiskConfig], Rejection | None]


def check_order_shape(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """A positive quantity; a LIMIT order has a limit price."""
    if order.quantity <= 0:
        return Rejection(
            RejectReason.INVALID_ORDER,
            "> 0",
            str(order.quantity),
            f"quantity {order.quantity} must be > 0",
        )
    if order.order_type.has_limit_price and order.limit_price is None:
        kind = order.order_type.value
        return Rejection(
            RejectReason.INVALID_ORDER, "limit_price", "None", f"a {kind} order needs a limit_price"
        )
    return None


def check_order_age(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """Decided within ``max_order_age_ms`` of being proposed (its ``ts_init``): a gate
    that was paused, or is working through a backlog, does not trade on old prices."""
    limit_ns = config.max_order_age_ms * 1_000_000
    if limit_ns == 0 or ctx.age_ns <= limit_ns:  # 0: off (history replayed live)
        return None
    age_ms = ctx.age_ns // 1_000_000
    return Rejection(
        RejectReason.ORDER_TOO_OLD,
        f"{config.max_order_age_ms} ms",
        f"{age_ms} ms",
        f"proposal {order.client_order_id} is {age_ms} ms old at decision time "
        f"(risk.max_order_age_ms = {config.max_order_age_ms})",
    )


def check_trading_state(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """HALTED refuses everything; REDUCING only lets through orders that shrink |position|."""
    if ctx.state is TradingState.HALTED:
        return Rejection(
            RejectReason.TRADING_HALTED,
            TradingState.HALTED.value,
            order.side.value,
            f"trading in {order.instrument} is HALTED"
            + ("" if ctx.halt_reason is None else f": {ctx.halt_reason}"),
        )
    if ctx.state is TradingState.REDUCING and not _reduces_without_flip(order, ctx):
        return Rejection(
            RejectReason.TRADING_REDUCING,
            str(abs(ctx.position)),
            str(ctx.pending_same_side + order.quantity),
            f"{order.instrument} is REDUCING: {order.side.value} {order.quantity} "
            f"(+{ctx.pending_same_side} open) does not reduce position {ctx.position}",
        )
    return None


def check_reduce_only(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """A reduce-only order must shrink |position| without flipping it."""
    if order.reduce_only and not _reduces_without_flip(order, ctx):
        return Rejection(
            RejectReason.REDUCE_ONLY,
            str(abs(ctx.position)),
            str(ctx.pending_same_side + order.quantity),
            f"reduce-only {order.side.value} {order.quantity} (+{ctx.pending_same_side} open) "
            f"would not reduce position {ctx.position}",
        )
    return None


def check_order_list(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """A bracket's take-profit beyond its entry and its stop-loss behind it (a buy's
    take-profit above, stop-loss below; a sell's the other way round); an OCO's
    take-profit beyond the market and its stop behind it. The entry is its limit (or
    stop) price, a MARKET entry's the mid. The bracket is otherwise checked as one
    order: the entry's notional (its exits only close what it fills)."""
    if order.order_list is None or order.take_profit is None or order.stop_loss is None:
        return None
    mid = ctx.top.mid if ctx.top is not None else None
    if order.order_list == "BRACKET":
        ref = order.limit_price if order.order_type.has_limit_price else order.stop_price
        ref, what, sign = ref or mid, f"the {order.side.value} entry", order.side.sign
    else:  # an OCO exits a position: its side is the closing one
        ref, what, sign = mid, "the market", -order.side.sign
    if ref is None:
        return None  # no mid: check_market_data refuses it
    for name, price, beyond in (
        ("take_profit", order.take_profit, True),
        ("stop_loss", order.stop_loss, False),
    ):
        distance = (price - ref) * sign
        if (distance <= 0) if beyond else (distance >= 0):
            above = (sign > 0) == beyond
            return Rejection(
                RejectReason.ORDER_LIST,
                f"{name} {'above' if above else 'below'} {ref}",
                str(price),
                f"{order.order_list} {order.client_order_id}: {name}={price} is not "
                f"{'above' if above else 'below'} {what} ({ref})",
            )
    return None


def check_market_data(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """Without a two-sided book there is no mid to check the price against."""
    if ctx.top is None or ctx.top.mid is None:
        return Rejection(
            RejectReason.NO_MARKET_DATA,
            "book with a mid",
            "None",
            f"no two-sided book for {order.instrument}",
        )
    return None


def check_price_band(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """The estimated price must lie within ``price_band_percent`` of the mid."""
    assert ctx.top is not None and ctx.top.mid is not None  # check_market_data ran
    mid = ctx.top.mid
    price = estimated_price(order, ctx.top)
    if price is None:
        return None
    band = config.price_band_percent
    if abs(price - mid) * _HUNDRED <= band * mid:
        return None
    deviation = AVG_CONTEXT.divide(abs(price - mid) * _HUNDRED, mid)
    return Rejection(
        RejectReason.PRICE_BAND,
        str(band),
        str(deviation),
        f"price {price} is {deviation}% from mid {mid}, band is {band}%",
    )


def check_filters(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """Exchange filters: price on the tick, quantity on the step, min qty, min notional."""
    flt = ctx.filters
    if flt is None:
        return None
    if order.limit_price is not None and order.limit_price % flt.tick_size:
        return Rejection(
            RejectReason.TICK_SIZE,
            str(flt.tick_size),
            str(order.limit_price),
            f"limit price {order.limit_price} is not a multiple of {flt.tick_size}",
        )
    if order.quantity % flt.step_size:
        return Rejection(
            RejectReason.LOT_SIZE,
            str(flt.step_size),
            str(order.quantity),
            f"quantity {order.quantity} is not a multiple of {flt.step_size}",
        )
    if order.quantity < flt.min_qty:
        return Rejection(
            RejectReason.MIN_QTY,
            str(flt.min_qty),
            str(order.quantity),
            f"quantity {order.quantity} is below the minimum {flt.min_qty}",
        )
    price = estimated_price(order, ctx.top)
    notional = order.quantity * price if price is not None else ZERO
    if notional < flt.min_notional:
        return Rejection(
            RejectReason.MIN_NOTIONAL,
            str(flt.min_notional),
            str(notional),
            f"notional {notional} is below the minimum {flt.min_notional}",
        )
    return None


def check_order_notional(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """Quantity x estimated price must not exceed ``max_order_notional``."""
    price = estimated_price(order, ctx.top)
    if price is None:
        return None
    notional = order.quantity * price
    if notional <= config.max_order_notional:
        return None
    return Rejection(
        RejectReason.MAX_ORDER_NOTIONAL,
        str(config.max_order_notional),
        str(notional),
        f"order notional {notional} exceeds {config.max_order_notional}",
    )


def check_order_rate(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """At most ``max_orders_per_second`` approvals in the 1 s before ``order.ts_event``."""
    limit = config.max_orders_per_second
    if ctx.orders_in_window < limit:
        return None
    return Rejection(
        RejectReason.MAX_ORDERS_PER_SECOND,
        str(limit),
        str(ctx.orders_in_window + 1),
        f"{ctx.orders_in_window} orders already approved in the last second",
    )


def check_position_size(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """``|post-trade position|`` must not exceed ``max_position_size``."""
    post = abs(post_trade_position(order, ctx))
    if post <= config.max_position_size or not _increases_risk(order, ctx):
        return None
    return Rejection(
        RejectReason.MAX_POSITION_SIZE,
        str(config.max_position_size),
        str(post),
        f"post-trade |position| {post} in {order.instrument} exceeds {config.max_position_size}",
    )


def check_open_positions(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """Opening a new position must keep the count of open positions within the limit."""
    if ctx.position != 0 or not _increases_risk(order, ctx):
        return None
    count = 1 + sum(
        1 for inst, qty in ctx.other_positions.items() if qty and inst != order.instrument
    )
    if count <= config.max_open_positions:
        return None
    return Rejection(
        RejectReason.MAX_OPEN_POSITIONS,
        str(config.max_open_positions),
        str(count),
        f"opening {order.instrument} would make {count} open positions",
    )


def check_notional_exposure(
    order: OrderRequest, ctx: PreTradeContext, config: RiskConfig
) -> Rejection | None:
    """Post-trade ``sum |qty| x mark`` over the account within ``max_notional_exposure``."""
    if not _increases_risk(order, ctx):
        return None
    assert ctx.top is not None and ctx.top.mid is not None  # check_market_data ran
    exposure = abs(post_trade_position(order, ctx)) * ctx.top.mid
    for inst, qty in ctx.other_positions.items():
        if qty and inst != order.instrument:
            exposure += abs(qty) * ctx.other_marks.get(inst, ZERO)
    if exposure <= config.max_notional_exposure:
        return None
    return Rejection(
        RejectReason.MAX_NOTIONAL_EXPOSURE,
        str(config.max_notional_exposure),
        str(exposure),
        f"post-trade exposure {exposure} exceeds {config.max_notional_exposure}",
    )


#: Every check, cheapest and most decisive first (market data before anything priced).
DEFAULT_CHECKS: tuple[Check, ...] = (
    check_order_shape,
    check_order_age,
    check_trading_state,
    check_reduce_only,
    check_market_data,
    check_order_list,
    check_price_band,
    check_filters,
    check_order_notional,
    check_order_rate,
    check_position_size,
    check_open_positions,
    check_notional_exposure,
)


# --------------------------------------------------------------------------- decisions


def approved_record(order: OrderRequest, now_ns: int) -> OrderRequest:
    """The ``orders.approved`` record: the same order, new id, lineage = the proposal."""
    return order.model_copy(
        update={
            "record_id": derive_id("approved", order.record_id),
            "lineage_id": order.record_id,
            "ts_init": now_ns,
        }
    )


def rejected_record(order: OrderRequest, rejection: Rejection, now_ns: int) -> OrderRejected:
    """The ``orders.rejected`` record for ``order``."""
    return OrderRejected(
        instrument=order.instrument,
        ts_event=order.ts_event,
        ts_init=now_ns,
        record_id=derive_id("rejected", order.record_id, rejection.reason.value),
        lineage_id=order.record_id,
        account=order.account,
        client_order_id=order.client_order_id,
        reason=rejection.reason.value,
        limit=rejection.limit,
        value=rejection.value,
        message=rejection.message,
        order=order,
    )


class PreTradeChecker:
    """Runs the checks in order; the first rejection decides.

    >>> from algostream.config import RiskConfig
    >>> checker = PreTradeChecker(RiskConfig())
    >>> len(checker.checks) > 5
    True
    """

    def __init__(self, config: RiskConfig, checks: tuple[Check, ...] = DEFAULT_CHECKS) -> None:
        self.config = config
        self.checks = checks

    def check(self, order: OrderRequest, ctx: PreTradeContext) -> Rejection | None:
        """The first failing check's rejection, or ``None`` when every check passes."""
        for check in self.checks:
            rejection = check(order, ctx, self.config)
            if rejection is not None:
                return rejection
        return None

    def decide(
        self, order: OrderRequest, ctx: PreTradeContext, now_ns: int
    ) -> OrderRequest | OrderRejected:
        """Approved ``OrderRequest`` or ``OrderRejected`` for ``order``."""
        rejection = self.check(order, ctx)
        if rejection is None:
            return approved_record(order, now_ns)
        return rejected_record(order, rejection, now_ns)


class OrderRateWindow:
    """Event-time timestamps of approved orders, for a sliding 1 s rate limit.

    >>> w = OrderRateWindow()
    >>> w.record(0); w.record(500_000_000)
    >>> w.count(1_000_000_000)   # the order at 0 is exactly 1 s old: out of the window
    1
    """

    def __init__(self, window_ns: int = ONE_SECOND_NS) -> None:
        self.window_ns = window_ns
        self._stamps: list[int] = []

    def count(self, ts_ns: int) -> int:
        """Approvals with ``ts_ns - window < ts <= ts_ns``."""
        hi = bisect.bisect_right(self._stamps, ts_ns)
        lo = bisect.bisect_right(self._stamps, ts_ns - self.window_ns)
        return hi - lo

    def record(self, ts_ns: int) -> None:
        """Remember an approval at ``ts_ns`` and forget stamps older than the window."""
        bisect.insort(self._stamps, ts_ns)
        cutoff = bisect.bisect_right(self._stamps, self._stamps[-1] - self.window_ns)
        if cutoff:
            del self._stamps[:cutoff]

    def to_state(self) -> list[int]:
        """JSON-able snapshot."""
        return list(self._stamps)

    @classmethod
    def from_state(cls, state: Any, window_ns: int = ONE_SECOND_NS) -> OrderRateWindow:
        """Restore from :meth:`to_state` output."""
        if not isinstance(state, list) or not all(isinstance(s, int) for s in state):
            raise StateRestoreError(f"rate window state = {state!r}: expected a list of ints")
        window = cls(window_ns)
        window._stamps = sorted(state)
        return window
