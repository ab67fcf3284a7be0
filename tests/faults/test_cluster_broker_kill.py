"""The pipeline on a 3-node KRaft cluster: one broker killed, trading goes on (slow).

Three nodes of the test's own on loopback (each broker and controller, README's recipe),
every topic with 3 replicas and ``min.insync.replicas=2`` (``topics apply`` and the
workers' changelogs), the simulator, the ingestor and the ``colocated`` workers on it.
After the first fills one broker gets ``kill -9``. Promises: a new fill within
``BOUND_S``; every proposal decided exactly once and every approved order filled at
most once, as a ``read_committed`` consumer sees the topics (nothing lost, nothing twice).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from algostream.config import load_settings
from algostream.kafka.catalog import load_catalog
from algostream.kafka.provision import apply_catalog
from algostream.model import OrderEvent, OrderRejected, OrderRequest, OrderStatus
from algostream.supervisor import Supervisor
from tests.faults.broker_kit import cluster_nodes
from tests.faults.feed_kit import poll, start_pipeline
from tests.kafka_kit import decoded, read_until

#: a killed broker's partitions get new leaders within the controller's session timeout
#: (9 s by default) and the clients' metadata refresh; trading resumes within this
BOUND_S = 60.0
TWITCHY = {
    "ALGOSTREAM__SIGNAL__RSI_WINDOW": "2",
    "ALGOSTREAM__SIGNAL__RSI_OVERSOLD": "45",
    "ALGOSTREAM__SIGNAL__RSI_OVERBOUGHT": "55",
    "ALGOSTREAM__RISK__MAX_ORDERS_PER_SECOND": "1000",
}

pytestmark = [pytest.mark.slow]


async def fills(s) -> list[OrderEvent]:  # type: ignore[no-untyped-def]
    msgs = await read_until(s, "orders.events", lambda m: False, timeout_s=1)
    events = decoded(msgs, OrderEvent)
    return [e for e in events if e.status is OrderStatus.FILLED]  # type: ignore[misc]


async def test_one_broker_of_three_killed_trading_goes_on(tmp_path: Path) -> None:
    nodes = cluster_nodes(tmp_path / "cluster")
    for node in nodes:
        node.start(wait=False)
    sup = None
    try:
        for node in nodes:
            await asyncio.to_thread(node.wait_ready, 180.0)
        env = {
            "ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": ",".join(n.bootstrap for n in nodes),
            "ALGOSTREAM__KAFKA__TOPIC_PREFIX": "c.",
            "ALGOSTREAM__KAFKA__APP_ID": "cluster-test",
            "ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path / "data"),
            "ALGOSTREAM__KAFKA__REPLICATION_FACTOR": "3",
            "ALGOSTREAM__KAFKA__MIN_INSYNC_REPLICAS": "2",
            # the default settings, account transactions (fencing) on
        }
        s = load_settings(env=env)
        report = await apply_catalog(load_catalog(), s.kafka, min_insync_replicas=2)
        assert report.ok, report.drift
        sup = Supervisor(tmp_path / "logs", env=env)
        start_pipeline(sup, ("market", "trading"), rate=100, env=TWITCHY)

        async def some_fills() -> bool:
            return len(await fills(s)) >= 2

        try:
            await poll(some_fills, 240, "paper fills on the cluster")
        except AssertionError:
            counts = {
                t: len(await read_until(s, t, lambda m: False, 2))
                for t in ("md.trades", "bars.1s", "signals", "orders.proposed", "orders.approved",
                          "orders.rejected", "orders.events")
            }  # fmt: skip
            raise AssertionError(counts) from None
        before = {e.record_id for e in await fills(s)}
        victim = nodes[1]
        pid = victim.status().pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        killed = time.monotonic()

        async def new_fill() -> bool:
            return any(e.record_id not in before for e in await fills(s))

        await poll(new_fill, BOUND_S, "a fill after one broker of three was killed")
        print(f"first fill after the kill: {time.monotonic() - killed:.1f} s")
        assert not sup.dead(), {n: sup.tail(n) for n in sup.dead()}

        sup.kill("sim")  # no new proposals: let the last ones be decided
        proposed = decoded(await read_until(s, "orders.proposed", lambda m: False, 2), OrderRequest)
        wanted = {p.client_order_id for p in proposed}  # type: ignore[attr-defined]

        async def all_decided() -> bool:
            return wanted <= set(await decisions(s))

        await poll(all_decided, 90, "every proposal decided")
        counts = await decisions(s)
        assert all(n == 1 for n in counts.values()), {c: n for c, n in counts.items() if n > 1}
        per_order = Counter(e.client_order_id for e in await fills(s))
        assert all(n == 1 for n in per_order.values()), per_order
    finally:
        if sup is not None:
            sup.stop_all()
        for node in nodes:
            node.stop(timeout_s=10)


async def decisions(s) -> Counter[str]:  # type: ignore[no-untyped-def]
    """Client order id -> decision records visible (distinct record ids: a re-sent copy of
    the same decision is one)."""
    ids: dict[str, set[str]] = {}
    for topic, kind in (("orders.approved", OrderRequest), ("orders.rejected", OrderRejected)):
        for r in decoded(await read_until(s, topic, lambda m: False, 1), kind):
            ids.setdefault(r.client_order_id, set()).add(r.record_id)  # type: ignore[attr-defined]
    return Counter({c: len(r) for c, r in ids.items()})
