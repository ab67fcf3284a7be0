"""Signal and order agents: ``features`` -> strategy -> ``signals`` -> ``orders.proposed``.

The strategy (``signal.strategy``: a rule strategy or a trained model) keeps per-instrument
state in the ``signals-state`` table. The order agent sizes each signal into a MARKET
proposal whose client order id is derived from the signal's id, so a signal processed
twice proposes the same order twice and risk decides it once.
"""

from __future__ import annotations

import faust

from algostream.config import Settings
from algostream.model.records import FeatureVector, Signal
from algostream.observability import metrics
from algostream.signals.processor import SignalProcessor
from algostream.signals.sizing import OrderSizer
from streams.app import Edge


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    proc = SignalProcessor(settings.signal)
    sizer = OrderSizer(settings.signal, settings.risk)
    table = app.Table("signals-state", default=None, partitions=edge.catalog["features"].partitions)
    restored: set[str] = set()

    @app.agent(edge.topic("features"), name="signals")
    async def signals(stream: faust.StreamT[bytes]) -> None:
        async for fv in edge.records(stream, FeatureVector, "signals"):
            if fv.instrument not in restored:
                restored.add(fv.instrument)
                saved = table.get(fv.instrument)
                if saved is not None:
                    proc.restore(fv.instrument, saved)
            sig = proc.on_features(fv)
            if sig is not None:
                metrics.SIGNALS.labels(strategy=sig.strategy, side=sig.side.value).inc()
                await edge.send("signals", sig)
            snap = proc.snapshot(fv.instrument)
            if snap is not None:
                table[fv.instrument] = snap

    @app.agent(edge.topic("signals"), name="orders")
    async def orders(stream: faust.StreamT[bytes]) -> None:
        async for sig in edge.records(stream, Signal, "orders"):
            order = sizer.to_order(sig)
            if order is not None:
                await edge.send("orders.proposed", order)
