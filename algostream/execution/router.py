"""ExecutionRouter: approved ``OrderRequest`` in, ``OrderEvent``s out, paper or Binance.

With a :class:`PaperBroker` the router is synchronous underneath (fills against the
latest book it was fed via :meth:`on_book_top`). With a :class:`BinanceRestClient` it
places the order once (see the client's retry rules), turns the venue's answer into
lifecycle events, and reports every definite refusal (filters, balance, auth, rate limit,
clock) as a REJECTED event with the venue's code and message. Only a genuinely unknown
outcome raises :class:`OrderStatusUnknownError`; the order then stays tracked as NEW and
:meth:`refresh` reconciles it later.

Live order updates come from the user data stream
(:class:`~algostream.execution.user_stream.UserDataStream`): feed its events to
:meth:`on_user_event`, and call :meth:`catch_up` when it (re)connects, or as the polling
fallback while it is down. A report or query the router has already gone past changes
nothing, so the stream, the REST answers and the catch-up can arrive in any order.

From a Faust agent::

    router = ExecutionRouter.from_config(settings.execution, http=httpx.AsyncClient())

    @app.agent(orders_approved)
    async def execute(stream):
        async for order in stream:
            for event in await router.submit(order, now_ns=time.time_ns()):
                await orders_events.send(key=event.key, value=event)
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from algostream.config import ExecutionConfig
from algostream.execution.binance_client import BinanceRestClient, NewOco, NewOrder
from algostream.execution.coinbase_orders import CoinbaseExecution, coinbase_order
from algostream.execution.errors import (
    AmendRejectedError,
    BinanceError,
    CoinbaseError,
    ExecutionError,
    OrderStatusUnknownError,
    UnknownOrderError,
)
from algostream.execution.futures_paper import FundingPayment, FuturesPaperBroker
from algostream.execution.futures_venue import PositionCheck, PositionWatch
from algostream.execution.list_emulation import Action, Cancel, ListEmulator
from algostream.execution.order_lists import OrderLists
from algostream.execution.order_lists import exits as order_list_exits
from algostream.execution.orders import ManagedOrder
from algostream.execution.paper import PaperBroker
from algostream.execution.reconcile import BINANCE_STATUS, VenueOrder, events_to_match
from algostream.execution.usdm_client import UsdmNewOrder, UsdmRestClient, venue_order_from_usdm
from algostream.execution.usdm_stream import (
    ACCOUNT_UPDATE,
    ORDER_UPDATE,
    VENUE_CLOSE_PREFIXES,
    AccountUpdate,
    as_report,
    check_event,
    parse_account_update,
    user_event_dead_letter,
)
from algostream.model.enums import OrderAction, OrderStatus, OrderType, Side
from algostream.model.ids import split_instrument
from algostream.model.records import (
    BookTop,
    DeadLetter,
    MarkPrice,
    OrderEvent,
    OrderRequest,
    TradeTick,
)

_MS = 1_000_000
log = logging.getLogger(__name__)


class ExecutionRouter:
    """Routes approved orders to the paper broker or to Binance (exactly one is given).

    Futures (``BINANCE_USDM:*``): ``futures=`` a :class:`FuturesPaperBroker` (its paper
    broker fills; its account refuses and tracks positions and funding), or ``binance=``
    a :class:`UsdmRestClient` (``/fapi/v1/order``, ``reduceOnly``)."""

    def __init__(
        self,
        *,
        paper: PaperBroker | None = None,
        binance: BinanceRestClient | None = None,
        futures: FuturesPaperBroker | None = None,
        coinbase: CoinbaseExecution | None = None,
        venue: str = "BINANCE",
        max_closed: int = 10_000,
        account: str = "paper",
    ) -> None:
        if futures is not None:
            if paper is not None and paper is not futures.broker:
                raise ExecutionError("ExecutionRouter: futures= carries its own paper broker")
            paper = futures.broker
        if [paper, binance, coinbase].count(None) != 2:
            raise ExecutionError(
                "ExecutionRouter: give exactly one of paper=, binance= or coinbase="
            )
        self._coinbase = coinbase
        self._futures = futures
        self._paper = paper
        #: paper: OCO / bracket lists over the broker (the futures one checks each leg)
        self._lists = None if paper is None else OrderLists(paper, venue=futures)
        #: live: OCO / bracket lists from the orders' events (native OCO: Binance spot)
        native = binance is not None and not isinstance(binance, UsdmRestClient)
        self._emulator = ListEmulator(native_oco=native)
        self._queued: list[Action] = []
        self._binance = binance
        self._usdm = isinstance(binance, UsdmRestClient)
        self._venue = venue
        #: the account of orders the venue places itself (liquidations)
        self._account = account
        self._orders: dict[str, ManagedOrder] = {}
        self._max_closed = max_closed
        #: (client order id, trade id) of the user stream's trades applied (bounded)
        self._trades: OrderedDict[tuple[str, str], None] = OrderedDict()
        #: the newest ``ACCOUNT_UPDATE`` of the USD-M user data stream
        self.venue_account: AccountUpdate | None = None
        #: USD-M live: the ledger's positions, compared with each ``ACCOUNT_UPDATE``
        #: (set after the start-up reconciliation); its verdicts in :meth:`take_position_checks`
        self.positions: PositionWatch | None = None
        self._checks: list[PositionCheck] = []

    @classmethod
    def from_config(
        cls, config: ExecutionConfig, http: httpx.AsyncClient | None = None, **client_overrides: Any
    ) -> ExecutionRouter:
        """Paper broker when ``paper_trading`` is true, else a Binance client on ``http``."""
        if config.paper_trading:
            return cls(paper=PaperBroker(config.fee_rate, config.paper_latency_ms * _MS))
        if http is None:
            raise ExecutionError("execution.paper_trading=false: an httpx.AsyncClient is needed")
        return cls(binance=BinanceRestClient.from_config(http, config, **client_overrides))

    @property
    def paper_trading(self) -> bool:
        return self._paper is not None

    @property
    def paper(self) -> PaperBroker | None:
        return self._paper

    @property
    def futures(self) -> FuturesPaperBroker | None:
        return self._futures

    @property
    def lists(self) -> OrderLists | None:
        """Paper trading: the OCO / bracket lists over the broker."""
        return self._lists

    def on_book_top(self, top: BookTop) -> list[OrderEvent]:
        """Feed a book to the paper broker (fills resting orders); no-op when live."""
        return self._lists.on_book_top(top) if self._lists is not None else []

    def on_trade(self, trade: TradeTick) -> list[OrderEvent]:
        """Feed a trade to the paper broker; no-op when live."""
        return self._lists.on_trade(trade) if self._lists is not None else []

    def on_mark_price(self, mark: MarkPrice) -> list[FundingPayment]:
        """Futures paper trading: the mark and its funding (the venue charges it live)."""
        return self._futures.on_mark_price(mark) if self._futures is not None else []

    def take_liquidations(self) -> list[OrderEvent]:
        """Futures paper trading: the positions the last marks liquidated (their events)."""
        return self._futures.take_liquidations() if self._futures is not None else []

    async def submit(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        """Execute an approved order; a client order id seen before yields no events.
        An OCO or bracket (``order_list``) becomes the orders of
        :class:`~algostream.execution.list_emulation.ListEmulator` (paper: the broker's
        :class:`~algostream.execution.order_lists.OrderLists`)."""
        if self._lists is not None:
            return self._lists.submit(order, now_ns)
        if order.action is not OrderAction.NEW:
            return await self._amend_request(order, now_ns)
        if order.order_list is not None:
            if self._emulator.knows(order.client_order_id):
                return []
            refused = self._unplaceable_exits(order, now_ns)
            if refused:
                return refused
            return await self._run(self._emulator.on_submit(order), now_ns)
        return await self._after(await self._submit_one(order, now_ns), now_ns)

    async def _amend_request(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        """A strategy's CANCEL (:meth:`cancel` of its target) or REPLACE (:meth:`replace`:
        cancel, then the request placed under its own client order id). A request seen
        before changes nothing; one the venue refuses is REJECTED naming why."""
        target, coid = order.target_id, order.client_order_id
        assert target is not None
        if coid in self._orders or self.tracked(coid) is not None:
            return []
        if order.action is OrderAction.REPLACE:  # the new order is a plain one at the venue
            new = order.model_copy(update={"action": OrderAction.NEW, "target_id": None})
            return await self.replace(target, new, now_ns)
        old = self.tracked(target)
        if old is not None and old.status is OrderStatus.CANCELLED:
            return []
        refused = ManagedOrder(order, venue=self._venue)
        if old is None or not old.is_open:
            self._orders[coid] = refused
            state = "unknown" if old is None else old.status.value
            return [refused.reject(f"CANCEL of {target!r}: the order is {state}", now_ns)]
        try:
            return await self.cancel(target, now_ns)
        except (BinanceError, CoinbaseError, UnknownOrderError) as exc:
            self._orders[coid] = refused
            return [refused.reject(f"CANCEL of {target!r} refused: {exc}", now_ns)]

    async def _submit_one(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        if self._coinbase is not None:
            return await self._coinbase.submit(order, now_ns)
        assert self._binance is not None
        if order.client_order_id in self._orders:
            return []
        managed = self._managed(order)
        self._orders[order.client_order_id] = managed
        try:
            working = (
                self._binance.working_type if isinstance(self._binance, UsdmRestClient) else None
            )
            payload = await self._binance.new_order(
                _new_order(order, usdm=self._usdm, working_type=working)
            )
        except BinanceError as exc:
            return [managed.reject(f"binance code {exc.code}: {exc.message}", now_ns)]
        return self._apply(managed, payload, now_ns)

    async def _submit_oco(
        self, owner: OrderRequest, tp: OrderRequest, sl: OrderRequest, now_ns: int
    ) -> list[OrderEvent]:
        """Binance spot's native OCO (``POST /api/v3/orderList/oco``, list client order
        id = ``owner``'s): its two legs are tracked as orders of their own; the venue
        cancels one when the other is activated (reported as EXPIRED)."""
        assert self._binance is not None
        if tp.client_order_id in self._orders:
            return []
        legs = [self._managed(tp), self._managed(sl)]
        for managed in legs:
            self._orders[managed.client_order_id] = managed
        assert tp.limit_price is not None and sl.stop_price is not None
        oco = NewOco(
            split_instrument(tp.instrument)[1], tp.side, tp.quantity,
            owner.client_order_id, tp.client_order_id, tp.limit_price,
            sl.client_order_id, sl.stop_price,
        )  # fmt: skip
        try:
            payloads = await self._binance.new_oco(oco)
        except BinanceError as exc:
            why = f"binance code {exc.code}: {exc.message}"
            return [m.reject(why, now_ns) for m in legs]
        events: list[OrderEvent] = []
        for managed, payload in zip(legs, payloads, strict=True):
            events += self._apply(managed, payload, now_ns)
        return events

    # ------------------------------------------------------------------ order lists, live

    def _unplaceable_exits(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        """Coinbase takes no STOP_MARKET (a list's stop-loss leg goes out as a STOP_LIMIT:
        :func:`~algostream.execution.coinbase_orders.protective_stop_limit`); a list whose
        other exits it cannot take is refused
        before anything is placed (an OCO's legs, or a bracket's entry, REJECTED naming
        why), never changed to a type it takes."""
        if self._coinbase is None:
            return []
        side = order.side if order.order_list == "OCO" else order.side.opposite()
        legs = order_list_exits(order, side)
        for leg in legs:
            if leg.order_type is OrderType.STOP_MARKET:  # placed as a STOP_LIMIT (README)
                continue
            try:
                coinbase_order(leg).configuration()
            except ExecutionError as exc:
                why = f"order_list={order.order_list}: exit {leg.client_order_id}: {exc}"
                if order.order_list == "BRACKET":
                    return [self._managed(order).reject(why, now_ns)]
                return [self._managed(x).reject(why, now_ns) for x in legs]
        return []

    async def _run(self, actions: list[Action], now_ns: int) -> list[OrderEvent]:
        """Carry out the list emulator's actions, then what follows from their events."""
        events: list[OrderEvent] = []
        queue = list(actions)
        while queue:  # one at a time: each action's events may end its list
            action = queue.pop(0)
            if not self._emulator.still_wanted(action):
                continue
            done: list[OrderEvent] = []
            if isinstance(action, Cancel):
                done = await self._cancel_leg(action, now_ns)
            else:
                legs = action.oco or (action.request,)
                try:
                    if action.oco is not None:
                        done = await self._submit_oco(action.request, *action.oco, now_ns)
                    else:
                        done = await self._submit_one(action.request, now_ns)
                except OrderStatusUnknownError:  # tracked as NEW: the venue says what it has
                    for leg in legs:
                        done += await self._refresh_raw(leg.client_order_id, now_ns)
            events += done
            queue += self._emulator.on_events(done, self.tracked)
        return events

    async def _after(self, events: list[OrderEvent], now_ns: int) -> list[OrderEvent]:
        """``events``, then the events of what the lists do about them."""
        actions = self._emulator.on_events(events, self.tracked) if self._lists is None else []
        return events + (await self._run(actions, now_ns) if actions else [])

    async def _cancel_leg(self, action: Cancel, now_ns: int) -> list[OrderEvent]:
        try:
            events = await self._cancel_raw(action.client_order_id, now_ns)
            return [  # the cancel says why: the list's rule, not just "at venue"
                e.model_copy(update={"reason": action.reason})
                if e.status is OrderStatus.CANCELLED and e.client_order_id == action.client_order_id
                else e
                for e in events
            ]
        except (BinanceError, CoinbaseError, ExecutionError) as exc:
            # filled or gone meanwhile: the venue's state says which
            log.warning("OCO cancel of %s refused: %s", action.client_order_id, exc)
            return await self._refresh_raw(action.client_order_id, now_ns)

    async def react(self, now_ns: int) -> list[OrderEvent]:
        """Carry out what the lists queued from :meth:`on_user_event` (sync) reports."""
        actions, self._queued = self._queued, []
        return await self._run(actions, now_ns)

    async def adopt(self, orders: Mapping[str, ManagedOrder], now_ns: int) -> list[OrderEvent]:
        """After a restart: track ``orders`` (rebuilt from the topics and reconciled with
        the venue, legs included) and rebuild the OCO / bracket lists from them; returns
        the events of finishing what the restart interrupted (exits of a filled entry
        never placed, the other leg of an emulated OCO that filled)."""
        if self._lists is not None:
            return []
        if self._coinbase is not None:
            for coid, order in orders.items():
                self._coinbase._orders.setdefault(coid, order)
            tracked = dict(self._coinbase._orders)
        else:
            for coid, order in orders.items():
                self._orders.setdefault(coid, order)
            tracked = dict(self._orders)
        return await self._run(self._emulator.recover(tracked), now_ns)

    async def cancel(self, client_order_id: str, now_ns: int) -> list[OrderEvent]:
        """Cancel an open order; returns the events that follow from the venue's answer."""
        events = await self._cancel_raw(client_order_id, now_ns)
        return events if self._lists is not None else await self._after(events, now_ns)

    async def _cancel_raw(self, client_order_id: str, now_ns: int) -> list[OrderEvent]:
        if self._paper is not None:
            return self._paper.cancel(client_order_id, now_ns)
        if self._coinbase is not None:
            return await self._coinbase.cancel(client_order_id, now_ns)
        assert self._binance is not None
        managed = self._orders.get(client_order_id)
        if managed is None:
            raise UnknownOrderError(client_order_id)
        symbol = split_instrument(managed.request.instrument)[1]
        payload = await self._binance.cancel_order(symbol, client_order_id)
        return self._apply(managed, payload, now_ns)

    async def replace(
        self, client_order_id: str, replacement: OrderRequest, now_ns: int
    ) -> list[OrderEvent]:
        """Cancel-replace: cancel an open order, then submit ``replacement``; when the old
        one is not CANCELLED after the venue's answer (filled first, unknown) the
        replacement is REJECTED naming why, never placed beside it."""
        if self._lists is not None:
            return self._lists.cancel_replace(client_order_id, replacement, now_ns)
        managed = self.tracked(client_order_id)
        refused = self._managed(replacement)
        if managed is None or not managed.is_open:
            state = "unknown" if managed is None else managed.status.value
            why = f"cancel-replace: {client_order_id!r} is {state}, not replaced"
            return [refused.reject(why, now_ns)]
        try:
            events = await self.cancel(client_order_id, now_ns)
        except (BinanceError, CoinbaseError) as exc:
            events = await self.refresh(client_order_id, now_ns)
            why = f"cancel-replace: cancel of {client_order_id!r} refused ({exc.message})"
            return [*events, refused.reject(why, now_ns)]
        if managed.status is not OrderStatus.CANCELLED:
            why = f"cancel-replace: {client_order_id!r} became {managed.status.value} first"
            return [*events, refused.reject(why, now_ns)]
        return events + await self.submit(replacement, now_ns)

    async def amend(
        self,
        client_order_id: str,
        now_ns: int,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> list[OrderEvent]:
        """Edit an open LIMIT order in place (it keeps its ids and, on Coinbase, its
        queue position rules): USD-M ``PUT /fapi/v1/order``, Coinbase ``orders/edit``.
        Returns the ``amended`` event and what follows from the venue's answer (a new
        price that crosses fills; a quantity at or below what has filled cancels).
        Raises :class:`AmendRejectedError` naming why when the edit is refused: not an
        open LIMIT order, a venue without edits (Binance spot, paper: use
        :meth:`replace`), or the venue's refusal; the order is then unchanged."""
        managed = self.tracked(client_order_id)
        if managed is None or not managed.is_open:
            state = "unknown" if managed is None else managed.status.value
            raise AmendRejectedError(client_order_id, f"the order is {state}")
        req = managed.request
        if req.order_type is not OrderType.LIMIT:
            raise AmendRejectedError(
                client_order_id,
                f"order_type={req.order_type.value}: only a LIMIT order can be edited",
            )
        assert req.limit_price is not None
        new_price = req.limit_price if price is None else price
        new_qty = req.quantity if quantity is None else quantity
        if self._coinbase is not None:
            return await self._coinbase.amend(managed, new_price, new_qty, now_ns)
        if self._binance is None or not self._usdm:
            venue = "paper" if self._paper is not None else f"{self._venue} spot"
            raise AmendRejectedError(
                client_order_id, f"{venue} has no order edit here: use replace()"
            )
        assert isinstance(self._binance, UsdmRestClient)
        symbol = split_instrument(req.instrument)[1]
        try:
            payload = await self._binance.modify_order(
                symbol, client_order_id, req.side, new_qty, new_price
            )
        except BinanceError as exc:
            raise AmendRejectedError(
                client_order_id, f"binance code {exc.code}: {exc.message}"
            ) from None
        answer = venue_order_from_usdm(payload)
        events: list[OrderEvent] = []
        if answer.status is not OrderStatus.CANCELLED:
            events.append(managed.amend(new_price, new_qty, now_ns, now_ns))
        return events + self._apply(managed, payload, now_ns)

    async def refresh(self, client_order_id: str, now_ns: int) -> list[OrderEvent]:
        """Query the venue for a tracked order and emit the events that catch up with it."""
        events = await self._refresh_raw(client_order_id, now_ns)
        return events if self._lists is not None else await self._after(events, now_ns)

    async def _refresh_raw(self, client_order_id: str, now_ns: int) -> list[OrderEvent]:
        if self._paper is not None:
            return []
        if self._coinbase is not None:
            return await self._coinbase.refresh(client_order_id, now_ns)
        assert self._binance is not None
        managed = self._orders.get(client_order_id)
        if managed is None and f"{client_order_id}-tp" in self._orders:  # an OCO: its legs
            legs = [f"{client_order_id}-tp", f"{client_order_id}-sl"]
            return [ev for leg in legs for ev in await self._refresh_raw(leg, now_ns)]
        if managed is None:
            raise UnknownOrderError(client_order_id)
        symbol = split_instrument(managed.request.instrument)[1]
        payload = await self._binance.query_order(symbol, client_order_id)
        if payload is None:
            if managed.status.value == "NEW":
                return [managed.reject("not found at venue", now_ns)]
            return []
        return self._apply(managed, payload, now_ns)

    def on_stream_event(
        self, event: dict[str, Any], now_ns: int, *, futures: bool
    ) -> tuple[list[OrderEvent], DeadLetter | None]:
        """One event as the user data stream delivered it: its order events, or the
        ``dlq`` record of an event type the stream (spot or USD-M) does not know or a
        field that does not parse (the stream goes on)."""
        try:
            check_event(event, futures=futures)
            return self.on_user_event(event, now_ns), None
        except (ExecutionError, KeyError, ValueError, TypeError, ArithmeticError) as exc:
            venue = "binance_usdm" if futures else "binance"
            return [], user_event_dead_letter(event, exc, venue=venue, now_ns=now_ns)

    def on_user_event(self, event: dict[str, Any], now_ns: int) -> list[OrderEvent]:
        """One user data stream event: ``executionReport`` (spot) or
        ``ORDER_TRADE_UPDATE`` (USD-M) moves a tracked order; ``ACCOUNT_UPDATE`` keeps
        the venue's positions and balances (:attr:`venue_account`)."""
        if self._binance is None:
            return []
        kind = event.get("e")
        if kind == "executionReport":
            events = self.on_execution_report(event, now_ns)
        elif kind == ORDER_UPDATE:
            report = as_report(event)
            if str(report["c"]).startswith(VENUE_CLOSE_PREFIXES):
                self._track_venue_close(report)
            events = self.on_execution_report(report, now_ns)
        elif kind == ACCOUNT_UPDATE:
            self.venue_account = update = parse_account_update(event)
            if self.positions is None:
                return []
            busy = {o.request.instrument for o in self._orders.values() if o.is_open}
            check = self.positions.on_account_update(update, busy, now_ns)
            if check.diffs or check.lifted:
                self._checks.append(check)
            return check.settlement.events  # adoptions (POSITION_ADOPTED)
        else:
            return []
        self._queued += self._emulator.on_events(events, self.tracked)  # see react()
        return events

    def take_position_checks(self) -> list[PositionCheck]:
        """The ``ACCOUNT_UPDATE`` comparisons that found a difference or lifted a halt
        since the last call (the worker logs them and tells the risk gate)."""
        checks, self._checks = self._checks, []
        return checks

    def _watched(self, events: list[OrderEvent]) -> list[OrderEvent]:
        if self.positions is not None:
            self.positions.apply(events)
        return events

    def _track_venue_close(self, report: dict[str, Any]) -> None:
        """An order the venue placed itself (``autoclose-*``: a liquidation, ``adl_autoclose``:
        auto-deleveraging) is tracked from its first update, so its fills reach
        ``orders.events`` (reason ``LIQUIDATED``) and the ledger like ours."""
        coid = str(report["c"])
        if coid in self._orders or not self._usdm:
            return
        now = int(report.get("T") or report.get("E") or 0) * _MS
        request = OrderRequest(
            instrument=f"BINANCE_USDM:{report['s']}", ts_event=now, ts_init=now,
            record_id=f"venue-{coid}"[:128], lineage_id="venue", account=self._account,
            client_order_id=coid[:36], strategy="liquidation", side=Side(str(report["S"])),
            order_type=OrderType.MARKET, quantity=Decimal(str(report["q"])), reduce_only=True,
        )  # fmt: skip
        self._orders[coid] = self._managed(request)

    def on_execution_report(self, report: dict[str, Any], now_ns: int) -> list[OrderEvent]:
        """Events for one ``executionReport`` (an exact fill for a TRADE; stale: none).
        A trade id seen before (a replayed frame after a reconnect) changes nothing."""
        status = str(report["X"])
        coid = str(report.get("C") or report["c"]) if status == "CANCELED" else str(report["c"])
        managed = self._orders.get(coid)
        executed = Decimal(report["z"])
        if managed is None or not managed.is_open or executed < managed.cum_qty:
            return []
        if report["x"] == "TRADE" and report.get("t") is not None:
            trade = (coid, str(report["t"]))
            if trade in self._trades:
                return []
            self._trades[trade] = None
            while len(self._trades) > self._max_closed:
                self._trades.popitem(last=False)
        ts = int(report.get("T") or report["E"]) * _MS
        events: list[OrderEvent] = []
        last_qty = Decimal(report["l"])
        if report["x"] == "TRADE" and last_qty > 0 and managed.cum_qty + last_qty == executed:
            if managed.status is OrderStatus.NEW:
                events.append(managed.accept(ts, str(report["i"]), now_ns))
            fee_currency = str(report.get("N") or "")
            fee = Decimal(report.get("n") or "0")
            price = Decimal(report["L"])
            liquidated = coid.startswith(VENUE_CLOSE_PREFIXES)
            reason = f"LIQUIDATED: the venue's order {coid}" if liquidated else ""
            events.append(
                managed.fill(
                    price, last_qty, fee, ts, ts_init=now_ns, fee_currency=fee_currency,
                    reason=reason,
                )
            )  # fmt: skip
        venue = VenueOrder(
            coid, str(report["i"]), BINANCE_STATUS[status], executed, Decimal(report["Z"])
        )
        events += events_to_match(managed, venue, ts, ts_init=now_ns)
        self._forget_closed()
        return self._watched(events)

    async def catch_up(self, now_ns: int) -> list[OrderEvent]:
        """Query the venue for every open order it has acknowledged (after a reconnect of
        the user data stream, or as its polling fallback); orders still NEW are in flight
        and left to :meth:`submit`."""
        if self._coinbase is not None:
            return await self._after(await self._coinbase.catch_up(now_ns), now_ns)
        events: list[OrderEvent] = []
        for coid, managed in list(self._orders.items()):
            if managed.is_open and managed.status is not OrderStatus.NEW:
                events += await self._refresh_raw(coid, now_ns)
        return await self._after(events, now_ns)

    def tracked(self, client_order_id: str) -> ManagedOrder | None:
        """The live order with this id, if tracked (paper: ask the broker)."""
        if self._paper is not None:
            return self._paper.get(client_order_id)
        if self._coinbase is not None:
            return self._coinbase.tracked(client_order_id)
        return self._orders.get(client_order_id)

    def _managed(self, order: OrderRequest) -> ManagedOrder:
        """The tracked order; USD-M: its events carry the instrument's venue
        (``BINANCE_USDM``), as the market data does, never the spot ``BINANCE``."""
        return ManagedOrder(order, venue=self.venue_of(order.instrument))

    def venue_of(self, instrument: str) -> str:
        """The ``venue`` of this router's events on ``instrument``."""
        return split_instrument(instrument)[0] if self._usdm else self._venue

    def _apply(
        self, managed: ManagedOrder, payload: dict[str, Any], now_ns: int
    ) -> list[OrderEvent]:
        venue = venue_order_from_usdm(payload) if self._usdm else VenueOrder.from_binance(payload)
        ts_event = venue.ts_ms * _MS if venue.ts_ms is not None else now_ns
        events = events_to_match(managed, venue, ts_event, ts_init=now_ns)
        self._forget_closed()
        return self._watched(events)

    def _forget_closed(self) -> None:
        closed = [c for c, o in self._orders.items() if not o.is_open]
        for coid in closed[: max(0, len(closed) - self._max_closed)]:
            del self._orders[coid]


def _new_order(
    order: OrderRequest, *, usdm: bool = False, working_type: str | None = None
) -> NewOrder:
    limit = order.order_type.has_limit_price
    new = NewOrder(
        symbol=split_instrument(order.instrument)[1],
        side=order.side,
        order_type=order.order_type,
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        price=order.limit_price if limit else None,
        time_in_force=order.time_in_force if limit else None,
        stop_price=order.stop_price,
        post_only=order.post_only,
    )
    if not usdm:
        return new
    return UsdmNewOrder(
        **{f.name: getattr(new, f.name) for f in dataclasses.fields(new)},
        reduce_only=order.reduce_only,
        working_type=working_type if order.stop_price is not None else None,
    )
