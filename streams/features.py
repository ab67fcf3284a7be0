"""Feature agent: ``bars.<interval>`` (+ ``book.top``) -> ``features``.

A thin shell over :class:`~algostream.features.processor.FeatureProcessor`; the
``features-state`` table (keyed by instrument, co-partitioned with the bars) keeps each
instrument's indicator state, so a restarted worker continues bit-identically. A bar
re-delivered after a restart does not advance the instrument and is ignored.

With ``signal.in_process`` each feature vector then goes straight to the signal stage of
this worker (:class:`streams.signals.SignalStage`), not only through the ``features`` topic.
"""

from __future__ import annotations

import time

import faust

from algostream.config import Settings
from algostream.features.processor import FeatureProcessor
from algostream.model.records import Bar, BookTop
from algostream.observability import metrics
from streams.app import Edge


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    proc = FeatureProcessor(settings.signal)
    bars_topic = f"bars.{settings.signal.bar_interval}"
    table = app.Table(
        "features-state", default=None, partitions=edge.catalog[bars_topic].partitions
    )
    restored: set[str] = set()

    def ensure(inst: str) -> None:
        if inst not in restored:
            restored.add(inst)
            saved = table.get(inst)
            if saved is not None:
                proc.restore(inst, saved)

    @app.agent(edge.topic(bars_topic), name="features")
    async def features(stream: faust.StreamT[bytes]) -> None:
        async for bar in edge.records(stream, Bar, "features"):
            ensure(bar.instrument)
            start = time.perf_counter()
            fv = proc.on_bar(bar)
            metrics.FEATURE_COMPUTE_SECONDS.labels(instrument=bar.instrument).observe(
                time.perf_counter() - start
            )
            if fv is not None:
                await edge.send("features", fv)
                table[bar.instrument] = proc.snapshot(bar.instrument)
                stage = edge.stages.get("signals")  # in-process hot path (streams.signals)
                if stage is not None and stage.in_process:
                    await stage.on_features(fv)

    @app.agent(edge.topic("book.top"), name="features-book")
    async def books(stream: faust.StreamT[bytes]) -> None:
        async for top in edge.records(stream, BookTop, "features"):
            ensure(top.instrument)
            proc.on_book(top)
