"""Feature stage: bars (+ book tops) -> :class:`FeatureProcessor` -> ``features``.

A thin shell over :class:`~algostream.features.processor.FeatureProcessor`; the
``features-state`` table (keyed by instrument, co-partitioned with the bars) keeps each
instrument's indicator state, so a restarted worker continues bit-identically. A bar
re-delivered after a restart does not advance the instrument and is ignored.

Its inputs are ``bars.<interval>`` and ``book.top``: in-process where the worker makes them
(the ``colocated`` and ``single`` layouts), read from the topics otherwise
(:mod:`streams.stage`); each feature vector is published to ``features``.

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
from streams.stage import Input, Stage
from streams.state import StageState


class FeatureStage:
    """One worker's feature processor and its state."""

    def __init__(
        self, app: faust.App, edge: Edge, settings: Settings, interval: str | None = None
    ) -> None:
        self.edge = edge
        base = settings.signal.bar_interval
        self.interval = interval or base
        self.config = settings.signal.model_copy(update={"bar_interval": self.interval})
        name = "features-state" if self.interval == base else f"features-state-{self.interval}"
        self.state = StageState.add(app, edge, name, f"bars.{self.interval}")
        self.proc = FeatureProcessor(self.config)

    async def forget(self) -> None:
        """Drop in-memory state (a rebalance): instruments reload from the table when next
        seen, so a partition that comes back continues from its other owner's state."""
        self.proc = FeatureProcessor(self.config)

    def _restore(self, inst: str) -> None:
        saved = self.state.restore(inst)
        if saved is not None:
            self.proc.restore(inst, saved)

    async def on_book(self, top: BookTop) -> None:
        self._restore(top.instrument)
        self.proc.on_book(top)

    async def on_bar(self, bar: Bar) -> None:
        self._restore(bar.instrument)
        start = time.perf_counter()
        fv = self.proc.on_bar(bar)
        metrics.FEATURE_COMPUTE_SECONDS.labels(instrument=bar.instrument).observe(
            time.perf_counter() - start
        )
        if fv is None:
            return
        await self.state.save(bar.instrument, self.proc.snapshot(bar.instrument))
        await self.edge.publish("features", fv)

    def stage(self) -> Stage:
        return Stage(
            "features",
            inputs={
                f"bars.{self.interval}": Input(Bar, self.on_bar),
                "book.top": Input(BookTop, self.on_book),
            },
            outputs=("features",),
            state=self.state,
            on_revoke=self.forget,
        )


def stages(app: faust.App, edge: Edge, settings: Settings) -> list[Stage]:
    """A feature stage per bar interval of the strategies."""
    return [
        FeatureStage(app, edge, settings, interval).stage()
        for interval in settings.signal.intervals()
    ]
