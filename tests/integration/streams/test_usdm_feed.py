"""Binance USD-M futures end to end, as real processes: the simulator, ``algostream
ingest`` with ``market_data.exchange = "binance_usdm"`` (``/fstream``, ``/fapi/v1/depth``)
and a market worker, on the real broker. The futures book is published without a false
GAP and the worker's ``book.top`` reaches the simulator's true book; mark prices reach
``md.mark_price``; a dropped diff is a GAP, then RESYNCED."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from algostream.model import BookIntegrity, BookTop, BookUpdate, IntegrityKind, MarkPrice
from algostream.supervisor import Supervisor
from tests.faults.feed_kit import Pipeline, feed_env, logs, start_ingest, start_worker
from tests.kafka_kit import Msg, decoded, free_port, read_until

INSTRUMENT = "BINANCE_USDM:BTCUSDT"


def kinds(msgs: list[Msg]) -> list[IntegrityKind]:
    return [e.kind for e in decoded(msgs, BookIntegrity) if e.instrument == INSTRUMENT]  # type: ignore[attr-defined]


async def test_usdm_feed_to_topics_with_a_gap_resynced(
    provisioned: Any, supervisor: Supervisor
) -> None:
    s = provisioned
    sim_port = free_port()
    env = feed_env(
        sim_port, exchange="binance_usdm", websocket_url=f"ws://127.0.0.1:{sim_port}/fstream"
    )
    p = Pipeline(sim_port, {"ingest": free_port(), "market": free_port()}, env)
    supervisor.start("sim", "sim", "--port", str(sim_port), "--rate", "100", env=env)
    start_ingest(supervisor, p)
    start_worker(supervisor, p, "market")

    def live(msgs: list[Msg]) -> bool:
        return any(t.instrument == INSTRUMENT for t in decoded(msgs, BookTop))

    assert live(await read_until(s, "book.top", live, timeout_s=90)), logs(supervisor)
    marks = decoded(await read_until(s, "md.mark_price", lambda m: len(m) >= 2, 30), MarkPrice)
    assert len(marks) >= 2 and {m.instrument for m in marks} == {INSTRUMENT}
    book = decoded(await read_until(s, "md.book", lambda m: len(m) >= 30, 30), BookUpdate)
    assert {u.instrument for u in book} == {INSTRUMENT}
    assert IntegrityKind.GAP not in kinds(await read_until(s, "book.integrity", bool, 5))

    async with httpx.AsyncClient(base_url=p.sim_url, timeout=10) as http:
        (await http.post("/sim/pause")).raise_for_status()
        truth = (await http.get("/sim/book", params={"symbol": "BTCUSDT"})).json()

        def at_truth(msgs: list[Msg]) -> bool:
            tops = [t for t in decoded(msgs, BookTop) if t.instrument == INSTRUMENT]
            want = [(Decimal(px), Decimal(q)) for px, q in truth["bids"][:3]]
            return bool(tops) and list(tops[-1].bids[:3]) == want  # type: ignore[attr-defined]

        assert at_truth(await read_until(s, "book.top", at_truth, 30)), logs(supervisor)
        (await http.post("/sim/resume")).raise_for_status()
        body = {"kind": "drop_depth", "count": 1}
        (await http.post("/sim/fault", content=json.dumps(body))).raise_for_status()

    def resynced(msgs: list[Msg]) -> bool:
        seen = kinds(msgs)
        return IntegrityKind.GAP in seen and seen[-1] is IntegrityKind.RESYNCED

    assert resynced(await read_until(s, "book.integrity", resynced, 60)), logs(supervisor)
