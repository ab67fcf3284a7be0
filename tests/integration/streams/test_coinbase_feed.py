"""Coinbase end to end, as real processes: the simulator, ``algostream ingest`` with
``market_data.exchange = "coinbase"`` (``/coinbase``, product ids) and a market worker.
With the market paused, the worker's ``book.top`` must reach the simulator's true book,
and a message the simulator drops (a ``sequence_num`` gap) must be announced (GAP), the
book resynced from a new connection's snapshot (RESYNCED) and true again."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from algostream.config import Settings
from algostream.model import BookIntegrity, BookTop, IntegrityKind, TradeTick
from algostream.supervisor import Supervisor
from tests.faults.feed_kit import Pipeline, feed_env, logs, start_ingest, start_worker
from tests.kafka_kit import Msg, decoded, free_port, read_until

PRODUCT = "BTC-USDT"
INSTRUMENT = f"COINBASE:{PRODUCT}"


async def book_is_true(s: Settings, p: Pipeline, supervisor: Supervisor) -> BookTop:
    """Pause the simulator; the instrument's newest ``book.top`` must reach its true top."""
    async with httpx.AsyncClient(base_url=p.sim_url, timeout=10) as http:
        (await http.post("/sim/pause")).raise_for_status()
        try:
            truth = (await http.get("/sim/book", params={"symbol": "BTCUSDT"})).json()

            def levels(side: list[list[str]], n: int) -> list[tuple[Decimal, Decimal]]:
                return [(Decimal(px), Decimal(q)) for px, q in side[:n]]

            def at_truth(msgs: list[Msg]) -> bool:
                tops = [t for t in decoded(msgs, BookTop) if t.instrument == INSTRUMENT]
                if not tops:
                    return False
                last = tops[-1]
                return list(last.bids) == levels(truth["bids"], len(last.bids)) and list(
                    last.asks
                ) == levels(truth["asks"], len(last.asks))

            msgs = await read_until(s, "book.top", at_truth, timeout_s=30)
            assert at_truth(msgs), logs(supervisor)
            top: BookTop = [t for t in decoded(msgs, BookTop) if t.instrument == INSTRUMENT][-1]
            assert top.bids and top.asks
            return top
        finally:
            (await http.post("/sim/resume")).raise_for_status()


async def test_coinbase_feed_to_book_top_with_a_gap_resynced(
    provisioned: Any, supervisor: Supervisor
) -> None:
    s = provisioned
    sim_port = free_port()
    env = feed_env(
        sim_port,
        exchange="coinbase",
        symbols=json.dumps([PRODUCT]),
        websocket_url=f"ws://127.0.0.1:{sim_port}/coinbase",
    )
    p = Pipeline(sim_port, {"ingest": free_port(), "market": free_port()}, env)
    supervisor.start("sim", "sim", "--port", str(sim_port), "--rate", "100", env=env)
    start_ingest(supervisor, p)
    start_worker(supervisor, p, "market")

    def live(msgs: list[Msg]) -> bool:  # the worker's first top of the instrument
        return any(t.instrument == INSTRUMENT for t in decoded(msgs, BookTop))

    assert live(await read_until(s, "book.top", live, timeout_s=90)), logs(supervisor)
    await book_is_true(s, p, supervisor)
    trades = decoded(await read_until(s, "md.trades", lambda m: len(m) >= 5, 30), TradeTick)
    assert trades and {t.instrument for t in trades} == {INSTRUMENT}

    async with httpx.AsyncClient(base_url=p.sim_url, timeout=10) as http:
        resp = await http.post("/sim/fault", json={"kind": "drop_depth", "count": 1})
        resp.raise_for_status()

    def resynced(msgs: list[Msg]) -> bool:
        kinds = [e.kind for e in decoded(msgs, BookIntegrity) if e.instrument == INSTRUMENT]
        return IntegrityKind.GAP in kinds and kinds[-1] is IntegrityKind.RESYNCED

    events = await read_until(s, "book.integrity", resynced, timeout_s=60)
    assert resynced(events), (decoded(events, BookIntegrity), logs(supervisor))
    await book_is_true(s, p, supervisor)
