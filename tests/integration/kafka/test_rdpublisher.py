"""The ingestor's librdkafka publisher against the real broker: every record acknowledged,
on the partition aiokafka (and so the workers' tables) would give its key, in publish order
per key, held in order when the client's queue is full, and counted as lost (not hidden)
when the broker never answers."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from algostream.ingest.feed import feed_event
from algostream.kafka.headers import SENT_NS_HEADER
from algostream.kafka.publisher import PUBLISHER_FAILED
from algostream.kafka.rdpublisher import RdKafkaPublisher
from algostream.kafka.reader import read_to_end
from algostream.model import BookIntegrity, IntegrityKind
from algostream.model.records import Record
from algostream.observability.metrics import REGISTRY
from tests.kafka_kit import decoded, free_port, read_until

INSTRUMENTS = [f"BINANCE:SYM{i}USDT" for i in range(12)]


def events(n: int) -> list[Record]:
    """``n`` integrity events per instrument, ``ts_event`` 1..n for each (its order)."""
    out: list[Record] = []
    for ts in range(1, n + 1):
        out += [r for _, r in feed_event(IntegrityKind.STALE, INSTRUMENTS, ts, "t")]
    return out


async def check_landed(settings: Any, sent: list[Record]) -> None:
    """Every record on ``book.integrity`` once, on aiokafka's partition for its key, in
    the order published per key, with the ``algostream-sent-ns`` header."""
    msgs = await read_until(
        settings, "book.integrity", lambda got: len(got) >= len(sent), timeout_s=30
    )
    assert len(msgs) == len(sent)
    parts = list(range(max(m.partition for m in msgs) + 1))
    by_key: dict[str, list[int]] = {}
    for m, rec in zip(msgs, decoded(msgs, BookIntegrity), strict=True):
        assert m.partition == DefaultPartitioner()(m.key, parts, parts), rec.instrument
        by_key.setdefault(rec.instrument, []).append(rec.ts_event)
    want = {i: list(range(1, len(sent) // len(INSTRUMENTS) + 1)) for i in INSTRUMENTS}
    assert by_key == want


async def test_records_acknowledged_on_aiokafkas_partitions_in_order(provisioned: Any) -> None:
    pub = RdKafkaPublisher(provisioned.kafka)
    await pub.start()
    sent = events(50)
    try:
        for rec in sent:
            await pub.publish("book.integrity", rec)
        stats = await pub.flush()
    finally:
        await pub.close()
    assert (stats.sent, stats.delivered, stats.failed) == (len(sent), len(sent), 0)
    assert stats.delivered_by_topic == {"book.integrity": len(sent)} and pub.pending == 0
    await check_landed(provisioned, sent)
    landed = await read_to_end(provisioned.kafka, "book.integrity", timeout_s=30)
    assert len(landed) == len(sent) and all(r.sent_ns for r in landed), SENT_NS_HEADER


async def test_a_full_client_queue_holds_records_in_order(provisioned: Any) -> None:
    """librdkafka's queue takes 20 records (a long linger keeps them there): the rest wait
    in the publisher, in order, and ``publish`` waits once 100 are held (back-pressure)."""
    pub = RdKafkaPublisher(
        provisioned.kafka,
        max_buffered=100,
        **{"queue.buffering.max.messages": 20, "linger.ms": 300},
    )
    await pub.start()
    sent = events(20)  # 240 records
    try:
        publishing = asyncio.create_task(_publish_all(pub, sent))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(pub._held) < 100:  # poll with a deadline
            assert loop.time() < deadline and not publishing.done(), len(pub._held)
            await asyncio.sleep(0.001)
        assert not publishing.done()  # back-pressure: publish waits for room
        await asyncio.wait_for(publishing, 60)
        stats = await pub.flush()
    finally:
        await pub.close()
    assert stats.retried > 0 and stats.delivered == len(sent) and stats.failed == 0
    await check_landed(provisioned, sent)


async def _publish_all(pub: RdKafkaPublisher, records: list[Record]) -> None:
    for rec in records:
        await pub.publish("book.integrity", rec)


async def test_records_the_broker_never_takes_are_counted_lost(
    kafka_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = kafka_settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    pub = RdKafkaPublisher(cfg, delivery_timeout_ms=300, slow_after_s=0.1)
    await pub.start()
    sent = events(2)
    before = REGISTRY.get_sample_value(
        "algostream_publisher_failed_total", {"client": cfg.client_id, "topic": "md.book"}
    )
    try:
        for rec in sent:
            await pub.publish("md.book", rec)
        assert pub.pending == len(sent)
        pub.check_stall(time.time() + 1)  # its oldest record is 1 s old then
        assert pub.stats.stalls == 1
        stats = await asyncio.wait_for(pub.flush(), 30)
    finally:
        await pub.close()
    assert (stats.delivered, stats.failed, pub.pending) == (0, len(sent), 0)
    # librdkafka's complaints reach the outage filter as a Kafka client's (``kafka.*``)
    client = [r for r in caplog.records if r.name == "kafka.rdkafka"]
    assert client and all(r.levelno >= logging.WARNING for r in client), caplog.records
    after = REGISTRY.get_sample_value(
        "algostream_publisher_failed_total", {"client": cfg.client_id, "topic": "md.book"}
    )
    assert (after or 0) - (before or 0) == len(sent), PUBLISHER_FAILED


def test_security_settings_reach_librdkafka() -> None:
    """SASL/TLS from config, as the aiokafka clients get them (README: real cluster)."""
    from pydantic import SecretStr

    from algostream.config import KafkaConfig
    from algostream.kafka.rdpublisher import rdkafka_config

    cfg = KafkaConfig(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password=SecretStr("pw"),
        ssl_cafile="/etc/ca.pem",
    )
    conf = rdkafka_config(cfg)
    assert {k: conf[k] for k in ("security.protocol", "sasl.mechanism", "sasl.username")} == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
    }
    assert conf["sasl.password"] == "pw" and conf["ssl.ca.location"] == "/etc/ca.pem"
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["partitioner"] == "murmur2_random"
    plain = rdkafka_config(KafkaConfig(acks="1"))
    assert plain["security.protocol"] == "plaintext" and not plain["enable.idempotence"]
    assert not any(k.startswith(("sasl.", "ssl.")) for k in plain)


async def test_a_record_refused_for_good_is_counted_lost_and_the_rest_go_on(
    provisioned: Any,
) -> None:
    """A record over ``message.max.bytes`` is refused by ``produce`` itself: logged and
    counted as lost, as a delivery failure is; the records after it are delivered."""
    pub = RdKafkaPublisher(provisioned.kafka, **{"message.max.bytes": 2000})
    await pub.start()
    big = feed_event(IntegrityKind.STALE, [INSTRUMENTS[0]], 1, "x" * 5000)[0][1]
    small = events(1)
    try:
        await pub.publish("book.integrity", big)
        for rec in small:
            await pub.publish("book.integrity", rec)
        stats = await pub.flush()
    finally:
        await pub.close()
    assert (stats.sent, stats.failed, stats.delivered) == (13, 1, 12) and pub.pending == 0
