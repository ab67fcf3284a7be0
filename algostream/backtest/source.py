"""Read history back from Kafka by time range, merged across partitions in event time.

``read_range`` finds the first offset at or after ``from_ns`` in every partition
(``offsets_for_times``), reads each partition up to its end offset at call time, and merges
the partitions by ``(ts_event, topic, partition, offset)`` (offset order kept within a
partition), so the same range always comes out in the same order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from algostream.config import KafkaConfig
from algostream.kafka.clients import client_kwargs


@dataclass(frozen=True, order=True)
class TopicRecord:
    """One record read back from a topic (``topic`` without the prefix)."""

    ts_event: int
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


def event_time(value: bytes, fallback_ns: int) -> int:
    """``ts_event`` of a record's JSON, or the broker timestamp for undecodable bytes."""
    try:
        ts = orjson.loads(value).get("ts_event")
    except (orjson.JSONDecodeError, AttributeError):
        return fallback_ns
    return ts if isinstance(ts, int) else fallback_ns


async def _read_partition(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    start: int,
    end: int,
    topic: str,
    to_ns: int | None,
) -> list[TopicRecord]:
    out: list[TopicRecord] = []
    if start >= end:
        return out
    consumer.assign([tp])
    consumer.seek(tp, start)
    while True:
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
        for rec in batch.get(tp, []):
            if rec.offset >= end:
                return out
            ts = event_time(rec.value, rec.timestamp * 1_000_000)
            # partitions are only roughly time-ordered: a record past to_ns is skipped and
            # reading goes on, to the end offset (checked for it too, or a range ending
            # before a partition's last record would never return)
            if to_ns is None or ts <= to_ns:
                out.append(
                    TopicRecord(
                        ts, topic, tp.partition, rec.offset, rec.timestamp, rec.key, rec.value
                    )
                )
            if rec.offset + 1 >= end:
                return out
        if await consumer.position(tp) >= end:
            return out  # the last offsets were transaction markers (never records)


async def read_range(
    cfg: KafkaConfig,
    topics: Iterable[str],
    from_ns: int | None = None,
    to_ns: int | None = None,
    prefix: str | None = None,
    last: int | None = None,
) -> list[TopicRecord]:
    """Every record of ``topics`` with event time in [from_ns, to_ns], in event-time order
    (with ``last``: only each partition's ``last`` records, its tail)."""
    prefix = cfg.topic_prefix if prefix is None else prefix
    consumer = AIOKafkaConsumer(
        **client_kwargs(cfg),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",  # never a fenced trading worker's aborted records
    )
    await consumer.start()
    try:
        per_partition: list[list[TopicRecord]] = []
        cluster = await consumer._client.fetch_all_metadata()
        for topic in topics:
            name = prefix + topic
            parts = cluster.partitions_for_topic(name) or set()
            tps = [TopicPartition(name, p) for p in sorted(parts)]
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            if from_ns is not None:
                found = await consumer.offsets_for_times({tp: from_ns // 1_000_000 for tp in tps})
                starts = {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}
            if last is not None:
                starts = {tp: max(starts[tp], ends[tp] - last) for tp in tps}
            for tp in tps:
                per_partition.append(
                    await _read_partition(consumer, tp, starts[tp], ends[tp], topic, to_ns)
                )
        return list(merge(per_partition, from_ns))
    finally:
        await consumer.stop()


def merge(
    streams: Iterable[Iterable[TopicRecord]],
    from_ns: int | None = None,
) -> Iterator[TopicRecord]:
    """Merge per-partition streams by event time with a total-order tie-break.

    Each input keeps its own (offset) order even where its event times step back (a
    snapshot published before the older diffs it was synced with), because a merge only
    ever takes the head of an input.
    """
    for rec in heapq.merge(*streams):
        if from_ns is None or rec.ts_event >= from_ns:
            yield rec
