"""Signal and order agents: ``features`` -> strategy -> ``signals`` -> ``orders.proposed``.

The strategies (``signal.strategies``, or the one ``signal.strategy``: rule strategies or
trained models; :class:`~algostream.signals.multi.StrategySet`) keep per-instrument state
in the ``signals-state`` table. Shadow strategies run in their own worker (``shadow``).
Sizing turns each signal into a MARKET proposal whose
client order id is derived from the signal's id, so a signal processed twice proposes the
same order twice and risk decides it once.

The hot path runs in-process (``signal.in_process``, the default): the feature stage
publishes each feature vector to :class:`SignalStage` right after sending it
(:meth:`Edge.listen <streams.edge.Edge.listen>`), and the stage sizes a signal right
after sending it, so a bar becomes a proposal without two Kafka round trips
(~10 ms each on the pipeline benchmark). Every record is still on its topic; the worker
does not read them back (fewer partitions to fetch, guard and move on a rebalance). With
``signal.in_process: false`` the ``signals`` and ``orders`` agents read ``features`` and
``signals`` instead; a record handled twice is recognised and skipped either way: a
feature vector by its event time (:meth:`SignalProcessor.on_features` drops stale ones), a
signal by its id (recent ids sized here are remembered).

The strategy's ``on_bar`` and ``on_book`` run on the bars and book tops of this worker
(in-process, a bar before its features); what it asks of its context is sized at once.
The context's position, cash and equity are the newest ``positions``/``pnl`` records:
in-process from this worker's risk stage (``single`` layout), else read from those topics
(the worker's ``taps`` reader, every partition), seeded at start with their tails.
"""

from __future__ import annotations

import faust

from algostream.backtest.source import read_range
from algostream.config import Settings, StrategySpec
from algostream.model.records import (
    Bar,
    BookTop,
    FeatureVector,
    OrderEvent,
    PnL,
    Position,
    Record,
    Signal,
)
from algostream.observability import metrics
from algostream.signals.context import RecordPortfolio
from algostream.signals.multi import StrategySet
from streams.edge import Edge
from streams.reader import tap
from streams.state import Recent, save_state

#: records read back from the tail of each ``positions``/``pnl`` partition at start
ACCOUNT_TAIL = 1000

#: signal ids sized in-process that the ``orders`` agent may still read from the topic
REMEMBER_SIZED = 10_000


