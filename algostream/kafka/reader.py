"""Read a topic from its beginning to its current end (tools, benchmarks, tests).

>>> # records = await read_to_end(settings.kafka, "book.top")
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from algostream.config import KafkaConfig
from algostream.kafka.clients import client_kwargs
from algostream.kafka.headers import sent_ns


@dataclass(frozen=True)
class TopicRecord:
    """One record as read back: where it is, its bytes, its Kafka timestamp (ms) and the
    ``algostream-sent-ns`` header (``None`` if absent)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    ts_ms: int
    sent_ns: int | None


async def partitions(consumer: AIOKafkaConsumer, name: str, timeout_s: float = 10.0) -> set[int]:
    """The partitions of topic ``name`` (waits for metadata; error if it does not exist)."""
    deadline = time.monotonic() + timeout_s
    while True:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(name)
        if parts:
            return set(parts)
        if time.monotonic() >= deadline:
            raise LookupError(f"topic {name!r} does not exist")
        await asyncio.sleep(0.2)


async def read_to_end(cfg: KafkaConfig, topic: str, timeout_s: float = 60.0) -> list[TopicRecord]:
    """Every record of ``prefix + topic`` up to the end offsets at the time of the call,
    ordered by (partition, offset). ``TimeoutError`` if the end is not reached in time."""
    name = cfg.topic_prefix + topic
    consumer = AIOKafkaConsumer(
        **client_kwargs(cfg),
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        isolation_level="read_committed",  # never a fenced trading worker's aborted records
    )
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in sorted(await partitions(consumer, name))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pos = dict.fromkeys(tps, 0)
        out: list[TopicRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(pos[tp] < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {name} to its end in {timeout_s:.0f} s")
            batch = await consumer.getmany(timeout_ms=500, max_records=20000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(
                        TopicRecord(
                            name,
                            m.partition,
                            m.offset,
                            m.key,
                            m.value,
                            m.timestamp,
                            sent_ns(m.headers),
                        )
                    )
                    pos[tp] = m.offset + 1
            for tp in tps:  # past transaction markers and aborted records (never records)
                if pos[tp] < end[tp]:
                    pos[tp] = max(pos[tp], await consumer.position(tp))
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()
