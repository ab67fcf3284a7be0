"""Execution agent: approved orders -> venue -> ``orders.events``.

Paper trading (the default) fills against the live book from ``book.top`` and trades from
``md.trades`` with :class:`~algostream.execution.paper.PaperBroker`; with
``paper_trading: false`` orders go to the exchange through the signed REST router.
A client order id is executed at most once: the ``exec-orders`` table remembers every id
sent (and survives restarts), on top of the broker's own memory and the venue's
``newClientOrderId`` de-duplication. With fencing (:mod:`streams.fencing`) both tables are
the account state's, written in the account's transaction with the order events.

Paper trading takes each approval in-process where the risk gate runs in the same worker
(:mod:`streams.stage`; ``execution.in_process: false`` turns it off): no Kafka hop between
the gate and the fill. ``orders.approved`` is read from the topic too, and what was sent
is skipped (the ``exec-orders`` table). The paper broker's book tops and trades come
in-process where the worker makes them (``single``), else from the worker's tap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import faust
import httpx
import structlog

from algostream.backtest.source import read_range
from algostream.config import Settings
from algostream.execution.binance_client import BinanceRestClient
from algostream.execution.coinbase_orders import CoinbaseExecution
from algostream.execution.errors import OrderStatusUnknownError
from algostream.execution.futures import PositionDiscrepancy
from algostream.execution.futures_paper import FuturesPaperBroker
from algostream.execution.futures_venue import (
    PositionSettlement,
    PositionWatch,
    halt_record,
    is_futures,
    paper_futures,
    reconcile_positions_on_start,
    settle_positions,
)
from algostream.execution.orders import ManagedOrder
from algostream.execution.paper import PaperBroker
from algostream.execution.reconcile import VenueOrder, rebuild_local, reconcile_orders
from algostream.execution.router import ExecutionRouter
from algostream.execution.usdm_client import UsdmRestClient, venue_order_from_usdm
from algostream.execution.user_stream import UserDataStream, stream_url_for
from algostream.model.enums import OrderAction, OrderStatus
from algostream.model.errors import RecordDecodeError
from algostream.model.ids import split_instrument
from algostream.model.records import (
    BookTop,
    DeadLetter,
    OrderEvent,
    OrderRequest,
    Record,
    TradeTick,
)
from algostream.observability import metrics
from streams import fencing, futures
from streams.edge import Edge
from streams.stage import Input, Read, Stage

R = TypeVar("R", bound=Record)

#: its stages decide for the account: the worker fences them (:mod:`streams.fencing`)
ACCOUNT_STAGES = True

log = structlog.get_logger("algostream.execution")

#: records read back from the end of each ``book.top`` partition for the paper books on start
TOPS_TAIL = 500


class ExecutionShell:
    def __init__(self, app: faust.App, edge: Edge, settings: Settings) -> None:
        self.settings = settings
        self.state = fencing.trading_table(app, edge, "exec-state")
        self.sent = fencing.trading_table(app, edge, "exec-orders")
        self._broker: PaperBroker | None = None
        #: BINANCE_USDM paper trading: the paper broker under a futures account
        self._futures: FuturesPaperBroker | None = None
        self.is_futures = is_futures(settings)
        #: live orders on Coinbase Advanced Trade (market_data.exchange = "coinbase")
        self.is_coinbase = settings.market_data.exchange == "coinbase"
        self._coinbase: CoinbaseExecution | None = None
        self._router: ExecutionRouter | None = None
        self._client: BinanceRestClient | None = None
        self._user_stream: asyncio.Task[None] | None = None
        self.stream: UserDataStream | None = None
        self.reconciled = False
        #: why live trading is halted (a position mismatch at start; None: it is not);
        #: the risk gate refuses new orders while it is: here only the orders it approved
        #: before it knew (before ``halted_at_ns``) are refused
        self.halted: str | None = None
        self.halted_at_ns = 0
        #: held from a change of the router's orders until its events are produced: the
        #: order submission, the user data stream, the REST catch-up and the paper fills
        #: run concurrently, and without it ``orders.events`` had an OCO leg's CANCELLED
        #: before its ACCEPTED (the stream's fill of the other leg, produced while the
        #: submission still held the leg's acceptance)
        self.order_lock = asyncio.Lock()

    @property
    def router(self) -> ExecutionRouter:
        """Paper broker (default) or the signed Binance REST client."""
        if self._router is None:
            ex = self.settings.execution
            if ex.paper_trading and self.is_futures:
                saved = self.state.get("futures")
                self._futures = paper_futures(self.broker, self.settings, saved)
                self._router = ExecutionRouter(futures=self._futures)
            elif ex.paper_trading:
                self._router = ExecutionRouter(paper=self.broker)
            elif self.is_coinbase:
                self._coinbase = CoinbaseExecution.from_config(ex)
                self._router = ExecutionRouter(coinbase=self._coinbase, venue="COINBASE")
            else:
                http = httpx.AsyncClient(timeout=ex.request_timeout_ms / 1000)
                client = UsdmRestClient if self.is_futures else BinanceRestClient
                self._client = client.from_config(http, ex)
                self._router = ExecutionRouter(
                    binance=self._client, account=self.settings.risk.account
                )
        return self._router

    async def reconcile(self) -> list[OrderEvent]:
        """On start: the orders the topics say are open, against what the venue says.

        Only orders the venue has seen (an event exists, or we recorded sending them) are
        checked; approved orders not yet sent are left to the agent.
        """
        kafka = self.settings.kafka
        requests = _decodable(await read_range(kafka, ["orders.approved"]), OrderRequest)
        events = _decodable(await read_range(kafka, ["orders.events"]), OrderEvent)
        paper = self.settings.execution.paper_trading
        live_venue = "COINBASE" if self.is_coinbase else "BINANCE"
        live_venue = "BINANCE_USDM" if self.is_futures else live_venue
        local = rebuild_local(requests, events, venue="PAPER" if paper else live_venue)
        with_events = {e.client_order_id for e in events}
        mine = {
            c: o
            for c, o in local.items()
            if o.is_open and (c in with_events or self.sent.get(c) is not None)
        }
        venue: dict[str, VenueOrder] = {}
        missing: list[str] = []
        self.router  # noqa: B018 - builds the broker or client
        if self._coinbase is not None:  # Coinbase: its own listing of orders
            for coid, order in mine.items():
                if self.sent.get(coid) is None:
                    self.sent[coid] = order.request.record_id
            done = await self._coinbase.reconcile(mine, now_ns=time.time_ns())
            for problem in done.discrepancies:
                log.error("reconciliation: cannot fix with an event", problem=problem)
            return done.events + await self.router.adopt(mine, time.time_ns())
        for coid, order in mine.items():
            if paper:
                found = self.broker.get(coid)
                view = VenueOrder.from_managed(found) if found is not None else None
            else:
                assert self._client is not None
                symbol = split_instrument(order.request.instrument)[1]
                payload = await self._client.query_order(symbol, coid)
                parse = venue_order_from_usdm if self.is_futures else VenueOrder.from_binance
                view = parse(payload) if payload is not None else None
            if view is None:
                missing.append(coid)
            else:
                venue[coid] = view
        for coid, order in mine.items():  # the venue has seen these: never sent again
            if self.sent.get(coid) is None:
                self.sent[coid] = order.request.record_id
        result = reconcile_orders(mine, venue, time.time_ns(), missing=missing)
        for problem in result.discrepancies:
            log.error("reconciliation: cannot fix with an event", problem=problem)
        if not paper:  # live OCO / bracket lists: rebuilt from these, half-done ones finished
            result.events += await self.router.adopt(mine, time.time_ns())
        log.info("reconciled with the venue", open_orders=len(mine), events=len(result.events))
        adopted: list[OrderEvent] = []
        if self.is_futures and isinstance(self._client, UsdmRestClient):  # positions too
            adopted = await self.reconcile_positions(events + result.events)
        # after the comparison: a restored top can fill a resting order (an event of its own)
        return result.events + adopted + (await self.restore_books() if paper else [])

    async def reconcile_positions(self, events: list[OrderEvent]) -> list[OrderEvent]:
        """USD-M live: the positions the fills make against the venue's; each difference
        is adopted or halts trading (``risk.position_mismatch``; see
        algostream.execution.futures_venue.settle_positions)."""
        assert isinstance(self._client, UsdmRestClient)
        diffs = await reconcile_positions_on_start(self._client, self.settings, events)
        done = settle_positions(diffs, self.settings, time.time_ns())
        _log_diffs(diffs, done, "reconciliation")
        self.halted = done.halt  # each start-up reconciliation decides afresh
        self.halted_at_ns = time.time_ns()
        if done.halt is not None:
            log.error("trading halted: positions differ at the venue", reason=done.halt)
        # while running: each ACCOUNT_UPDATE against the ledger (from these fills on)
        watch = PositionWatch.from_fills(self.settings, events + done.events)
        watch.refused = {d.instrument: d for d in done.refused}
        self.router.positions = watch
        return done.events

    async def position_checks(self, verdict: Callable[[str | None], Awaitable[None]]) -> None:
        """The ``ACCOUNT_UPDATE`` comparisons of the last stream event: logged (WARN:
        instrument, ours, theirs); a new halt or a lifted one goes to the risk gate."""
        for check in self.router.take_position_checks():
            _log_diffs(check.diffs, check.settlement, "account update")
            if check.halt is not None:
                log.error("trading halted: positions differ at the venue", reason=check.halt)
                self.halted, self.halted_at_ns = check.halt, time.time_ns()
                await verdict(check.halt)
            elif check.lifted:
                log.info("positions agree with the venue again: halt lifted")
                self.halted = None
                await verdict(None)

    def start_user_stream(
        self,
        emit: Callable[[list[OrderEvent]], Awaitable[None]],
        dead_letter: Callable[[DeadLetter], Awaitable[None]],
        verdict: Callable[[str | None], Awaitable[None]] | None = None,
    ) -> None:
        """Live: order updates from the user data stream, spot or USD-M (REST catch-up on
        each connect, polling while it is down); see algostream.execution.user_stream.
        An event of a type the stream does not know goes to ``dlq`` naming it."""
        ex = self.settings.execution
        if ex.paper_trading or self._user_stream is not None:
            return
        router, client = self.router, self._client
        if self.is_coinbase:  # no user stream read here: polling
            self._user_stream = asyncio.get_running_loop().create_task(self._poll(emit))
            return
        assert client is not None
        futures = self.is_futures

        async def on_event(event: dict[str, Any]) -> None:
            async with self.order_lock:
                events, letter = router.on_stream_event(event, time.time_ns(), futures=futures)
                await (emit(events) if letter is None else dead_letter(letter))
                await emit(await router.react(time.time_ns()))  # an OCO leg's fill: the other
            if verdict is not None:
                await self.position_checks(verdict)

        async def catch_up() -> None:
            async with self.order_lock:
                await emit(await router.catch_up(time.time_ns()))

        base = ex.user_stream_url or stream_url_for(ex.exchange_api_url)
        if futures and not ex.user_stream_url:
            base += "/fstream"  # the simulator's futures streams (Binance: fstream host)
        self.stream = UserDataStream(
            client,
            base,
            on_event=on_event,
            on_connected=catch_up,
            on_poll=catch_up,
            poll_interval_s=ex.order_poll_interval_ms / 1000,
        )
        self._user_stream = asyncio.get_running_loop().create_task(self.stream.run())

    async def _poll(self, emit: Callable[[list[OrderEvent]], Awaitable[None]]) -> None:
        interval = self.settings.execution.order_poll_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.order_lock:
                    await emit(await self.router.catch_up(time.time_ns()))
            except Exception as exc:
                log.warning("order poll failed", error=str(exc))

    async def restore_books(self) -> list[OrderEvent]:
        """Give the paper broker each instrument's latest top from the tail of ``book.top``.

        Its books are not in its saved state (they change with every top), so a restarted
        worker had none until the next top arrived, and a MARKET order approved in between
        was rejected ("no book yet"): seen in the kill -9 test, where no new top came.
        """
        tail = _decodable(
            await read_range(self.settings.kafka, ["book.top"], last=TOPS_TAIL), BookTop
        )
        latest = {top.instrument: top for top in tail}  # read in event-time order
        events: list[OrderEvent] = []
        for top in latest.values():  # a resting order the top crosses fills, as it would have
            events += self.router.on_book_top(top)  # (through the OCO / bracket lists)
        log.info("paper books restored from book.top", instruments=sorted(latest))
        return events

    @property
    def broker(self) -> PaperBroker:
        if self._broker is None:
            ex = self.settings.execution
            broker = PaperBroker(ex.fee_rate, ex.paper_latency_ms * 1_000_000, max_closed=1000)
            saved = self.state.get("paper")
            if saved is not None:
                broker.load_state(saved)
            self._broker = broker
        return self._broker

    async def forget(self) -> None:
        """A rebalance begins: drop the paper broker and the start-up reconciliation; the
        next owner of ``orders.approved`` loads the broker from the tables and reconciles
        again before its first record (a standby that had reconciled with empty tables
        would otherwise carry on without the owner's resting orders)."""
        self.reconciled = False
        if self.settings.execution.paper_trading:
            self._broker = self._router = self._futures = None

    def persist(self) -> None:
        if self.settings.execution.paper_trading:
            self.state["paper"] = self.broker.to_state()
            if self._futures is not None:
                self.state["futures"] = self._futures.to_state()

    async def submit(self, order: OrderRequest) -> list[OrderEvent]:
        """Send once; an unknown outcome (timeout/5xx after retries) is queried, not resent.
        While halted (a position mismatch at start) the order is REJECTED naming why (a
        CANCEL request still goes through: it only takes risk away)."""
        now = time.time_ns()
        halted = self.halted is not None and order.ts_init <= self.halted_at_ns
        if halted and order.action is not OrderAction.CANCEL:  # a cancel takes risk away
            venue = self.router.venue_of(order.instrument)
            return [ManagedOrder(order, venue=venue).reject(str(self.halted), now)]
        try:
            return await self.router.submit(order, now)
        except OrderStatusUnknownError as exc:
            log.warning(
                "order outcome unknown, querying the venue",
                error=str(exc),
                client_order_id=order.client_order_id,
            )
            return await self.router.refresh(order.client_order_id, time.time_ns())


def _log_diffs(diffs: Iterable[PositionDiscrepancy], done: PositionSettlement, when: str) -> None:
    for diff in diffs:
        log.warning(
            f"{when}: position differs at the venue (the venue is the truth)",
            instrument=diff.instrument, ours=str(diff.local), theirs=str(diff.venue),
            action="halt" if diff in done.refused else "adopted",
        )  # fmt: skip


def _decodable(records: Iterable[Any], record_type: type[R]) -> list[R]:
    """The records that decode; a bad one is skipped here (its agent dead-letters it), so
    one undecodable record on a topic cannot stop reconciliation (and the agent) forever."""
    out: list[R] = []
    for r in records:
        try:
            out.append(record_type.decode(r.value))
        except RecordDecodeError:
            continue
    return out


def stages(app: faust.App, edge: Edge, settings: Settings) -> list[Stage]:
    shell = ExecutionShell(app, edge, settings)
    venue = "paper" if settings.execution.paper_trading else "binance"
    if not settings.execution.paper_trading and is_futures(settings):
        venue = "binance_usdm"
    elif not settings.execution.paper_trading and settings.market_data.exchange == "coinbase":
        venue = "coinbase"

    async def emit(events: list[OrderEvent]) -> None:
        for ev in events:
            await edge.send("orders.events", ev)
            if ev.fill_qty > 0:
                metrics.FILLS.labels(instrument=ev.instrument, side=ev.side.value).inc()
        if events:
            shell.persist()

    async def dead_letter(record: DeadLetter) -> None:
        log.warning("dead letter", agent="execution", source=record.source_topic,
                    error=record.reason)  # fmt: skip
        metrics.DLQ_RECORDS.labels(
            agent="execution", topic=record.source_topic, error_type=record.error_type
        ).inc()
        await edge.send("dlq", record)

    lock = asyncio.Lock()

    async def verdict(halt: str | None) -> None:
        """A position reconciliation's verdict to this worker's risk gate, in-process
        (a halt is also on ``risk.events``; lifting one, the gate records it)."""
        record = halt_record(halt, settings.risk.account, time.time_ns())
        await (edge.deliver if halt is None else edge.publish)("risk.events", record)

    async def reconciled_first() -> None:
        """Before the first record any agent handles (tables are recovered by then)."""
        if shell.reconciled:
            return
        async with lock:
            if not shell.reconciled:
                await emit(await shell.reconcile())
                shell.reconciled = True
                if shell.is_futures and not settings.execution.paper_trading:
                    await verdict(shell.halted)
                shell.start_user_stream(emit, dead_letter, verdict)

    async def on_approved(order: OrderRequest) -> None:
        """Send an approved order to the venue once (from the topic or in-process)."""
        if not await fencing.may_handle(edge):
            return  # not the owner (or fenced): the owner's broker executes it
        await reconciled_first()
        async with shell.order_lock:  # the venue's reports of it wait for its own events
            if shell.sent.get(order.client_order_id) is not None:
                return  # redelivered approval, or sent in-process already
            shell.sent[order.client_order_id] = order.record_id
            start = time.perf_counter()
            events = await shell.submit(order)
            elapsed = time.perf_counter() - start
            metrics.ORDER_SUBMIT_SECONDS.labels(exchange=venue).observe(elapsed)
            if any(ev.status is OrderStatus.FILLED for ev in events):
                # tick-to-trade: from the ts_event the order inherited from its tick
                metrics.TICK_TO_TRADE_SECONDS.labels(instrument=order.instrument).observe(
                    max(0, time.time_ns() - order.ts_event) / 1e9
                )
            await emit(events)

    async def on_top(top: BookTop) -> None:
        """A book top; a standby keeps no broker (:meth:`ExecutionShell.forget`)."""
        if edge.owns("orders.approved") and await fencing.may_handle(edge):
            await reconciled_first()
            async with shell.order_lock:
                await emit(shell.router.on_book_top(top))

    async def on_trade(trade: TradeTick) -> None:
        if edge.owns("orders.approved") and await fencing.may_handle(edge):
            await reconciled_first()
            async with shell.order_lock:
                await emit(shell.router.on_trade(trade))

    if edge.txn is not None:  # fenced: another worker's broker executes the account
        edge.txn.on_fenced.append(shell.forget)
        edge.after_streams_empty(edge.txn.release)  # after every stage handed over
    paper = settings.execution.paper_trading
    return [
        Stage(
            "execution",
            inputs={
                # a live venue's HTTP round trip must not hold up the risk gate: live
                # orders come through the topic only
                "orders.approved": Input(OrderRequest, on_approved, local=paper, also_read=True),
                "book.top": Input(BookTop, on_top, read=Read.TAP),
                "md.trades": Input(TradeTick, on_trade, read=Read.TAP),
                **futures.execution_inputs(edge, settings, shell, emit),
            },
            outputs=("risk.events",),  # a position verdict, to this worker's gate
            on_revoke=shell.forget,
        )
    ]
