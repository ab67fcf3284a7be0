"""SignalStage: the in-process hot path sizes each signal once, whichever way it arrives."""

from __future__ import annotations

from typing import Any

from algostream.config import Settings
from algostream.model.records import OrderRequest, Record, Signal
from streams.signals import SignalStage
from tests.unit.signals.signal_helpers import fv


class FakeEdge:
    """The parts of :class:`streams.edge.Edge` the stage uses: it records what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Record]] = []
        self.catalog = {"features": type("Spec", (), {"partitions": 3})()}

    async def send(self, topic: str, record: Record) -> None:
        self.sent.append((topic, record))

    async def publish(self, topic: str, record: Record, partition: int | None = None) -> None:
        await self.send(topic, record)  # no in-process listeners here


class FakeApp:
    def Table(self, *_: Any, **__: Any) -> dict[str, Any]:
        return {}


def stage(in_process: bool) -> tuple[SignalStage, FakeEdge]:
    base = Settings()
    settings = base.model_copy(
        update={"signal": base.signal.model_copy(update={"in_process": in_process})}
    )
    edge = FakeEdge()
    return SignalStage(FakeApp(), edge, settings), edge  # type: ignore[arg-type]


# RSI above 65, then below 35: a SELL-side then a BUY-side crossing for the default strategy
RSI = [50.0, 70.0, 50.0, 30.0, 50.0]


async def run(s: SignalStage, edge: FakeEdge, *, from_topics: bool) -> None:
    for i, value in enumerate(RSI):
        vector = fv(i, rsi=value)
        await s.on_features(vector)  # the feature agent's in-process call
        if from_topics:  # the same records read back by the signals and orders agents
            await s.on_features(vector)
            for topic, record in list(edge.sent):
                if topic == "signals":
                    await s.on_signal(record)  # type: ignore[arg-type]


async def test_in_process_sizes_each_signal_once_even_when_read_back_from_the_topics() -> None:
    s, edge = stage(in_process=True)
    await run(s, edge, from_topics=True)
    signals = [r for t, r in edge.sent if t == "signals"]
    orders = [r for t, r in edge.sent if t == "orders.proposed"]
    assert signals and all(isinstance(r, Signal) for r in signals)
    assert len(orders) == len(signals)
    assert len({o.client_order_id for o in orders}) == len(orders)  # type: ignore[attr-defined]
    assert all(isinstance(o, OrderRequest) for o in orders)


async def test_without_in_process_only_the_orders_agent_sizes() -> None:
    s, edge = stage(in_process=False)
    await run(s, edge, from_topics=False)
    assert [t for t, _ in edge.sent if t == "orders.proposed"] == []
    assert [t for t, _ in edge.sent if t == "signals"]
    in_proc, edge2 = stage(in_process=True)
    await run(in_proc, edge2, from_topics=False)
    # the same signals either way; in-process adds their proposals at once
    assert [r for t, r in edge.sent] == [r for t, r in edge2.sent if t == "signals"]
