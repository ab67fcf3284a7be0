"""kill -9 of the one worker of the ``single`` layout (``workers.layout``), where every
stage runs in-process from the tick to the paper fill, then a restart (simulator,
ingestor and the ``all`` worker as real processes on the real broker).

What is guaranteed, and asserted exactly: trading goes on after the restart (new fills),
and no order is executed twice: every client order id has one approval and at most one
fill, each possibly published twice as the same record (re-emitted after the kill, before
its input offset was committed), never as two different records.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from algostream.model import OrderEvent, OrderRequest, OrderStatus
from tests.faults.feed_kit import logs, poll, start_pipeline, start_worker, wait_live
from tests.kafka_kit import decoded, read_until

SINGLE = {
    "ALGOSTREAM__WORKERS__LAYOUT": "single",
    # a twitchy strategy so orders come every few seconds
    "ALGOSTREAM__SIGNAL__RSI_WINDOW": "2",
    "ALGOSTREAM__SIGNAL__RSI_OVERSOLD": "45",
    "ALGOSTREAM__SIGNAL__RSI_OVERBOUGHT": "55",
    "ALGOSTREAM__RISK__MAX_ORDERS_PER_SECOND": "1000",
}


async def order_events(s: Any, timeout_s: float = 1.0) -> list[OrderEvent]:
    msgs = await read_until(s, "orders.events", lambda m: False, timeout_s)
    return decoded(msgs, OrderEvent)  # type: ignore[return-value]


def fills(events: list[OrderEvent]) -> list[OrderEvent]:
    return [e for e in events if e.status is OrderStatus.FILLED]


def one_record_per_order(records: list[Any]) -> dict[str, set[str]]:
    """client order id -> the distinct record ids published for it (should be one)."""
    ids: dict[str, set[str]] = defaultdict(set)
    for r in records:
        ids[r.client_order_id].add(r.record_id)
    return {coid: rids for coid, rids in ids.items() if len(rids) > 1}


async def test_kill_9_single_worker_then_restart(provisioned: Any, supervisor: Any) -> None:
    s = provisioned
    p = start_pipeline(supervisor, ("all",), rate=100, env=SINGLE)
    await wait_live(s, supervisor)

    async def some_fills() -> bool:
        return len(fills(await order_events(s, 0.5))) >= 3

    await poll(some_fills, 180, "paper fills from the single worker")
    supervisor.kill("all")  # SIGKILL: no final commit, no table flush
    t_kill = time.time_ns()
    start_worker(supervisor, p, "all")

    async def fill_after_restart() -> bool:
        return any(e.ts_init > t_kill for e in fills(await order_events(s, 0.5)))

    await poll(fill_after_restart, 180, "a paper fill after the restart")

    events = await order_events(s)
    approved = decoded(
        await read_until(s, "orders.approved", lambda m: False, timeout_s=1), OrderRequest
    )
    assert not one_record_per_order(fills(events)), one_record_per_order(fills(events))
    assert not one_record_per_order(approved), one_record_per_order(approved)  # type: ignore[arg-type]
    filled = {e.client_order_id for e in fills(events)}
    assert filled <= {a.client_order_id for a in approved}  # type: ignore[attr-defined]
    assert not supervisor.dead(), logs(supervisor)
