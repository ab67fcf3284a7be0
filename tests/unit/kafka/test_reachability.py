"""wait_for_kafka: waits, says so (once, then every report interval), and the gauge says it."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from algostream.kafka.errors import BrokerError
from algostream.kafka.reachability import wait_for_kafka
from algostream.observability.metrics import KAFKA_REACHABLE


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waits_until_the_cluster_answers_and_reports_every_interval() -> None:
    clock = FakeClock()
    answers = iter([False] * 12 + [True])  # 12 failed probes, 2 s apart: 24 s down
    gauge_while_waiting: list[float] = []

    def probe(bootstrap: str) -> bool:
        assert bootstrap == "kafka:9092"
        gauge_while_waiting.append(KAFKA_REACHABLE._value.get())
        return next(answers)

    with capture_logs() as logs:
        wait_for_kafka("kafka:9092", probe=probe, clock=clock, sleep=clock.sleep, report_every_s=10)
    events = [entry["event"] for entry in logs]
    # down at 0 s, still down at 10 s and 20 s, back at 24 s: four lines, not twelve
    assert events == [
        "kafka unreachable",
        "kafka still unreachable",
        "kafka still unreachable",
        "kafka reachable",
    ]
    assert logs[-1]["waited_s"] == 24.0
    assert set(gauge_while_waiting) == {0.0}
    assert KAFKA_REACHABLE._value.get() == 1.0


def test_a_reachable_cluster_logs_nothing() -> None:
    with capture_logs() as logs:
        wait_for_kafka("kafka:9092", probe=lambda _: True)
    assert logs == []
    assert KAFKA_REACHABLE._value.get() == 1.0


def test_timeout_names_the_address() -> None:
    clock = FakeClock()
    with pytest.raises(BrokerError, match=r"'nowhere:9092' did not answer in 5 s"):
        wait_for_kafka(
            "nowhere:9092", timeout_s=5, probe=lambda _: False, clock=clock, sleep=clock.sleep
        )


def test_worker_without_kafka_stays_up_unhealthy_and_says_why(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A real `algostream worker` pointed at a port where no broker listens: it does not
    exit (no crash loop), its log names the address, and `health` reports it unhealthy."""
    import os
    import subprocess
    import sys
    import time

    from algostream.observability.probe import check
    from tests.kafka_kit import free_port

    dead, metrics_port = free_port(), free_port()
    env = os.environ | {
        "ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{dead}",
        "ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path),
        "ALGOSTREAM__OBSERVABILITY__LOG_FORMAT": "json",
    }
    cmd = [sys.executable, "-m", "algostream", "worker", "trading", "--web-port", "0"]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--metrics-port", str(metrics_port)], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        problems: list[str] = []
        while time.monotonic() < deadline and "kafka unreachable" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        problems = check(metrics_port)
        assert proc.poll() is None, log.read_text()[-2000:]
        assert f"127.0.0.1:{dead}" in log.read_text()
        assert sorted(problems) == [
            "algostream_kafka_reachable is 0: the Kafka cluster has not answered yet",
            "algostream_worker_up{agent=trading} is 0: the process is not running its agents",
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
