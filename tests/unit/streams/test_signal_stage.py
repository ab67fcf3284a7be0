"""The signal and sizing stages as the worker wires them: in-process, each signal is sized
once whichever way it arrives; through the topics, only the sizing stage's reader sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from algostream.config import Settings, load_settings
from algostream.model.records import OrderRequest, Record, Signal
from streams.app import create_app
from streams.edge import Edge, Rejected
from streams.signals import SignalStage
from streams.stage import wire
from streams.worker import not_local
from tests.unit.signals.signal_helpers import fv


def stage(tmp_path: Path, in_process: bool) -> tuple[SignalStage, list[tuple[str, Record]]]:
    """A signal stage of a worker wired like ``build_worker_app`` does, its sends recorded."""
    settings: Settings = load_settings(
        env={
            "ALGOSTREAM__SIGNAL__IN_PROCESS": str(in_process).lower(),
            "ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path),
        }
    )
    app, edge = create_app(settings, "signals-test", web_enabled=False)
    sent: list[tuple[str, Record]] = []

    async def send(topic: str, record: Record) -> None:
        sent.append((topic, record))

    async def send_raw(*_: Any, **__: Any) -> Any:  # the state's changelog records
        return None

    edge.send = send  # type: ignore[method-assign]
    edge.send_raw = send_raw  # type: ignore[method-assign]
    s = SignalStage(app, edge, settings)
    wire(app, edge, settings, s.stages(), not_local=not_local(settings))
    return s, sent


# RSI above 65, then below 35: a SELL-side then a BUY-side crossing for the default strategy
RSI = [50.0, 70.0, 50.0, 30.0, 50.0]


async def run(s: SignalStage, sent: list[tuple[str, Record]], *, from_topics: bool) -> None:
    for i, value in enumerate(RSI):
        vector = fv(i, rsi=value)
        await s.on_features(vector)  # the feature stage's in-process hand-over
        if from_topics:  # the same records read back from their topics
            await s.on_features(vector)
            for topic, record in list(sent):
                if topic == "signals":
                    await s.on_signal(record)  # type: ignore[arg-type]


async def test_in_process_sizes_each_signal_once_even_when_read_back_from_the_topics(
    tmp_path: Path,
) -> None:
    s, sent = stage(tmp_path, in_process=True)
    await run(s, sent, from_topics=True)
    signals = [r for t, r in sent if t == "signals"]
    orders = [r for t, r in sent if t == "orders.proposed"]
    assert signals and all(isinstance(r, Signal) for r in signals)
    assert len(orders) == len(signals)
    assert len({o.client_order_id for o in orders}) == len(orders)  # type: ignore[attr-defined]
    assert all(isinstance(o, OrderRequest) for o in orders)


async def test_without_in_process_only_the_sizing_stages_reader_sizes(tmp_path: Path) -> None:
    s, sent = stage(tmp_path / "a", in_process=False)
    await run(s, sent, from_topics=False)
    assert [t for t, _ in sent if t == "orders.proposed"] == []
    assert [t for t, _ in sent if t == "signals"]
    in_proc, sent2 = stage(tmp_path / "b", in_process=True)
    await run(in_proc, sent2, from_topics=False)
    # the same signals either way; in-process adds their proposals at once
    assert [r for t, r in sent] == [r for t, r in sent2 if t == "signals"]


def test_the_worker_reads_a_topic_only_where_no_stage_of_it_publishes_it(
    tmp_path: Path,
) -> None:
    s, _ = stage(tmp_path / "a", in_process=True)
    agents = {a.channel.get_topic_name() for a in s.edge.app.agents.values()}  # type: ignore[attr-defined]
    edge: Edge = s.edge
    # features and bars come from this worker's other stages or their topics; signals
    # from this worker's signal stage: only the features/bars/tops are read here
    assert edge.topic("signals").get_topic_name() not in agents
    assert edge.topic("features").get_topic_name() in agents  # no feature stage here
    assert len(edge._local["signals"]) == 1
    s2, _ = stage(tmp_path / "b", in_process=False)
    agents = {a.channel.get_topic_name() for a in s2.edge.app.agents.values()}  # type: ignore[attr-defined]
    assert s2.edge.topic("signals").get_topic_name() in agents
    assert "signals" not in s2.edge._local


async def test_a_signal_of_no_live_strategy_is_rejected_to_dlq(tmp_path: Path) -> None:
    s, sent = stage(tmp_path, in_process=True)
    await run(s, sent, from_topics=False)
    sig = next(r for t, r in sent if t == "signals")
    stranger = sig.model_copy(update={"strategy": "nope", "record_id": "sig-x"})  # type: ignore[attr-defined]
    with pytest.raises(Rejected, match="strategy='nope' is not a live strategy"):
        await s.on_signal(stranger)
