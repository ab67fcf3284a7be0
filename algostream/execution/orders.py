"""Order lifecycle: an explicit state machine that emits one ``OrderEvent`` per transition.

Allowed transitions (anything else raises :class:`IllegalTransitionError`)::

    NEW              -> ACCEPTED | REJECTED
    ACCEPTED         -> TRIGGERED | PARTIALLY_FILLED | FILLED | CANCELLED | EXPIRED
    TRIGGERED        -> PARTIALLY_FILLED | FILLED | CANCELLED | EXPIRED  (stop/take-profit)
    PARTIALLY_FILLED -> PARTIALLY_FILLED | FILLED | CANCELLED | EXPIRED
    FILLED, CANCELLED, REJECTED, EXPIRED are terminal

Every event's ``lineage_id`` is the approved order's ``record_id`` and its ``record_id``
is derived from the client order id and the event's sequence number, so replaying the
same inputs yields the same ids. ``slippage`` on a fill is the per-unit adverse price
difference against ``arrival_mid`` (buy: fill - mid, sell: mid - fill; > 0 is a cost).

>>> from algostream.model import OrderRequest, OrderType, Side
>>> req = OrderRequest(instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=1, record_id="a1",
...     lineage_id="p1", account="paper", client_order_id="c1", strategy="s",
...     side=Side.BUY, order_type=OrderType.MARKET, quantity="2", arrival_mid="100")
>>> order = ManagedOrder(req)
>>> order.accept(ts_event=5, venue_order_id="v1").status.value
'ACCEPTED'
>>> ev = order.fill(price=Decimal("101"), qty=Decimal("2"), fee=Decimal("0.2"), ts_event=6)
>>> (ev.status.value, ev.cum_qty, ev.slippage)
('FILLED', Decimal('2'), Decimal('1'))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from algostream.execution.errors import IllegalTransitionError, OrderStateError
from algostream.model.enums import OrderStatus
from algostream.model.ids import derive_id
from algostream.model.records import OrderEvent, OrderRequest

_S = OrderStatus
ALLOWED_TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    _S.NEW: frozenset({_S.ACCEPTED, _S.REJECTED}),
    _S.ACCEPTED: frozenset(
        {_S.TRIGGERED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}
    ),
    _S.TRIGGERED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}
_ZERO = Decimal(0)


def can_transition(from_status: OrderStatus, to_status: OrderStatus) -> bool:
    """True if the lifecycle allows ``from_status -> to_status``."""
    return to_status in ALLOWED_TRANSITIONS[from_status]


@dataclass
class ManagedOrder:
    """One order's lifecycle state. Mutated only through its transition methods."""

    request: OrderRequest
    venue: str = "PAPER"
    status: OrderStatus = OrderStatus.NEW
    venue_order_id: str | None = None
    cum_qty: Decimal = _ZERO
    cum_notional: Decimal = _ZERO
    cum_fee: Decimal = _ZERO
    seq: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet filled."""
        return self.request.quantity - self.cum_qty

    @property
    def is_open(self) -> bool:
        """True while the order can still fill or be cancelled."""
        return not self.status.is_terminal

    @property
    def avg_price(self) -> Decimal | None:
        """Average fill price so far (``None`` before the first fill)."""
        return self.cum_notional / self.cum_qty if self.cum_qty else None

    # ------------------------------------------------------------------ transitions

    def accept(
        self, ts_event: int, venue_order_id: str | None = None, ts_init: int | None = None
    ) -> OrderEvent:
        """NEW -> ACCEPTED (the venue took the order)."""
        if venue_order_id is not None:
            self.venue_order_id = venue_order_id
        return self._transition(OrderStatus.ACCEPTED, ts_event, ts_init)

    def trigger(self, reason: str, ts_event: int, ts_init: int | None = None) -> OrderEvent:
        """ACCEPTED -> TRIGGERED (a stop / take-profit order's stop price was reached)."""
        return self._transition(OrderStatus.TRIGGERED, ts_event, ts_init, reason=reason)

    def reject(self, reason: str, ts_event: int, ts_init: int | None = None) -> OrderEvent:
        """NEW -> REJECTED with a reason."""
        return self._transition(OrderStatus.REJECTED, ts_event, ts_init, reason=reason)

    def cancel(self, reason: str, ts_event: int, ts_init: int | None = None) -> OrderEvent:
        """ACCEPTED/PARTIALLY_FILLED -> CANCELLED."""
        return self._transition(OrderStatus.CANCELLED, ts_event, ts_init, reason=reason)

    def expire(self, reason: str, ts_event: int, ts_init: int | None = None) -> OrderEvent:
        """ACCEPTED/PARTIALLY_FILLED -> EXPIRED (e.g. an IOC remainder)."""
        return self._transition(OrderStatus.EXPIRED, ts_event, ts_init, reason=reason)

    def amend(
        self,
        price: Decimal,
        quantity: Decimal,
        ts_event: int,
        ts_init: int | None = None,
    ) -> OrderEvent:
        """The venue took a new limit price and quantity: the same status, the new values
        (an event of its own, reason ``amended: ...``)."""
        if not self.is_open:
            raise OrderStateError(
                f"order {self.client_order_id!r}: {self.status.value}, not amended"
            )
        old = self.request
        self.request = old.model_copy(update={"limit_price": price, "quantity": quantity})
        why = f"amended: price {old.limit_price} -> {price}, quantity {old.quantity} -> {quantity}"
        return self._event(self.status, ts_event, ts_init, reason=why)

    def fill(
        self,
        price: Decimal,
        qty: Decimal,
        fee: Decimal,
        ts_event: int,
        *,
        ts_init: int | None = None,
        fee_currency: str = "",
        reason: str = "",
    ) -> OrderEvent:
        """Record a fill; the new status is FILLED when nothing remains, else PARTIALLY_FILLED."""
        if qty <= _ZERO:
            raise OrderStateError(f"order {self.client_order_id!r}: fill qty {qty} must be > 0")
        if price <= _ZERO:
            raise OrderStateError(f"order {self.client_order_id!r}: fill price {price} must be > 0")
        if qty > self.remaining:
            raise OrderStateError(
                f"order {self.client_order_id!r}: fill qty {qty} exceeds remaining {self.remaining}"
            )
        limit = self.request.limit_price
        if limit is not None and (price - limit) * self.request.side.sign > 0:
            raise OrderStateError(
                f"order {self.client_order_id!r}: fill price {price} is worse than limit {limit}"
            )
        to = OrderStatus.FILLED if qty == self.remaining else OrderStatus.PARTIALLY_FILLED
        self._check(to)
        self.cum_qty += qty
        self.cum_notional += price * qty
        self.cum_fee += fee
        return self._event(
            to,
            ts_event,
            ts_init,
            fill_price=price,
            fill_qty=qty,
            fee=fee,
            fee_currency=fee_currency,
            reason=reason,
        )

    def _transition(
        self, to: OrderStatus, ts_event: int, ts_init: int | None, reason: str = ""
    ) -> OrderEvent:
        if to in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED):
            raise OrderStateError(f"order {self.client_order_id!r}: use fill() to reach {to.value}")
        self._check(to)
        return self._event(to, ts_event, ts_init, reason=reason)

    def _check(self, to: OrderStatus) -> None:
        if not can_transition(self.status, to):
            raise IllegalTransitionError(self.client_order_id, self.status, to)

    def _event(
        self,
        to: OrderStatus,
        ts_event: int,
        ts_init: int | None,
        *,
        fill_price: Decimal | None = None,
        fill_qty: Decimal = _ZERO,
        fee: Decimal = _ZERO,
        fee_currency: str = "",
        reason: str = "",
    ) -> OrderEvent:
        self.status = to
        self.seq += 1
        req = self.request
        return OrderEvent(
            instrument=req.instrument,
            ts_event=ts_event,
            ts_init=ts_event if ts_init is None else ts_init,
            record_id=derive_id("OrderEvent", req.client_order_id, self.seq, to.value),
            lineage_id=req.record_id,
            account=req.account,
            client_order_id=req.client_order_id,
            venue_order_id=self.venue_order_id,
            status=to,
            side=req.side,
            order_type=req.order_type,
            quantity=req.quantity,
            limit_price=req.limit_price,
            stop_price=req.stop_price,
            fill_price=fill_price,
            fill_qty=fill_qty,
            cum_qty=self.cum_qty,
            fee=fee,
            fee_currency=fee_currency,
            slippage=self._slippage(fill_price),
            reason=reason,
            venue=self.venue,
            strategy=req.strategy,
            list_id=req.list_id or (req.client_order_id if req.order_list else None),
        )

    def _slippage(self, fill_price: Decimal | None) -> Decimal | None:
        mid = self.request.arrival_mid
        if fill_price is None or mid is None:
            return None
        return (fill_price - mid) * self.request.side.sign

    # ------------------------------------------------------------------ persistence

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state (for a Faust table); :meth:`from_state` restores it."""
        return {
            "request": self.request.model_dump(mode="json"),
            "venue": self.venue,
            "status": self.status.value,
            "venue_order_id": self.venue_order_id,
            "cum_qty": str(self.cum_qty),
            "cum_notional": str(self.cum_notional),
            "cum_fee": str(self.cum_fee),
            "seq": self.seq,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ManagedOrder:
        """Rebuild an order from :meth:`to_state` output."""
        return cls(
            request=OrderRequest.from_obj(state["request"]),
            venue=state["venue"],
            status=OrderStatus(state["status"]),
            venue_order_id=state["venue_order_id"],
            cum_qty=Decimal(state["cum_qty"]),
            cum_notional=Decimal(state["cum_notional"]),
            cum_fee=Decimal(state["cum_fee"]),
            seq=int(state["seq"]),
            extra=dict(state.get("extra", {})),
        )
