"""Records bound for the producer, sent as one batch per topic partition (:class:`Outbox`)."""

from __future__ import annotations

import time
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from algostream.kafka.headers import SENT_NS_HEADER
from algostream.model.records import Record
from streams.edge import Edge


class Outbox:
    """Records bound for the producer, sent as one batch per topic partition.

    ``Edge.send`` hands the producer one record at a time: with ``linger.ms=0`` each record
    costs aiokafka a partition lookup, a future and often a small batch of its own (py-spy
    on the book stage: ~27% of its time in ``Producer.send``). A batch consumer collects
    what one input batch produces here (:meth:`add`, in order per partition) and hands each
    partition's records over at once (:meth:`send`, aiokafka ``send_batch``). The producer
    is the app's, so a flush before a commit covers these records too. A record's partition
    is the one the producer would pick (murmur2 of the key over the topic's partitions).
    """

    #: bytes per producer batch (aiokafka's default 16 KB holds ~15 ``book.top`` records)
    BATCH_BYTES = 512 * 1024

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.producer: Any = edge.aiokafka_producer()
        if self.producer is None:
            raise RuntimeError("the app's producer is not started (no aiokafka producer)")
        self._open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder
        self._full: list[tuple[str, int, Any]] = []
        self._counts: dict[str, int] = {}  # records per catalog topic, for MESSAGES_OUT
        self._names: dict[str, str] = {}  # catalog topic -> full name

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int) -> None:
        """Queue one record (``topic``: a full topic name) stamped with its send time."""
        headers = [(SENT_NS_HEADER, b"%d" % time.time_ns())]
        builder = self._open.get((topic, partition))
        if (
            builder is None
            or builder.append(timestamp=None, key=key, value=value, headers=headers) is None
        ):
            if builder is not None:
                self._full.append((topic, partition, builder))
            builder = self._open[(topic, partition)] = self._builder()
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                raise ValueError(f"record of {len(value or b'')} bytes exceeds a batch")

    async def add_record(self, topic: str, record: Record) -> None:
        """Queue ``record`` to the catalog topic ``topic``, keyed (and partitioned) by its
        ``key`` like :meth:`Edge.send`."""
        if not self.add_known(topic, record):
            name, key = self.edge.topic(topic).get_topic_name(), record.key.encode()
            await self.edge.partitions.of(self.producer, name, key)
            self.add_known(topic, record)

    def add_known(self, topic: str, record: Record) -> bool:
        """:meth:`add_record` without awaiting: False (nothing queued) when the partition
        of the record's key is not known yet (the first record of a key)."""
        name = self._names.get(topic)
        if name is None:
            name = self._names[topic] = self.edge.topic(topic).get_topic_name()
        key = record.key.encode()
        part = self.edge.partitions.get(name, key)
        if part is None:
            return False
        self.add(name, key, record.encode(), part)
        self._counts[topic] = self._counts.get(topic, 0) + 1
        return True

    def add_encoded(self, topic: str, name: str, key: bytes, value: bytes, partition: int) -> None:
        """Queue a record already encoded (the compiled book path's ``book.top``): catalog
        ``topic``, full topic ``name``, the partition of ``key``."""
        self.add(name, key, value, partition)
        self._counts[topic] = self._counts.get(topic, 0) + 1

    def _builder(self) -> BatchBuilder:
        """An empty producer batch of :attr:`BATCH_BYTES` (``create_batch`` with aiokafka's
        own settings, compression included, but room for a whole input batch)."""
        accumulator = self.producer._message_accumulator
        return BatchBuilder(self.BATCH_BYTES, accumulator._compression_type)

    async def send(self) -> None:
        """Hand every queued batch to the producer (waits only for producer room)."""
        batches = self._full + [(t, p, b) for (t, p), b in self._open.items()]
        self._full, self._open = [], {}
        for topic, partition, builder in batches:
            fut = await self.producer.send_batch(builder, topic, partition=partition)
            fut.add_done_callback(self.edge.check_delivery)
        for topic, n in self._counts.items():
            self.edge.count_out(topic, n)
        self._counts = {}
