"""Small Kafka helpers for integration tests: produce, read with a deadline, free ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from algostream.config import Settings
from algostream.model.records import Record


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def produce(
    settings: Settings, topic: str, items: Sequence[Record | tuple[bytes, bytes]]
) -> None:
    """Write records (keyed by ``record.key``) or raw ``(key, value)`` pairs to a topic."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, enable_idempotence=True
    )
    await producer.start()
    try:
        for item in items:
            if isinstance(item, Record):
                key, value = item.key.encode(), item.encode()
            else:
                key, value = item
            await producer.send_and_wait(settings.kafka.topic_prefix + topic, value, key=key)
    finally:
        await producer.stop()


async def read_until(
    settings: Settings,
    topic: str,
    done: Callable[[list[Msg]], bool],
    timeout_s: float = 60.0,
    isolation_level: str = "read_committed",
) -> list[Msg]:
    """Read ``topic`` from the beginning until ``done(messages)`` or the deadline (as a
    ``read_committed`` consumer: what every consumer of the trading topics sees)."""
    name = settings.kafka.topic_prefix + topic
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level=isolation_level,
    )
    await consumer.start()
    out: list[Msg] = []
    try:
        parts = consumer.partitions_for_topic(name)
        while not parts:
            await asyncio.sleep(0.1)
            parts = consumer.partitions_for_topic(name) or await _refresh(consumer, name)
        consumer.assign([TopicPartition(name, p) for p in sorted(parts)])
        await consumer.seek_to_beginning()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not done(out):
            left = deadline - loop.time()
            if left <= 0:
                break
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for tp, records in batch.items():
                out += [Msg(tp.topic, tp.partition, r.offset, r.key, r.value) for r in records]
        return out
    finally:
        await consumer.stop()


async def _refresh(consumer: AIOKafkaConsumer, name: str) -> set[int] | None:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(name)


def decoded(msgs: list[Msg], record_type: type[Record]) -> list[Record]:
    return [record_type.decode(m.value) for m in msgs]
