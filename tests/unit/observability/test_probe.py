"""`algostream health` reads a process' own /metrics (served for real here)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from algostream.observability import metrics, probe
from tests.kafka_kit import free_port


def _serve(kafka: float, up: float) -> metrics.MetricsServer:
    registry = CollectorRegistry()
    Gauge("algostream_kafka_reachable", "", registry=registry).set(kafka)
    Gauge("algostream_worker_up", "", ("agent",), registry=registry).labels(agent="market").set(up)
    return metrics.serve_metrics(0, addr="127.0.0.1", registry=registry)


def test_healthy_process_has_no_problems() -> None:
    server = _serve(kafka=1, up=1)
    try:
        assert probe.check(server.port) == []
    finally:
        server.close()


def test_unreachable_kafka_and_stopped_agents_are_named() -> None:
    server = _serve(kafka=0, up=0)
    try:
        problems = probe.check(server.port)
    finally:
        server.close()
    assert problems == [
        "algostream_kafka_reachable is 0: the Kafka cluster has not answered yet",
        "algostream_worker_up{agent=market} is 0: the process is not running its agents",
    ]


def test_a_process_that_does_not_answer_is_unhealthy() -> None:
    port = free_port()
    [problem] = probe.check(port, timeout_s=1)
    assert problem.startswith(f"http://127.0.0.1:{port}/metrics did not answer")


def test_metrics_listen_on_loopback_by_default() -> None:
    server = metrics.serve_metrics(0)
    try:
        assert server.httpd.server_address[0] == "127.0.0.1"
    finally:
        server.close()


def test_problems_of_healthz_are_reported() -> None:
    """A stalled stage (the worker's own /healthz answering 503) is a problem too."""
    from algostream.observability.health import HEALTH

    server = _serve(kafka=1, up=1)
    HEALTH.report("stage book", "200 records waiting, no progress for 31s")
    try:
        assert probe.check(server.port) == ["stage book: 200 records waiting, no progress for 31s"]
    finally:
        HEALTH.report("stage book", None)
        server.close()
    assert HEALTH.problems() == {}
