"""Signal and order agents: ``features`` -> strategy -> ``signals`` -> ``orders.proposed``.

The strategies (``signal.strategies``, or the one ``signal.strategy``: rule strategies or
trained models; :class:`~algostream.signals.multi.StrategySet`) keep per-instrument state
in the ``signals-state`` table. Shadow strategies run in their own worker (``shadow``).
Sizing turns each signal into a MARKET proposal whose
client order id is derived from the signal's id, so a signal processed twice proposes the
same order twice and risk decides it once.

Two stages: ``signals`` (features, bars and book tops -> strategy -> ``signals``) and
``orders`` (sizing: ``signals`` -> ``orders.proposed``). Where one worker runs both, a bar
becomes a proposal in one task, with no Kafka hop between them (``signal.in_process:
false`` takes ``features`` and ``signals`` through their topics: :mod:`streams.worker`).
A record handled twice is recognised and skipped either way: a feature vector by its
event time (:meth:`SignalProcessor.on_features` drops stale ones), a signal by its id
(recent ids sized here are remembered).

The strategy's ``on_bar`` and ``on_book`` run on the bars and book tops (a bar before its
features); what it asks of its context is sized at once. The context's position, cash and
equity are the newest ``positions``/``pnl`` records: in-process from a risk stage of the
same worker (``single`` layout), else read from those topics (the worker's ``taps``
reader, every partition), seeded at start with their tails.
"""

from __future__ import annotations

import faust

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
from streams.stage import Input, Read, Rejected, Stage
from streams.state import Recent, StageState

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
        self.state = StageState.add(app, edge, "signals-state", "features")
        self.sized = Recent(REMEMBER_SIZED)

    async def forget(self) -> None:
        """Drop per-instrument strategy state (a rebalance): reloaded from the table."""
        self.proc = self._strategies()

    def _strategies(self) -> StrategySet:
        def portfolio(spec: StrategySpec) -> RecordPortfolio:
            return self.portfolios[spec.id]

        return StrategySet(
            self.config, self.settings.risk, portfolio=portfolio, only=lambda s: not s.shadow
        )

    def _restore(self, inst: str) -> None:
        saved = self.state.restore(inst)
        if saved is not None:
            self.proc.restore(inst, saved)

    async def on_bar(self, bar: Bar) -> None:
        """A closed bar: the strategy's ``on_bar`` (before the bar's features)."""
        if not self.proc.uses_bars:
            return  # (the rule strategies: their state and outputs are as before)
        self._restore(bar.instrument)
        signals = self.proc.on_bar(bar)
        await self.state.save(bar.instrument, self.proc.snapshot(bar.instrument))
        await self._emit(signals)

    async def on_book(self, top: BookTop) -> None:
        """A book top: the strategy's ``on_book``."""
        if not self.proc.uses_books:
            return
        self._restore(top.instrument)
        await self._emit(self.proc.on_book(top))

    async def on_account(self, record: Record) -> None:
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
            await self.edge.publish("signals", sig)

    async def on_features(self, fv: FeatureVector) -> None:
        self._restore(fv.instrument)
        signals = self.proc.decide(fv)
        for sig in signals:
            metrics.SIGNALS.labels(strategy=sig.strategy, side=sig.side.value).inc()
            await self.edge.send("signals", sig)
        snap = self.proc.snapshot(fv.instrument)
        if snap is not None:
            await self.state.save(fv.instrument, snap)
        for sig in signals:  # sized after the state is saved
            await self.edge.deliver("signals", sig)

    async def on_signal(self, sig: Signal) -> None:
        """Size a signal once (in-process, or read back from ``signals``)."""
        if sig.record_id in self.sized:
            return  # sized already
        if self.proc.member(sig.strategy) is None:  # not sized silently: said, in dlq
            known = ", ".join(m.spec.id for m in self.proc.members)
            raise Rejected(
                f"signal {sig.record_id}: strategy={sig.strategy!r} is not a live "
                f"strategy of this deployment (signal.strategies ids: {known})"
            )
        self.sized.add(sig.record_id)
        order = self.proc.to_order(sig)
        if order is not None:
            await self.edge.publish("orders.proposed", order)

    def stages(self) -> list[Stage]:
        first = {f"bars.{i}": Input(Bar, self.on_bar, first=True) for i in self.proc.intervals}
        account = {
            topic: Input(kind, self.on_account, read=Read.TAP, tail=ACCOUNT_TAIL)
            for topic, kind in (("positions", Position), ("pnl", PnL))
        }
        # open orders: always from the topic (the execution stage's events are applied
        # from the broker), seeded with its tail like the account
        account["orders.events"] = Input(
            OrderEvent, self.on_account, read=Read.TAP, local=False, tail=ACCOUNT_TAIL
        )
        signals = Stage(
            "signals",
            inputs={
                "features": Input(FeatureVector, self.on_features),
                **first,  # before the features of the bar
                "book.top": Input(BookTop, self.on_book),
                **account,
            },
            outputs=("signals",),
            state=self.state,
            on_revoke=self.forget,
        )
        orders = Stage(
            "orders",
            inputs={"signals": Input(Signal, self.on_signal)},
            outputs=("orders.proposed",),
        )
        return [signals, orders]


def stages(app: faust.App, edge: Edge, settings: Settings) -> list[Stage]:
    return SignalStage(app, edge, settings).stages()