class SignalStage:
    """features -> strategy -> signal -> sized proposal for one worker."""

    def __init__(self, app: faust.App, edge: Edge, settings: Settings) -> None:
        self.edge = edge
        self.settings = settings
        self.config = settings.signal
        self.in_process = settings.signal.in_process
        #: one portfolio per strategy: its own records (``signal.strategies``) or the
        #: account's (the single ``signal.strategy``)
        attributed = bool(settings.signal.strategies)
        self.portfolios = {
            spec.id: RecordPortfolio(
                settings.risk.account,
                settings.risk.starting_equity,
                spec.id if attributed else None,
            )
            for spec in settings.live_specs()
        }
        self.proc = self._strategies()
        self.table = app.Table(
            "signals-state", default=None, partitions=edge.catalog["features"].partitions
        )
        self.restored: set[str] = set()
        self.sized = Recent(REMEMBER_SIZED)

    def forget(self) -> None:
        """Drop per-instrument strategy state (a rebalance): reloaded from the table."""
        self.proc = self._strategies()
        self.restored.clear()

    def _strategies(self) -> StrategySet:
        def portfolio(spec: StrategySpec) -> RecordPortfolio:
            return self.portfolios[spec.id]

        return StrategySet(
            self.config, self.settings.risk, portfolio=portfolio, only=lambda s: not s.shadow
        )

    def _restore(self, inst: str) -> None:
        if inst not in self.restored:
            self.restored.add(inst)
            saved = self.table.get(inst)
            if saved is not None:
                self.proc.restore(inst, saved)

    async def on_bar(self, bar: Bar, partition: int | None = None) -> None:
        """A closed bar: the strategy's ``on_bar`` (before the bar's features)."""
        if not self.proc.uses_bars:
            return  # (the rule strategies: their state and outputs are as before)
        self._restore(bar.instrument)
        signals = self.proc.on_bar(bar)
        save_state(self.table, bar.instrument, self.proc.snapshot(bar.instrument), partition)
        await self._emit(signals)

    async def on_book(self, top: BookTop, partition: int | None = None) -> None:
        """A book top: the strategy's ``on_book``."""
        if not self.proc.uses_books:
            return
        self._restore(top.instrument)
        await self._emit(self.proc.on_book(top))

    async def on_account(self, record: Record, partition: int | None = None) -> None:
        """A ``positions``, ``pnl`` or ``orders.events`` record: the context's account and
        open orders (what ``ctx.cancel`` / ``ctx.replace`` can name)."""
        for portfolio in self.portfolios.values():
            if isinstance(record, OrderEvent):
                portfolio.on_order_event(record)
            elif isinstance(record, Position):
                portfolio.on_position(record)
            elif isinstance(record, PnL):
                portfolio.on_pnl(record)

    async def _emit(self, signals: list[Signal]) -> None:
        for sig in signals:
            metrics.SIGNALS.labels(strategy=sig.strategy, side=sig.side.value).inc()
            await self.edge.send("signals", sig)
            if self.in_process:
                await self.on_signal(sig)

    async def on_features(self, fv: FeatureVector, partition: int | None = None) -> None:
        """``partition``: the instrument's, when called in-process (not from this
        stage's own agent)."""
        self._restore(fv.instrument)
        signals = self.proc.decide(fv)
        for sig in signals:
            metrics.SIGNALS.labels(strategy=sig.strategy, side=sig.side.value).inc()
            await self.edge.send("signals", sig)  # sized below, or by the orders agent
        snap = self.proc.snapshot(fv.instrument)
        if snap is not None:
            save_state(self.table, fv.instrument, snap, partition)
        if self.in_process:
            for sig in signals:
                await self.on_signal(sig)

    async def on_signal(self, sig: Signal) -> None:
        if sig.record_id in self.sized:
            return  # sized in-process already
        self.sized.add(sig.record_id)
        order = self.proc.to_order(sig)
        if order is not None:  # in the single layout the risk stage takes it in-process
            await self.edge.publish("orders.proposed", order)


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    stage = SignalStage(app, edge, settings)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_signals(_app: faust.App, revoked: object, **_: object) -> None:
        stage.forget()

    for interval in stage.proc.intervals:
        edge.listen(f"bars.{interval}", stage.on_bar, first=True)  # before the features
    edge.listen("book.top", stage.on_book)
    edge.listen("positions", stage.on_account)
    edge.listen("pnl", stage.on_account)
    edge.listen("orders.events", stage.on_account)  # the execution stage sends, never local
    tap(app, edge, settings, "orders.events", OrderEvent, "signals")
    if settings.workers.layout != "single":  # no risk stage here: read what it writes
        tap(app, edge, settings, "positions", Position, "signals")
        tap(app, edge, settings, "pnl", PnL, "signals")

        @app.task  # type: ignore[untyped-decorator]
        async def seed_account() -> None:
            """The account as the topics' tails have it (the taps resume from their
            committed offsets, so a restarted worker would not see it until it changes)."""
            for rec in await read_range(settings.kafka, ["positions", "pnl"], last=ACCOUNT_TAIL):
                await stage.on_account(edge.catalog[rec.topic].record_type.decode(rec.value))

    if stage.in_process:  # this worker's feature stage feeds it; nothing read back
        edge.listen("features", stage.on_features)
        return

    @app.agent(edge.topic("features"), name="signals")
    async def signals(stream: faust.StreamT[bytes]) -> None:
        async for fv in edge.records(stream, FeatureVector, "signals"):
            await stage.on_features(fv)

    @app.agent(edge.topic("signals"), name="orders")
    async def orders(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            sig = await edge.decode_or_dlq(event, Signal, "orders")
            if sig is None:
                continue
            if stage.proc.member(sig.strategy) is None:  # not sized silently: said, in dlq
                known = ", ".join(m.spec.id for m in stage.proc.members)
                await edge.dead_letter(
                    event,
                    ValueError(
                        f"signal {sig.record_id}: strategy={sig.strategy!r} is not a live "
                        f"strategy of this deployment (signal.strategies ids: {known})"
                    ),
                    "orders",
                )
                continue
            await stage.on_signal(sig)
