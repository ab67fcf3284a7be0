"""History on Kafka: the deployed agents and the in-process engine agree.

A synthetic history is written to ``md.book``/``md.trades``; the worker roles run on it
as real processes, in each layout (``workers.layout``); ``parity`` then runs the engine
over the same records read back by time range. Signals and proposals (pure functions of
the market data) must be identical record for record. Approvals and fills depend on which
book the live agents had seen when an order arrived, so their parity is reported, not
promised.
Also: ``replay`` copies the range to another prefix and ``capture`` round-trips it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from algostream.backtest.engine import BacktestEngine
from algostream.backtest.run import export_capture, import_capture, parity, replay
from algostream.backtest.source import read_range
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import Settings, load_settings
from algostream.features.engine import BAR_FEATURE_NAMES
from algostream.kafka.provision import delete_run_topics
from algostream.model import FeatureVector, OrderEvent, OrderRequest, OrderStatus, Signal
from streams.worker import worker_roles
from tests.kafka_kit import decoded, produce, read_until

#: the live agents decide proposals of a synthetic history (2026-01-01): their age against
#: the wall clock is months, so risk.max_order_age_ms is off for them (0), as for any
#: history replayed through the live agents
REPLAYED_HISTORY = {"ALGOSTREAM__RISK__MAX_ORDER_AGE_MS": "0"}


async def live_matches_engine(s, supervisor, env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Write a synthetic history, run the deployment's worker roles on it, compare."""
    engine = BacktestEngine(s).run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 8_000))
    await produce(s, "md.book", engine.on("md.book"))
    await produce(s, "md.trades", engine.on("md.trades"))
    want = len(engine.on("orders.proposed"))
    assert want >= 10
    roles = worker_roles(load_settings(env=supervisor.env | env))
    for role in roles:
        supervisor.start(role, "worker", role, "--web-port", "0", "--metrics-port", "0", env=env)
    proposals = await read_until(s, "orders.proposed", lambda m: len(m) >= want, timeout_s=180)
    assert len(decoded(proposals, OrderRequest)) >= want, {r: supervisor.tail(r) for r in roles}

    # the gate and the paper broker of the layout turn proposals into fills
    def filled(msgs: list[Any]) -> bool:
        return any(e.status is OrderStatus.FILLED for e in decoded(msgs, OrderEvent))  # type: ignore[attr-defined]

    events = await read_until(s, "orders.events", filled, timeout_s=120)
    assert filled(events), {r: supervisor.tail(r) for r in roles}

    reports = {r.topic: r for r in await parity(s)}
    for topic in ("signals", "orders.proposed"):
        assert reports[topic].first_difference is None, reports[topic].first_difference
        assert reports[topic].live == reports[topic].engine > 0
    return engine


@pytest.mark.parametrize("layout", ["split", "single"])
async def test_other_layouts_match_the_engine(provisioned, supervisor, layout: str) -> None:  # type: ignore[no-untyped-def]
    """split: every stage reads its topic; single: one worker, every stage in-process."""
    await live_matches_engine(
        provisioned, supervisor, {"ALGOSTREAM__WORKERS__LAYOUT": layout, **REPLAYED_HISTORY}
    )


