"""The whole platform as deployed: simulator, ingestor and the three worker roles as real
processes on a real broker, watched by a real Prometheus.

Checks: a signal becomes a paper fill whose lineage walks back to the bar that caused
it; the worker's book top equals the simulator's true book; every Grafana panel query
returns data from Prometheus scraping the running processes.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from algostream.model import (
    Bar,
    BookTop,
    FeatureVector,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    Signal,
)
from algostream.observability.promcheck import (
    expand_grafana_expr,
    find_prometheus,
    start_prometheus,
)
from streams.worker import worker_roles
from tests.kafka_kit import decoded, free_port, read_until

REPO = Path(__file__).resolve().parents[2]


def panel_exprs() -> set[str]:
    exprs: set[str] = set()
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    exprs.add(expand_grafana_expr(target["expr"]))
    return exprs


async def test_sim_to_fill_book_truth_and_dashboards(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    sim_port = free_port()
    roles = worker_roles(s)  # market (with the feature and signal stages) and trading
    ports = {name: free_port() for name in ("ingest", *roles)}
    env = {
        "ALGOSTREAM__MARKET_DATA__WEBSOCKET_URL": f"ws://127.0.0.1:{sim_port}/stream",
        "ALGOSTREAM__MARKET_DATA__REST_URL": f"http://127.0.0.1:{sim_port}",
        "ALGOSTREAM__MARKET_DATA__RECONNECT_DELAY_MS": "200",
        # a twitchy strategy so the test sees trades within seconds
        "ALGOSTREAM__SIGNAL__RSI_WINDOW": "2",
        "ALGOSTREAM__SIGNAL__RSI_OVERSOLD": "45",
        "ALGOSTREAM__SIGNAL__RSI_OVERBOUGHT": "55",
    }
    supervisor.start("sim", "sim", "--port", str(sim_port), "--rate", "100", env=env)
    supervisor.start("ingest", "ingest", "--metrics-port", str(ports["ingest"]), env=env)
    for role in roles:
        supervisor.start(
            role, "worker", role, "--web-port", "0", "--metrics-port", str(ports[role]), env=env
        )

    def filled(msgs) -> bool:  # type: ignore[no-untyped-def]
        return any(e.status is OrderStatus.FILLED for e in decoded(msgs, OrderEvent))  # type: ignore[attr-defined]

    events = decoded(await read_until(s, "orders.events", filled, timeout_s=180), OrderEvent)
    assert filled_any(events), {n: supervisor.tail(n, 15) for n in supervisor.children}
    fill = next(e for e in events if e.status is OrderStatus.FILLED)  # type: ignore[attr-defined]

    # lineage: fill -> approved order -> proposal -> signal -> features -> bar
    approved = {
        r.record_id: r
        for r in decoded(
            await read_until(s, "orders.approved", lambda m: False, timeout_s=2), OrderRequest
        )
    }
    order = approved[fill.lineage_id]  # type: ignore[attr-defined]
    proposals = {
        r.record_id: r
        for r in decoded(
            await read_until(s, "orders.proposed", lambda m: False, timeout_s=2), OrderRequest
        )
    }
    proposal = proposals[order.lineage_id]  # type: ignore[attr-defined]
    signals = {
        r.record_id: r
        for r in decoded(await read_until(s, "signals", lambda m: False, timeout_s=2), Signal)
    }
    signal = signals[proposal.lineage_id]  # type: ignore[attr-defined]
    features = {
        r.record_id: r
        for r in decoded(
            await read_until(s, "features", lambda m: False, timeout_s=2), FeatureVector
        )
    }
    fv = features[signal.lineage_id]  # type: ignore[attr-defined]
    bars = {
        r.record_id: r
        for r in decoded(await read_until(s, "bars.1s", lambda m: False, timeout_s=2), Bar)
    }
    assert fv.lineage_id in bars  # type: ignore[attr-defined]

    # the worker's book equals the simulator's true book once the market is paused
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim_port}") as http:
        (await http.post("/sim/pause")).raise_for_status()
        truth = (await http.get("/sim/book", params={"symbol": "BTCUSDT"})).json()

        def at_truth(msgs) -> bool:  # type: ignore[no-untyped-def]
            return any(
                t.instrument == "BINANCE:BTCUSDT" and t.update_id == truth["lastUpdateId"]
                for t in decoded(msgs, BookTop)
            )  # type: ignore[attr-defined]

        tops = decoded(await read_until(s, "book.top", at_truth, timeout_s=60), BookTop)
        top = next(
            t
            for t in tops
            if t.instrument == "BINANCE:BTCUSDT"  # type: ignore[attr-defined]
            and t.update_id == truth["lastUpdateId"]
        )  # type: ignore[attr-defined]
        want_bids = [(Decimal(p), Decimal(q)) for p, q in truth["bids"][: len(top.bids)]]  # type: ignore[attr-defined]
        want_asks = [(Decimal(p), Decimal(q)) for p, q in truth["asks"][: len(top.asks)]]  # type: ignore[attr-defined]
        assert list(top.bids) == want_bids and list(top.asks) == want_asks  # type: ignore[attr-defined]
        (await http.post("/sim/resume")).raise_for_status()

    # every dashboard panel returns data from Prometheus scraping the live processes
    if find_prometheus() is None:
        pytest.fail("prometheus is not installed (apt-get install prometheus)")
    targets = [f"127.0.0.1:{p}" for p in ports.values()]
    with start_prometheus(targets) as prom:
        results = prom.wait_for_data(sorted(panel_exprs()), timeout_s=90)
    assert set(results) == panel_exprs()
    assert not supervisor.dead(), supervisor.dead()


def filled_any(events) -> bool:  # type: ignore[no-untyped-def]
    return any(e.status is OrderStatus.FILLED for e in events)
