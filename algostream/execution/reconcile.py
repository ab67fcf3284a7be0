"""Reconciliation: bring local order state in line with what the venue reports.

The venue is the truth for what happened to an order. Given the locally tracked
:class:`ManagedOrder`s and the venue's view (:class:`VenueOrder`, parsed from Binance
order JSON or taken from the paper broker), :func:`reconcile_orders` emits the
``OrderEvent``s that move each local order to the venue's state (e.g. an order the venue
says FILLED that we think ACCEPTED gets its fill event), and reports what it cannot fix
with an event (local fills the venue does not have, orders only one side knows).

Fills learnt from an order query carry no per-fill detail: they are emitted as one fill
at the average price of the missing quantity, with ``fee`` 0 and a ``reason`` saying so.
The functions mutate the ``ManagedOrder``s they are given (that is the local state).
"""

from __future__ import annotations

import decimal
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from algostream.execution.errors import ExecutionError
from algostream.execution.order_lists import exits
from algostream.execution.orders import ManagedOrder
from algostream.model.enums import OrderStatus
from algostream.model.records import OrderEvent, OrderRequest

_ZERO = Decimal(0)
_CTX = decimal.Context(prec=40)
BINANCE_STATUS: Mapping[str, OrderStatus] = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.ACCEPTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "PENDING_CANCEL": OrderStatus.ACCEPTED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


@dataclass(frozen=True)
class VenueFill:
    """One execution as the venue reports it."""

    price: Decimal
    qty: Decimal
    fee: Decimal = _ZERO
    fee_currency: str = ""


_SPOT_STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue sees it: status and cumulative execution."""

    client_order_id: str
    venue_order_id: str | None
    status: OrderStatus
    executed_qty: Decimal
    cum_quote: Decimal
    fills: tuple[VenueFill, ...] = ()
    ts_ms: int | None = None
    #: a stop / take-profit order the venue has triggered (it works now)
    triggered: bool = False

    @classmethod
    def from_binance(cls, payload: Mapping[str, Any]) -> VenueOrder:
        """Parse Binance order JSON (new-order FULL response, query or cancel response)."""
        raw_status = str(payload.get("status", ""))
        if raw_status not in BINANCE_STATUS:
            raise ExecutionError(f"binance order status {raw_status!r}: unknown")
        fills = tuple(
            VenueFill(
                Decimal(f["price"]),
                Decimal(f["qty"]),
                Decimal(f.get("commission", "0")),
                str(f.get("commissionAsset", "")),
            )
            for f in payload.get("fills", ())
        )
        ts = payload.get("transactTime", payload.get("updateTime"))
        return cls(
            client_order_id=str(
                payload.get("clientOrderId")
                if raw_status != "CANCELED"
                else payload.get("origClientOrderId") or payload.get("clientOrderId")
            ),
            venue_order_id=str(payload["orderId"]) if "orderId" in payload else None,
            status=BINANCE_STATUS[raw_status],
            executed_qty=Decimal(payload["executedQty"]),
            cum_quote=Decimal(payload.get("cummulativeQuoteQty", "0")),
            fills=fills,
            ts_ms=int(ts) if ts is not None else None,
            # a spot stop order works once triggered (isWorking; a RESULT answer has none)
            triggered=payload.get("type") in _SPOT_STOP_TYPES and payload.get("isWorking") is True,
        )

    @classmethod
    def from_managed(cls, order: ManagedOrder) -> VenueOrder:
        """The paper broker's view of one of its orders."""
        return cls(
            order.client_order_id,
            order.venue_order_id,
            order.status,
            order.cum_qty,
            order.cum_notional,
        )


@dataclass
class ReconcileResult:
    """Events that fix local state, and what events cannot fix (for an operator)."""

    events: list[OrderEvent] = field(default_factory=list)
    discrepancies: list[str] = field(default_factory=list)
    unknown_at_venue: list[str] = field(default_factory=list)
    unknown_locally: list[VenueOrder] = field(default_factory=list)


def events_to_match(
    order: ManagedOrder, venue: VenueOrder, ts_event: int, ts_init: int | None = None
) -> list[OrderEvent]:
    """Events moving ``order`` to ``venue``'s state.

    Raises :class:`ExecutionError` when no legal sequence of events gets there.
    """
    events: list[OrderEvent] = []
    if venue.status is OrderStatus.REJECTED:
        if order.status is OrderStatus.REJECTED:
            return events
        return [order.reject("rejected by venue", ts_event, ts_init)]
    if order.status is OrderStatus.NEW:
        events.append(order.accept(ts_event, venue.venue_order_id, ts_init))
    elif venue.venue_order_id and order.venue_order_id is None:
        order.venue_order_id = venue.venue_order_id
    if (
        venue.triggered
        and order.status is OrderStatus.ACCEPTED
        and order.request.order_type.is_conditional
    ):
        events.append(order.trigger("triggered at venue", ts_event, ts_init))
    missing = venue.executed_qty - order.cum_qty
    if missing < _ZERO:
        raise ExecutionError(
            f"order {order.client_order_id!r}: local cum_qty {order.cum_qty} exceeds venue "
            f"executedQty {venue.executed_qty}"
        )
    if missing > _ZERO:
        events += _fill_events(order, venue, missing, ts_event, ts_init)
    if order.is_open and venue.status is OrderStatus.CANCELLED:
        events.append(order.cancel("cancelled at venue", ts_event, ts_init))
    elif order.is_open and venue.status is OrderStatus.EXPIRED:
        events.append(order.expire("expired at venue", ts_event, ts_init))
    elif order.status is not venue.status and venue.status.is_terminal:
        raise ExecutionError(
            f"order {order.client_order_id!r}: local status {order.status.value}, venue "
            f"{venue.status.value}"
        )
    return events


