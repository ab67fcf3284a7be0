"""Grafana provisioning and dashboards: schema basics, and every panel's PromQL returns
data from a real Prometheus scraping the metrics registry."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from algostream.observability import metrics
from algostream.observability.errors import PromCheckError
from algostream.observability.promcheck import PromServer, expand_grafana_expr, start_prometheus

DASHBOARDS = ("market-data", "strategy-pnl", "risk", "pipeline-health")
INSTRUMENT, ACCOUNT = "BINANCE:BTCUSDT", "paper"


def _load(repo: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (repo / "grafana" / "dashboards" / f"{name}.json").read_text()
    )
    return data


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def _datasource_uids(repo: Path) -> set[str]:
    config = yaml.safe_load(
        (repo / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    return {ds["uid"] for ds in config["datasources"]}


def test_datasource_is_provisioned_with_uid_prometheus(repo: Path) -> None:
    config = yaml.safe_load(
        (repo / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (ds,) = config["datasources"]
    assert (ds["uid"], ds["type"], ds["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )


def test_dashboard_provider_reads_the_mounted_dashboards_folder(repo: Path) -> None:
    config = yaml.safe_load(
        (repo / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    (provider,) = config["providers"]
    compose = (repo / "docker-compose.yml").read_text()
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in compose


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_schema_basics(repo: Path, name: str) -> None:
    dashboard = _load(repo, name)
    uids = _datasource_uids(repo)
    assert dashboard["uid"] == f"algostream-{name}" and dashboard["title"]
    panels = dashboard["panels"]
    assert len(panels) >= 4
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), f"duplicate panel ids in {name}"
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat"} and panel["title"]
        assert panel["datasource"]["uid"] in uids
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["targets"], f"{name}/{panel['title']} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids and target["expr"].strip()
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] in uids


def test_dashboard_uids_are_unique(repo: Path) -> None:
    uids = [_load(repo, name)["uid"] for name in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_dashboards_use_only_metrics_the_registry_exposes(repo: Path) -> None:
    exposed = {f.name for f in metrics.REGISTRY.collect()}
    exposed |= {n + s for n in exposed for s in ("_total", "_bucket", "_sum", "_count")}
    for name in DASHBOARDS:
        text = json.dumps(_load(repo, name))
        for metric in set(re.findall(r"\balgostream_[a-z0-9_]+", text)):
            assert metric in exposed, f"{name}: unknown metric {metric}"


def test_expand_grafana_expr_replaces_builtins_and_template_variables() -> None:
    expr = 'rate(x{instrument=~"$instrument",a=~"${account}"}[$__rate_interval])'
    assert expand_grafana_expr(expr) == 'rate(x{instrument=~".*",a=~".*"}[1m])'
    assert expand_grafana_expr("y[$__interval]", {"__interval": "5s"}) == "y[5s]"


# ---------------------------------------------------------------- against real Prometheus
def _set_sample_values() -> None:
    metrics.preregister(
        instruments=[INSTRUMENT],
        accounts=[ACCOUNT],
        exchanges=["binance", "paper"],
        agents=["market", "trading"],
        strategies=["rsi_mean_reversion", "rsi_shadow"],
        reject_reasons=["PRICE_BAND"],
        shadow=["rsi_shadow"],
    )
    for hist, labels in [
        (metrics.BOOK_UPDATE_SECONDS, {"instrument": INSTRUMENT}),
        (metrics.FEATURE_COMPUTE_SECONDS, {"instrument": INSTRUMENT}),
        (metrics.RISK_CHECK_SECONDS, {"instrument": INSTRUMENT}),
        (metrics.TICK_TO_TRADE_SECONDS, {"instrument": INSTRUMENT}),
        (metrics.ORDER_SUBMIT_SECONDS, {"exchange": "paper"}),
        (metrics.STAGE_LATENCY_SECONDS, {"stage": "book"}),
        (metrics.GC_PAUSE_SECONDS, {"generation": "0"}),
    ]:
        hist.labels(**labels).observe(0.0003)
    metrics.MESSAGES_IN.labels(agent="market", topic="md.book").inc(10)
    metrics.MESSAGES_OUT.labels(agent="market", topic="book.top").inc(10)
    metrics.DLQ_RECORDS.labels(agent="market", topic="md.book", error_type="ValueError").inc()
    metrics.CONSUMER_LAG.labels(agent="market", topic="md.book", partition="0").set(3)
    metrics.FEED_STALENESS_SECONDS.labels(exchange="binance", instrument=INSTRUMENT).set(0.2)
    metrics.EQUITY.labels(account=ACCOUNT).set(100_000)
    metrics.REALIZED_PNL.labels(account=ACCOUNT).set(-12.5)
    metrics.LOSS_THRESHOLD.labels(account=ACCOUNT).set(5000)
    metrics.WORKER_UP.labels(agent="market").set(1)
    metrics.ORDERS_APPROVED.inc()
    metrics.STRATEGY_TRADES.labels(strategy="rsi_mean_reversion", result="win", mode="live").inc()
    # a futures short: its notional by venue and side, margin in use, funding paid
    perp = "BINANCE_USDM:BTCUSDT"
    metrics.preregister(instruments=[perp], accounts=[ACCOUNT])
    metrics.POSITION_NOTIONAL.labels(
        account=ACCOUNT, venue="BINANCE_USDM", side="SHORT", instrument=perp
    ).set(15_000)
    metrics.MARGIN_USED.labels(account=ACCOUNT, instrument=perp).set(1_500)
    metrics.FUNDING_PAID.labels(account=ACCOUNT, instrument=perp).set(-1.5)
    # a liquidation on the market (forceOrder)
    metrics.LIQUIDATIONS.labels(instrument=perp, side="SELL").inc()
    metrics.LIQUIDATED_NOTIONAL.labels(instrument=perp).inc(138.74)


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str) -> Iterator[PromServer]:
    _set_sample_values()
    server = metrics.serve_metrics(0, addr="127.0.0.1")
    try:
        with start_prometheus([f"127.0.0.1:{server.port}"], binary=prometheus_binary) as prom:
            yield prom
    finally:
        server.close()


def test_every_panel_query_returns_data(repo: Path, prometheus: PromServer) -> None:
    exprs = {expand_grafana_expr(e) for name in DASHBOARDS for e in _exprs(_load(repo, name))}
    results = prometheus.wait_for_data(sorted(exprs), timeout_s=60)
    assert set(results) == exprs
    for data in results.values():
        assert data["resultType"] in {"vector", "scalar"}


def test_template_variable_queries_find_label_values(repo: Path, prometheus: PromServer) -> None:
    pattern = re.compile(r"label_values\((\w+),\s*(\w+)\)")
    for name in DASHBOARDS:
        for variable in _load(repo, name)["templating"]["list"]:
            metric, label = pattern.fullmatch(variable["query"]["query"]).groups()  # type: ignore[union-attr]
            prometheus.wait_for_data([metric], timeout_s=60)
            values = httpx.get(
                f"{prometheus.url}/api/v1/label/{label}/values",
                params={"match[]": metric},
                timeout=10,
            ).json()["data"]
            assert values, f"{name}: variable {variable['name']} has no values"


def test_invalid_promql_fails_at_once(prometheus: PromServer) -> None:
    start = time.monotonic()
    with pytest.raises(PromCheckError, match="parse error"):
        prometheus.wait_for_data(["sum(rate(algostream_fills_total[1m])"], timeout_s=30)
    assert time.monotonic() - start < 10


def test_query_without_data_fails_naming_the_expression(prometheus: PromServer) -> None:
    with pytest.raises(PromCheckError, match="algostream_no_such_metric"):
        prometheus.wait_for_data(
            ["algostream_worker_up", "algostream_no_such_metric"], timeout_s=1, poll_s=0.2
        )


def test_start_prometheus_loads_rule_files(repo: Path, prometheus_binary: str) -> None:
    with start_prometheus(
        [], rule_files=[repo / "config" / "alerts.yml"], binary=prometheus_binary
    ) as prom:
        body = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()
    names = {r["name"] for g in body["data"]["groups"] for r in g["rules"]}
    assert {"FeedStale", "WorkerDown", "LossNearThreshold"} <= names


def test_start_prometheus_reports_a_bad_rule_file(tmp_path: Path, prometheus_binary: str) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: sum(\n")
    with pytest.raises(PromCheckError, match="prometheus exited"):
        start_prometheus([], rule_files=[bad], binary=prometheus_binary)
