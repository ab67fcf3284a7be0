"""Execution agent: approved orders -> venue -> ``orders.events``.

Paper trading (the default) fills against the live book from ``book.top`` and trades from
``md.trades`` with :class:`~algostream.execution.paper.PaperBroker`; with
``paper_trading: false`` orders go to the exchange through the signed REST router.
A client order id is executed at most once: the ``exec-orders`` table remembers every id
sent (and survives restarts), on top of the broker's own memory and the venue's
``newClientOrderId`` de-duplication.
"""

from __future__ import annotations

import time
from typing import Any

import faust

from algostream.config import Settings
from algostream.execution.paper import PaperBroker
from algostream.model.enums import OrderStatus
from algostream.model.records import BookTop, OrderEvent, OrderRequest, TradeTick
from algostream.observability import metrics
from streams.app import Edge


class ExecutionShell:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.settings = settings
        table: dict[str, Any] = {"partitions": 1, "use_partitioner": True}  # json key/value
        self.state = app.Table("exec-state", default=None, **table)
        self.sent = app.Table("exec-orders", default=None, **table)
        self._broker: PaperBroker | None = None

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

    def persist(self) -> None:
        self.state["paper"] = self.broker.to_state()


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    shell = ExecutionShell(app, settings)

    async def emit(events: list[OrderEvent]) -> None:
        for ev in events:
            await edge.send("orders.events", ev)
            if ev.fill_qty > 0:
                metrics.FILLS.labels(instrument=ev.instrument, side=ev.side.value).inc()
        if events:
            shell.persist()

    @app.agent(edge.topic("orders.approved"), name="exec-orders")
    async def orders(stream: faust.StreamT[bytes]) -> None:
        async for order in edge.records(stream, OrderRequest, "execution"):
            if shell.sent.get(order.client_order_id) is not None:
                continue  # redelivered approval: already sent to the venue
            shell.sent[order.client_order_id] = order.record_id
            start = time.perf_counter()
            events = shell.broker.submit(order, time.time_ns())
            metrics.ORDER_SUBMIT_SECONDS.labels(exchange="paper").observe(
                time.perf_counter() - start
            )
            if any(ev.status is OrderStatus.FILLED for ev in events):
                # tick-to-trade: from the ts_event the order inherited from its tick
                metrics.TICK_TO_TRADE_SECONDS.labels(instrument=order.instrument).observe(
                    max(0, time.time_ns() - order.ts_event) / 1e9
                )
            await emit(events)

    @app.agent(edge.topic("book.top"), name="exec-book")
    async def book(stream: faust.StreamT[bytes]) -> None:
        async for top in edge.records(stream, BookTop, "execution"):
            await emit(shell.broker.on_book_top(top))

    @app.agent(edge.topic("md.trades"), name="exec-trades")
    async def trades(stream: faust.StreamT[bytes]) -> None:
        async for trade in edge.records(stream, TradeTick, "execution"):
            await emit(shell.broker.on_trade(trade))
