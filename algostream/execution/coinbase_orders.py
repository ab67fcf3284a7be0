"""Coinbase order entry for the platform: approved ``OrderRequest`` in, ``OrderEvent``s out.

The Coinbase counterpart of :class:`~algostream.execution.router.ExecutionRouter`'s live
path, with the same rules: an order is placed once (the client looks an unknown outcome
up by client order id before sending again), a definite refusal is a REJECTED event
naming the venue's reason, an unknown outcome raises
:class:`~algostream.execution.errors.OrderStatusUnknownError` and the order stays NEW
until :meth:`CoinbaseExecution.refresh` or :meth:`CoinbaseExecution.reconcile` learns
its state. The venue is the truth (:func:`~algostream.execution.reconcile.events_to_match`).

An order type Coinbase does not take (its spot API has no stop-market or take-profit-
market order) is REJECTED with a reason naming the type; nothing is changed silently.
One stated exception: the stop-loss leg of an OCO / bracket (a STOP_MARKET with a
``list_id``) is placed as a STOP_LIMIT (:func:`protective_stop_limit`: the limit is the
stop moved ``execution.coinbase_stop_limit_slippage_bps`` against the position, rounded
outward to the product's ``price_increment``), and its events carry that type and price.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from algostream.config import ExecutionConfig
from algostream.execution.coinbase_client import (
    CoinbaseCredentials,
    CoinbaseNewOrder,
    CoinbaseRestClient,
    venue_order_from_coinbase,
)
from algostream.execution.errors import (
    AmendRejectedError,
    CoinbaseError,
    ExecutionError,
    TransientError,
    UnknownOrderError,
)
from algostream.execution.orders import ManagedOrder
from algostream.execution.reconcile import (
    ReconcileResult,
    VenueOrder,
    events_to_match,
    reconcile_orders,
)
from algostream.model.enums import OrderStatus, OrderType, Side, TimeInForce
from algostream.model.ids import split_instrument
from algostream.model.records import OrderEvent, OrderRequest

VENUE = "COINBASE"


def protective_stop_limit(order: OrderRequest, tick: Decimal, slippage_bps: int) -> OrderRequest:
    """A list's STOP_MARKET stop-loss leg as the STOP_LIMIT Coinbase takes: same stop,
    limit = stop moved ``slippage_bps`` against the position (a SELL stop lower, a BUY
    stop higher), rounded outward to ``tick`` (never less protection than asked)."""
    stop = order.stop_price
    if stop is None or tick <= 0:
        raise ExecutionError(f"order {order.client_order_id!r}: stop_price={stop}, tick={tick}")
    move = stop * slippage_bps / Decimal(10_000)
    sell = order.side is Side.SELL
    raw = stop - move if sell else stop + move
    steps = (raw / tick).to_integral_value(rounding=ROUND_FLOOR if sell else ROUND_CEILING)
    limit = steps * tick
    if limit <= 0:
        raise ExecutionError(
            f"order {order.client_order_id!r}: stop_price={stop} less "
            f"{slippage_bps} bps leaves no positive limit price"
        )
    return order.model_copy(
        update={"order_type": OrderType.STOP_LIMIT, "limit_price": limit.normalize()}
    )


def coinbase_order(order: OrderRequest) -> CoinbaseNewOrder:
    """The Coinbase order for an approved request; :class:`ExecutionError` names what
    Coinbase cannot take."""
    venue, product = split_instrument(order.instrument)
    if venue != VENUE:
        raise ExecutionError(f"instrument={order.instrument!r}: not a {VENUE} instrument")
    kind = order.order_type.value
    stop = getattr(order, "stop_price", None)
    post_only = bool(getattr(order, "post_only", False))
    direction = None
    if kind in ("STOP_LIMIT", "TAKE_PROFIT_LIMIT"):
        # a stop buys on a rise and sells on a fall; a take-profit the other way round
        rising = (kind == "STOP_LIMIT") == (order.side is Side.BUY)
        direction, kind = ("STOP_UP" if rising else "STOP_DOWN"), "STOP_LIMIT"
    elif kind not in ("MARKET", "LIMIT"):
        raise ExecutionError(
            f"order_type={kind}: Coinbase Advanced Trade takes MARKET, LIMIT, STOP_LIMIT and "
            "TAKE_PROFIT_LIMIT"
        )
    return CoinbaseNewOrder(
        product_id=product,
        side=order.side,
        kind=kind,
        base_size=order.quantity,
        client_order_id=order.client_order_id,
        limit_price=order.limit_price,
        time_in_force=order.time_in_force.value,
        post_only=post_only,
        stop_price=stop,
        stop_direction=direction,
    )


class CoinbaseExecution:
    """Live Coinbase orders (see the module docstring)."""

    def __init__(
        self,
        client: CoinbaseRestClient,
        *,
        max_closed: int = 10_000,
        stop_limit_slippage_bps: int = 50,
    ) -> None:
        self._client = client
        self.stop_limit_slippage_bps = stop_limit_slippage_bps
        self._ticks: dict[str, Decimal] = {}
        self._orders: dict[str, ManagedOrder] = {}
        self._max_closed = max_closed

    @classmethod
    def from_config(cls, ex: ExecutionConfig) -> CoinbaseExecution:
        """Live orders at ``execution.exchange_api_url`` (the simulator's, or
        ``https://api.coinbase.com``), signed with the CDP key from the environment: an
        error naming the missing variable at start."""
        import httpx

        client = CoinbaseRestClient(
            httpx.AsyncClient(timeout=ex.request_timeout_ms / 1000),
            CoinbaseCredentials.from_env(),
            base_url=ex.exchange_api_url,
            rate_limit_per_second=ex.rate_limit_per_second,
            timeout_s=ex.request_timeout_ms / 1000,
        )
        return cls(client, stop_limit_slippage_bps=ex.coinbase_stop_limit_slippage_bps)

    def tracked(self, client_order_id: str) -> ManagedOrder | None:
        """The order with this id, if tracked."""
        return self._orders.get(client_order_id)

    async def submit(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        """Place an approved order; a client order id seen before yields no events."""
        if order.client_order_id in self._orders:
            return []
        if order.list_id is not None and order.order_type is OrderType.STOP_MARKET:
            try:
                order = await self._list_stop_leg(order)
            except (ExecutionError, CoinbaseError) as exc:
                managed = ManagedOrder(order, venue=VENUE)
                self._orders[order.client_order_id] = managed
                return [managed.reject(f"stop-loss leg as STOP_LIMIT: {exc}", now_ns)]
        managed = ManagedOrder(order, venue=VENUE)
        self._orders[order.client_order_id] = managed
        try:
            request = coinbase_order(order)
            request.configuration()
        except ExecutionError as exc:
            return [managed.reject(str(exc), now_ns)]
        try:
            payload = await self._client.create_order(request)
        except CoinbaseError as exc:
            return [managed.reject(f"coinbase {exc.error}: {exc.message}", now_ns)]
        return self._apply(managed, payload, now_ns)

    async def _list_stop_leg(self, order: OrderRequest) -> OrderRequest:
        """An OCO / bracket stop-loss leg as a STOP_LIMIT (see the module docstring)."""
        product = split_instrument(order.instrument)[1]
        tick = self._ticks.get(product)
        if tick is None:
            raw = (await self._client.get_product(product)).get("price_increment")
            try:
                tick = Decimal(str(raw))
            except ArithmeticError:
                tick = Decimal(0)
            if not tick.is_finite() or tick <= 0:
                raise ExecutionError(f"product {product}: price_increment={raw!r}")
            self._ticks[product] = tick
        return protective_stop_limit(order, tick, self.stop_limit_slippage_bps)

    async def cancel(self, client_order_id: str, now_ns: int) -> list[OrderEvent]:
        """Cancel an open order; the events that follow from the venue's state after it."""
        managed = self._orders.get(client_order_id)
        if managed is None:
            raise UnknownOrderError(client_order_id)
        if managed.venue_order_id is None:
            return await self.refresh(client_order_id, now_ns)
        try:
            (result,) = await self._client.cancel_orders([managed.venue_order_id])
        except TransientError:
            result = {}  # outcome unknown: the query below says what happened
        events = await self.refresh(client_order_id, now_ns)
        if result and not result.get("success") and managed.is_open:
            raise ExecutionError(
                f"order {client_order_id!r}: cancel refused ({result.get('failure_reason')})"
            )
        return events

    async def amend(
        self, managed: ManagedOrder, price: Decimal, quantity: Decimal, now_ns: int
    ) -> list[OrderEvent]:
        """Edit an open GTC LIMIT order (``orders/edit``): the ``amended`` event, then the
        events that follow from the order as queried after it. Raises
        :class:`AmendRejectedError` naming why (not GTC, not acknowledged yet, refused)."""
        coid, req = managed.client_order_id, managed.request
        if req.time_in_force is not TimeInForce.GTC:
            raise AmendRejectedError(
                coid,
                f"time_in_force={req.time_in_force.value}: Coinbase edits GTC limit orders only",
            )
        if managed.venue_order_id is None:
            raise AmendRejectedError(coid, "not acknowledged by the venue yet")
        try:
            payload = await self._client.edit_order(managed.venue_order_id, price, quantity)
        except CoinbaseError as exc:
            raise AmendRejectedError(coid, f"coinbase {exc.error}: {exc.message}") from None
        answer = venue_order_from_coinbase(payload)
        events: list[OrderEvent] = []
        if answer.status is not OrderStatus.CANCELLED:
            events.append(managed.amend(price, quantity, now_ns, now_ns))
        return events + self._apply(managed, payload, now_ns)

    async def refresh(self, client_order_id: str, now_ns: int) -> list[OrderEvent]:
        """Query the venue for a tracked order; events that catch up with it."""
        managed = self._orders.get(client_order_id)
        if managed is None:
            raise UnknownOrderError(client_order_id)
        payload = await self._lookup(managed)
        if payload is None:
            if managed.status is OrderStatus.NEW:
                return [managed.reject("not found at venue", now_ns)]
            return []
        return self._apply(managed, payload, now_ns)

    async def catch_up(self, now_ns: int) -> list[OrderEvent]:
        """Query every open order the venue has acknowledged (the polling fallback: this
        build reads no Coinbase user channel); orders still NEW are left to :meth:`submit`."""
        events: list[OrderEvent] = []
        for coid, managed in list(self._orders.items()):
            if managed.is_open and managed.status is not OrderStatus.NEW:
                events += await self.refresh(coid, now_ns)
        return events

    async def reconcile(
        self, local: dict[str, ManagedOrder] | None = None, *, now_ns: int
    ) -> ReconcileResult:
        """On start: bring ``local`` (default: the tracked orders; e.g. rebuilt from the
        topics with :func:`~algostream.execution.reconcile.rebuild_local`) in line with
        the venue. Venue orders nobody tracks are listed in ``unknown_locally``."""
        if local is not None:
            self._orders.update(local)
        orders = self._orders
        products = sorted({split_instrument(o.request.instrument)[1] for o in orders.values()})
        listed = await self._client.list_orders(product_ids=products or None)
        venue: dict[str, VenueOrder] = {}
        for raw in listed:
            v = venue_order_from_coinbase(raw)
            venue.setdefault(v.client_order_id, v)  # the newest first
        missing = [c for c, o in orders.items() if o.is_open and c not in venue]
        return reconcile_orders(orders, venue, now_ns, missing=missing)

    async def _lookup(self, managed: ManagedOrder) -> dict[str, Any] | None:
        if managed.venue_order_id is not None:
            return await self._client.get_order(managed.venue_order_id)
        product = split_instrument(managed.request.instrument)[1]
        return await self._client.find_by_client_order_id(managed.client_order_id, product)

    def _apply(
        self, managed: ManagedOrder, payload: dict[str, Any], now_ns: int
    ) -> list[OrderEvent]:
        venue = venue_order_from_coinbase(payload)
        events = events_to_match(managed, venue, now_ns, ts_init=now_ns)
        closed = [c for c, o in self._orders.items() if not o.is_open]
        for coid in closed[: max(0, len(closed) - self._max_closed)]:
            del self._orders[coid]
        return events
