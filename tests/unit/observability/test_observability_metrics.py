"""The metrics registry: names, labels, buckets, timing helper and the /metrics servers."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from algostream.observability import metrics

# The metric names and label sets the dashboards, alerts and workers rely on.
EXPECTED: dict[str, tuple[type, tuple[str, ...]]] = {
    "algostream_book_update_seconds": (Histogram, ("instrument",)),
    "algostream_strategy_equity": (Gauge, ("account", "strategy", "mode")),
    "algostream_strategy_drawdown": (Gauge, ("account", "strategy", "mode")),
    "algostream_strategy_realized_pnl": (Gauge, ("account", "strategy", "mode")),
    "algostream_strategy_position_quantity": (Gauge, ("account", "strategy", "instrument", "mode")),
    "algostream_strategy_trades": (Counter, ("strategy", "result", "mode")),
    "algostream_strategy_state": (Gauge, ("strategy",)),
    "algostream_feature_compute_seconds": (Histogram, ("instrument",)),
    "algostream_risk_check_seconds": (Histogram, ("instrument",)),
    "algostream_order_submit_seconds": (Histogram, ("exchange",)),
    "algostream_tick_to_trade_seconds": (Histogram, ("instrument",)),
    "algostream_stage_latency_seconds": (Histogram, ("stage",)),
    "algostream_gc_pause_seconds": (Histogram, ("generation",)),
    "algostream_messages_in": (Counter, ("agent", "topic")),
    "algostream_messages_out": (Counter, ("agent", "topic")),
    "algostream_send_failures": (Counter, ("agent",)),
    "algostream_seek_backs": (Counter, ("agent",)),
    "algostream_recovery_reseeks": (Counter, ()),
    "algostream_dlq_records": (Counter, ("agent", "topic", "error_type")),
    "algostream_orders_rejected": (Counter, ("reason",)),
    "algostream_control_refused": (Counter, ("reason",)),
    "algostream_fenced": (Counter, ()),
    "algostream_late_trades": (Counter, ("instrument", "interval")),
    "algostream_fenced_drops": (Counter, ()),
    "algostream_txn_commit_seconds": (Histogram, ()),
    "algostream_orders_approved": (Counter, ()),
    "algostream_fills": (Counter, ("instrument", "side")),
    "algostream_ws_reconnects": (Counter, ("exchange",)),
    "algostream_book_resyncs": (Counter, ("instrument",)),
    "algostream_sequence_gaps": (Counter, ("instrument",)),
    "algostream_signals": (Counter, ("strategy", "side")),
    "algostream_position_quantity": (Gauge, ("account", "instrument")),
    "algostream_unrealized_pnl": (Gauge, ("account",)),
    "algostream_realized_pnl": (Gauge, ("account",)),
    "algostream_exposure_notional": (Gauge, ("account",)),
    "algostream_equity": (Gauge, ("account",)),
    "algostream_position_notional": (Gauge, ("account", "venue", "side", "instrument")),
    "algostream_margin_used": (Gauge, ("account", "instrument")),
    "algostream_funding_paid": (Gauge, ("account", "instrument")),
    "algostream_liquidations": (Counter, ("instrument", "side")),
    "algostream_liquidated_notional": (Counter, ("instrument",)),
    "algostream_trading_state": (Gauge, ("account", "instrument")),
    "algostream_consumer_lag_messages": (Gauge, ("agent", "topic", "partition")),
    "algostream_feed_staleness_seconds": (Gauge, ("exchange", "instrument")),
    "algostream_worker_up": (Gauge, ("agent",)),
    "algostream_stage_stalled": (Gauge, ("agent", "stage")),
    "algostream_stage_seconds_since_progress": (Gauge, ("agent", "stage")),
    "algostream_kafka_client_errors": (Counter, ("logger",)),
    "algostream_kafka_reachable": (Gauge, ()),
    "algostream_loss_threshold": (Gauge, ("account",)),
}


def _module_metrics() -> dict[str, Counter | Gauge | Histogram]:
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            found[value._name] = value
    return found


def _unique(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4().hex[:8].upper()}"


def test_every_expected_metric_exists_with_its_type_and_labels() -> None:
    found = _module_metrics()
    for name, (kind, labels) in EXPECTED.items():
        assert name in found, f"missing metric {name}"
        assert isinstance(found[name], kind), name
        assert found[name]._labelnames == labels, name


def test_every_metric_is_named_algostream_snake_case_and_registered_once() -> None:
    found = _module_metrics()
    assert set(found) == set(EXPECTED), "a metric was added: list it in EXPECTED"
    exposed = {family.name for family in metrics.REGISTRY.collect()}
    for name in found:
        assert re.fullmatch(r"algostream_[a-z0-9_]+", name), name
        assert name in exposed, f"{name} not in metrics.REGISTRY"


def test_latency_buckets_span_microseconds_to_seconds() -> None:
    buckets = metrics.LATENCY_BUCKETS
    assert list(buckets) == sorted(buckets)
    assert buckets[0] <= 10e-6 and buckets[-1] >= 5.0
    # the seed's targets are bucket bounds, so the latency alerts compare exactly
    assert {0.0001, 0.001, 0.01, 0.05} <= set(buckets)
    upper = metrics.BOOK_UPDATE_SECONDS.labels(instrument="X:Y")._upper_bounds
    assert upper[:-1] == list(buckets) and upper[-1] == float("inf")


def test_observe_records_elapsed_time_in_the_labelled_histogram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instrument = _unique("TEST")
    labels = {"instrument": instrument}
    clock = iter([5_000_000, 7_000_000])  # perf_counter_ns at entry and exit: 2 ms apart
    monkeypatch.setattr(metrics.time, "perf_counter_ns", lambda: next(clock))
    with metrics.observe(metrics.BOOK_UPDATE_SECONDS, instrument=instrument):
        pass
    get = metrics.REGISTRY.get_sample_value
    assert get("algostream_book_update_seconds_count", labels) == 1
    assert get("algostream_book_update_seconds_sum", labels) == 0.002
    # 2 ms falls in the (0.001, 0.0025] bucket; buckets are cumulative
    assert get("algostream_book_update_seconds_bucket", {**labels, "le": "0.001"}) == 0
    assert get("algostream_book_update_seconds_bucket", {**labels, "le": "0.0025"}) == 1
    assert get("algostream_book_update_seconds_bucket", {**labels, "le": "0.005"}) == 1
    assert get("algostream_book_update_seconds_bucket", {**labels, "le": "+Inf"}) == 1


def test_observe_records_even_when_the_block_raises() -> None:
    instrument = _unique("RAISE")
    with (
        pytest.raises(RuntimeError),
        metrics.observe(metrics.FEATURE_COMPUTE_SECONDS, instrument=instrument),
    ):
        raise RuntimeError("boom")
    count = metrics.REGISTRY.get_sample_value(
        "algostream_feature_compute_seconds_count", {"instrument": instrument}
    )
    assert count == 1


def test_child_is_the_labelled_series_looked_up_once_per_label_set() -> None:
    topic = _unique("topic")
    a = metrics.child(metrics.MESSAGES_OUT, agent="book", topic=topic)
    assert metrics.child(metrics.MESSAGES_OUT, agent="book", topic=topic) is a
    assert a is metrics.MESSAGES_OUT.labels(agent="book", topic=topic)
    other = metrics.child(metrics.MESSAGES_OUT, agent="risk", topic=topic)
    a.inc(2)
    other.inc()
    get = metrics.REGISTRY.get_sample_value
    assert get("algostream_messages_out_total", {"agent": "book", "topic": topic}) == 2
    assert get("algostream_messages_out_total", {"agent": "risk", "topic": topic}) == 1


def test_preregister_makes_series_visible_as_zero() -> None:
    instrument, account = _unique("PRE"), f"acct-{uuid.uuid4().hex[:6]}"
    exchange = f"ex-{uuid.uuid4().hex[:6]}"  # other tests in this process count reconnects
    get = metrics.REGISTRY.get_sample_value
    assert get("algostream_sequence_gaps_total", {"instrument": instrument}) is None
    metrics.preregister(
        instruments=[instrument],
        accounts=[account],
        exchanges=[exchange],
        agents=["market"],
        strategies=["rsi"],
        reject_reasons=["PRICE_BAND"],
    )
    assert get("algostream_sequence_gaps_total", {"instrument": instrument}) == 0
    assert get("algostream_book_resyncs_total", {"instrument": instrument}) == 0
    assert get("algostream_fills_total", {"instrument": instrument, "side": "SELL"}) == 0
    assert get("algostream_trading_state", {"account": account, "instrument": instrument}) == 0
    assert get("algostream_equity", {"account": account}) == 0
    assert get("algostream_ws_reconnects_total", {"exchange": exchange}) == 0
    assert get("algostream_signals_total", {"strategy": "rsi", "side": "BUY"}) == 0
    assert get("algostream_orders_rejected_total", {"reason": "PRICE_BAND"}) == 0
    for stage in metrics.STAGES:
        assert get("algostream_stage_latency_seconds_count", {"stage": stage}) is not None


def test_trading_state_values_match_the_model_enum() -> None:
    from algostream.model.enums import TradingState

    assert [s.name for s in metrics.TradingStateValue] == [s.value for s in TradingState]
    assert int(metrics.TradingStateValue.HALTED) == 2


def test_start_metrics_server_on_port_zero_serves_the_registry() -> None:
    server = metrics.serve_metrics(0, addr="127.0.0.1")
    try:
        assert server.port > 0
        agent = f"agent-{uuid.uuid4().hex[:6]}"
        metrics.WORKER_UP.labels(agent=agent).set(1)
        body = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }
        assert samples[("algostream_worker_up", (("agent", agent),))] == 1
        assert ("algostream_orders_approved_total", ()) in samples
        assert any(name == "process_cpu_seconds_total" for name, _ in samples)
    finally:
        server.close()


def test_start_metrics_server_returns_the_bound_port() -> None:
    port = metrics.start_metrics_server(0, addr="127.0.0.1")
    assert port > 0
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert "algostream_worker_up" in response.text


async def test_aiohttp_handler_serves_text_and_openmetrics() -> None:
    app = web.Application()
    app.router.add_get("/metrics", metrics.metrics_handler)
    async with TestClient(TestServer(app)) as client:
        plain = await client.get("/metrics")
        assert plain.status == 200
        assert plain.headers["Content-Type"].startswith("text/plain")
        assert "# TYPE algostream_fills_total counter" in await plain.text()
        om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await om.text()).rstrip().endswith("# EOF")


async def test_faust_page_serves_the_registry_from_the_app_web_server() -> None:
    import faust

    app = faust.App(
        f"metrics-test-{uuid.uuid4().hex[:6]}",
        broker="memory://",
        web_enabled=True,
        autodiscover=False,
    )
    view = metrics.add_faust_metrics_page(app, "/metrics")
    assert view.view_path == "/metrics"
    web_app = app.web.web_app  # type: ignore[attr-defined]
    async with TestClient(TestServer(web_app)) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert "# TYPE algostream_worker_up gauge" in await response.text()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0, max_value=20, allow_nan=False),
            st.sampled_from([0.0, 0.0001, 0.00025, 0.001, 0.01, 1.0, 10.0, float("inf")]),
        ),
        max_size=60,
    )
)
def test_observe_all_counts_like_observe_one_by_one(amounts: list[float]) -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    def histogram() -> tuple[CollectorRegistry, Histogram]:
        registry = CollectorRegistry()
        bounds = metrics.BOOK_UPDATE_SECONDS.labels(instrument="T:T")._upper_bounds
        buckets = [b for b in bounds if b != float("inf")]  # the book stage's buckets
        return registry, Histogram("h", "h", ["i"], registry=registry, buckets=buckets)

    def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
        text = generate_latest(registry).decode()
        return [
            (s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    one_by_one, each = histogram()
    batched, whole = histogram()
    child = each.labels(i="x")
    for amount in amounts:
        child.observe(amount)
    metrics.observe_all(whole.labels(i="x"), amounts)
    assert samples(batched) == samples(one_by_one)