def _fill_events(
    order: ManagedOrder, venue: VenueOrder, missing: Decimal, ts_event: int, ts_init: int | None
) -> list[OrderEvent]:
    detailed = sum((f.qty for f in venue.fills), _ZERO)
    if venue.fills and order.cum_qty == _ZERO and detailed == venue.executed_qty:
        return [
            order.fill(
                f.price, f.qty, f.fee, ts_event, ts_init=ts_init, fee_currency=f.fee_currency
            )
            for f in venue.fills
        ]
    price = _CTX.divide(venue.cum_quote - order.cum_notional, missing)
    reason = "reconciled from venue order state; fee unknown"
    return [order.fill(price, missing, _ZERO, ts_event, ts_init=ts_init, reason=reason)]


def reconcile_orders(
    local: Mapping[str, ManagedOrder],
    venue: Mapping[str, VenueOrder],
    ts_event: int,
    *,
    missing: Collection[str] = (),
) -> ReconcileResult:
    """Compare local orders with the venue's (keyed by client order id).

    ``missing`` names orders the venue said do not exist (-2013): a NEW one never reached
    the venue (REJECTED), an accepted one is gone without further fills (CANCELLED).
    Local open orders absent from both ``venue`` and ``missing`` are listed in
    ``unknown_at_venue`` (query them); venue orders we do not track in ``unknown_locally``.
    """
    result = ReconcileResult()
    for coid, order in local.items():
        if coid in venue:
            try:
                result.events += events_to_match(order, venue[coid], ts_event)
            except ExecutionError as exc:
                result.discrepancies.append(str(exc))
        elif coid in missing and order.is_open:
            if order.status is OrderStatus.NEW:
                result.events.append(order.reject("not found at venue", ts_event))
            else:
                result.events.append(order.cancel("not found at venue", ts_event))
        elif order.is_open:
            result.unknown_at_venue.append(coid)
    result.unknown_locally = [v for c, v in venue.items() if c not in local]
    return result


@dataclass(frozen=True)
class BalanceDiscrepancy:
    """A position/balance that differs between local books and the venue."""

    asset: str
    local: Decimal
    venue: Decimal

    @property
    def difference(self) -> Decimal:
        return self.venue - self.local


def balances_from_binance(account: Mapping[str, Any]) -> dict[str, Decimal]:
    """``GET /api/v3/account`` -> {asset: free + locked}."""
    return {
        b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in account.get("balances", ())
    }


def reconcile_balances(
    local: Mapping[str, Decimal], venue: Mapping[str, Decimal], tolerance: Decimal = _ZERO
) -> list[BalanceDiscrepancy]:
    """Assets whose local and venue amounts differ by more than ``tolerance``."""
    assets: Sequence[str] = sorted(set(local) | set(venue))
    out = []
    for asset in assets:
        mine, theirs = local.get(asset, _ZERO), venue.get(asset, _ZERO)
        if abs(theirs - mine) > tolerance:
            out.append(BalanceDiscrepancy(asset, mine, theirs))
    return out


def rebuild_local(
    requests: Iterable[OrderRequest], events: Iterable[OrderEvent], venue: str = "PAPER"
) -> dict[str, ManagedOrder]:
    """Local order state as the topics tell it: approved requests, then their events.

    Events are applied in order, once each (a re-sent record has the same ``record_id``);
    an event that does not fit its order's state is skipped (the venue will say).
    """
    lists: dict[str, OrderRequest] = {}
    orders: dict[str, ManagedOrder] = {}
    for r in requests:
        if r.order_list is not None:
            lists[r.client_order_id] = r
        if r.order_list != "OCO":  # an OCO is its legs, not an order of its own
            orders[r.client_order_id] = ManagedOrder(r, venue=venue)
    seen: set[str] = set()
    for ev in events:
        order = orders.get(ev.client_order_id)
        if order is None and ev.list_id in lists:  # a leg of an OCO / bracket
            leg = _leg_request(lists[ev.list_id], ev)
            if leg is not None:
                order = orders[ev.client_order_id] = ManagedOrder(leg, venue=venue)
        if order is None or ev.record_id in seen:
            continue
        seen.add(ev.record_id)
        try:
            _replay(order, ev)
        except ExecutionError:
            continue
    return orders


def _leg_request(owner: OrderRequest, ev: OrderEvent) -> OrderRequest | None:
    """The request of a list's leg, as the execution stage derived it (the quantity the
    event carries: a bracket's exits are for what its entry filled)."""
    side = owner.side if owner.order_list == "OCO" else owner.side.opposite()
    for leg in exits(owner, side):
        if leg.client_order_id == ev.client_order_id:
            return leg.model_copy(update={"quantity": ev.quantity})
    return None


def _replay(order: ManagedOrder, ev: OrderEvent) -> None:
    ts = ev.ts_event
    if ev.status is OrderStatus.ACCEPTED:
        order.accept(ts, ev.venue_order_id)
    elif ev.fill_qty > _ZERO and ev.fill_price is not None:
        if order.status is OrderStatus.NEW:
            order.accept(ts, ev.venue_order_id)
        order.fill(ev.fill_price, ev.fill_qty, ev.fee, ts, fee_currency=ev.fee_currency)
    elif ev.status is OrderStatus.CANCELLED:
        order.cancel(ev.reason, ts)
    elif ev.status is OrderStatus.REJECTED:
        order.reject(ev.reason, ts)
    elif ev.status is OrderStatus.EXPIRED:
        order.expire(ev.reason, ts)