async def test_live_agents_match_the_engine_on_the_same_history(
    provisioned, supervisor, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The default layout (colocated): market and trading workers."""
    s = provisioned
    engine = await live_matches_engine(s, supervisor, dict(REPLAYED_HISTORY))
    try:
        await copies_match(s, engine, tmp_path)
    finally:  # the copies' topics too (the fixture deletes the test's own prefix only)
        for prefix in ("rp", "cp"):
            await delete_run_topics(
                s.kafka.model_copy(update={"topic_prefix": prefix + s.kafka.topic_prefix})
            )


async def copies_match(s: Settings, engine: BacktestEngine, tmp_path: Path) -> None:
    """Replay the same range into another prefix, then a capture file round trip."""
    stats = await replay(s, "rp" + s.kafka.topic_prefix, None, None, speed=None)
    assert stats.records == len(engine.on("md.book")) + len(engine.on("md.trades"))
    copied = await read_range(s.kafka, ["md.book", "md.trades"], prefix="rp" + s.kafka.topic_prefix)
    original = await read_range(s.kafka, ["md.book", "md.trades"])
    assert [r.value for r in copied] == [r.value for r in original]
    path = tmp_path / "history.jsonl.gz"
    n = await export_capture(s, path, ["md.book", "md.trades"], None, None)
    assert n == stats.records
    assert await import_capture(s, path, prefix="cp" + s.kafka.topic_prefix) == n
    loaded = await read_range(s.kafka, ["md.book", "md.trades"], prefix="cp" + s.kafka.topic_prefix)
    assert sorted(r.value for r in loaded) == sorted(r.value for r in original)


async def test_a_strategy_deciding_in_on_bar_runs_live_as_in_the_engine(
    provisioned, supervisor
) -> None:  # type: ignore[no-untyped-def]
    """``sma_crossover`` decides in ``on_bar`` and sizes through its context (a target
    fraction of equity): the live worker calls the hook (it never did) and its signals and
    proposals equal the engine's, record for record. (The risk limits refuse these all-in
    orders, so the account stays flat in both and the sizes do not depend on fill timing.)"""
    signal = provisioned.signal.model_copy(update={"strategy": "sma_crossover"})
    s = provisioned.model_copy(update={"signal": signal})
    env = {
        "ALGOSTREAM__WORKERS__LAYOUT": "single",
        "ALGOSTREAM__SIGNAL__STRATEGY": "sma_crossover",
        **REPLAYED_HISTORY,
    }
    engine = BacktestEngine(s).run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 8_000))
    await produce(s, "md.book", engine.on("md.book"))
    await produce(s, "md.trades", engine.on("md.trades"))
    want = len(engine.on("orders.proposed"))
    assert want >= 10
    assert {r.reason for r in engine.on("signals")} == {  # type: ignore[attr-defined]
        "fast SMA crossed above slow",
        "fast SMA crossed below slow",
    }
    supervisor.start("all", "worker", "all", "--web-port", "0", "--metrics-port", "0", env=env)
    proposals = await read_until(s, "orders.proposed", lambda m: len(m) >= want, timeout_s=180)
    assert len(decoded(proposals, OrderRequest)) >= want, supervisor.tail("all")
    reports = {r.topic: r for r in await parity(s, topics=("signals", "orders.proposed"))}
    for topic in ("signals", "orders.proposed"):
        assert reports[topic].first_difference is None, reports[topic].first_difference
        assert reports[topic].live == reports[topic].engine > 0


@pytest.mark.parametrize("layout", ["colocated", "split", "single"])
async def test_several_strategies_match_the_engine(provisioned, supervisor, layout: str) -> None:  # type: ignore[no-untyped-def]
    """``signal.strategies``: strategies on other instruments, parameters, sizes and bar
    intervals in the live workers (each layout) and the engine: each one's signals and
    proposals are the engine's, record for record; the 1m strategy's feature vectors too."""
    strategies = [
        {"id": "rsi_all", "strategy": "rsi_mean_reversion"},
        {"id": "rsi_eth", "strategy": "rsi_mean_reversion", "instruments": ["ETHUSDT"],
         "params": {"rsi_oversold": 45, "rsi_overbought": 55, "order_quantity": "0.02"}},
        {"id": "sma_1m", "strategy": "sma_crossover", "bar_interval": "1m"},
    ]  # fmt: skip
    env = {
        "ALGOSTREAM__SIGNAL__STRATEGIES": json.dumps(strategies),
        "ALGOSTREAM__WORKERS__LAYOUT": layout,
        **REPLAYED_HISTORY,
    }
    s = load_settings(env=supervisor.env | env)
    engine = await live_matches_engine(s, supervisor, env)
    ids = {r.strategy for r in engine.on("orders.proposed")}  # type: ignore[attr-defined]
    assert ids == {"rsi_all", "rsi_eth"}
    live = decoded(await read_until(s, "signals", lambda _: False, timeout_s=1), Signal)
    assert {x.strategy for x in live} == ids  # type: ignore[attr-defined]
    # the feature stage runs once per interval in use: the 1m vectors as in the engine
    want = {r.record_id: r for r in engine.on("features") if r.interval == "1m"}  # type: ignore[attr-defined]
    assert want
    got = {
        r.record_id: r
        for r in decoded(
            await read_until(s, "features", lambda _: False, timeout_s=1), FeatureVector
        )
        if r.interval == "1m"  # type: ignore[attr-defined]
    }
    assert set(want) <= set(got)

    def bar_part(fv: Any) -> tuple[Any, ...]:  # (book features depend on the top seen live)
        return fv.close, {k: fv.values.get(k) for k in BAR_FEATURE_NAMES}

    assert all(bar_part(got[k]) == bar_part(want[k]) for k in want)
