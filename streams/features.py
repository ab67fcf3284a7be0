"""Feature stage: bars (+ book tops) -> :class:`FeatureProcessor` -> ``features``.

A thin shell over :class:`~algostream.features.processor.FeatureProcessor`; the
``features-state`` table (keyed by instrument, co-partitioned with the bars) keeps each
instrument's indicator state, so a restarted worker continues bit-identically. A bar
re-delivered after a restart does not advance the instrument and is ignored.

In the ``colocated`` and ``single`` layouts (``workers.layout``) the stage runs in the
worker that makes the bars and book tops and takes them in-process (:meth:`Edge.listen
<streams.edge.Edge.listen>`); in the ``split`` layout the ``signals`` worker reads
``bars.<interval>`` and ``book.top``. Either way each feature vector is published to
``features`` and, with ``signal.in_process``, taken in-process by the signal stage of the
same worker (:class:`streams.signals.SignalStage`).

Strategies on other bar intervals (``signal.strategies[].bar_interval``) get a stage
each (table ``features-state-<interval>``); the vectors' ``interval`` tells them apart.
"""

from __future__ import annotations

import time

import faust

from algostream.config import Settings
from algostream.features.processor import FeatureProcessor
from algostream.model.records import Bar, BookTop
from algostream.observability import metrics
from streams.edge import Edge
from streams.state import save_state


class FeatureStage:
    """One worker's feature processor and its table."""

    def __init__(
        self, app: faust.App, edge: Edge, settings: Settings, interval: str | None = None
    ) -> None:
        self.edge = edge
        base = settings.signal.bar_interval
        self.interval = interval or base
        self.config = settings.signal.model_copy(update={"bar_interval": self.interval})
        self.table = app.Table(
            "features-state" if self.interval == base else f"features-state-{self.interval}",
            default=None,
            partitions=edge.catalog[f"bars.{self.interval}"].partitions,
        )
        self.forget()

    def forget(self) -> None:
        """Drop in-memory state (a rebalance): instruments reload from the table when next
        seen, so a partition that comes back continues from its other owner's state."""
        self.proc = FeatureProcessor(self.config)
        self.restored: set[str] = set()

    def _restore(self, inst: str) -> None:
        if inst not in self.restored:
            self.restored.add(inst)
            saved = self.table.get(inst)
            if saved is not None:
                self.proc.restore(inst, saved)

    async def on_book(self, top: BookTop, partition: int | None = None) -> None:
        self._restore(top.instrument)
        self.proc.on_book(top)

    async def on_bar(self, bar: Bar, partition: int | None = None) -> None:
        """A closed bar (``partition``: the bar's, when taken in-process)."""
        self._restore(bar.instrument)
        start = time.perf_counter()
        fv = self.proc.on_bar(bar)
        metrics.FEATURE_COMPUTE_SECONDS.labels(instrument=bar.instrument).observe(
            time.perf_counter() - start
        )
        if fv is None:
            return
        save_state(self.table, bar.instrument, self.proc.snapshot(bar.instrument), partition)
        await self.edge.publish("features", fv, partition)


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    for interval in settings.signal.intervals():
        _register(app, edge, settings, interval)


def _register(app: faust.App, edge: Edge, settings: Settings, interval: str) -> None:
    stage = FeatureStage(app, edge, settings, interval)
    suffix = "" if interval == settings.signal.bar_interval else f"-{interval}"

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_features(_app: faust.App, revoked: object, **_: object) -> None:
        stage.forget()

    if settings.workers.layout != "split":  # this worker's bar and book agents feed it
        edge.listen(f"bars.{stage.interval}", stage.on_bar)
        edge.listen("book.top", stage.on_book)
        return

    @app.agent(edge.topic(f"bars.{stage.interval}"), name=f"features{suffix}")
    async def features(stream: faust.StreamT[bytes]) -> None:
        async for bar in edge.records(stream, Bar, "features"):
            await edge.deliver(f"bars.{stage.interval}", bar)  # the strategy's on_bar
            await stage.on_bar(bar)

    @app.agent(edge.topic("book.top"), name=f"features-book{suffix}")
    async def books(stream: faust.StreamT[bytes]) -> None:
        async for top in edge.records(stream, BookTop, "features"):
            await edge.deliver("book.top", top)  # the strategy's on_book
            await stage.on_book(top)
