"""Publishing records from non-Faust processes (ingestor, CLI, replay).

:class:`KafkaPublisher` wraps an idempotent aiokafka producer. ``publish`` puts a record
in an in-process FIFO buffer (bounded: ``max_buffered`` records) and returns at once; one
sender task hands the records to the producer *in publish order*. Ordering is never given
up for delivery:

* the producer is idempotent with a long request timeout (``delivery_timeout_ms``), so
  when the broker is unreachable aiokafka itself retries each batch, in order, one in
  flight per partition, and its sequence numbers drop any duplicate a retry would write;
* a record is never re-sent by this class after newer records were sent (that could
  reorder a partition such as ``md.book``); when the producer cannot even accept a record
  (its per-partition batch is full while the broker is away) the sender waits and offers
  the *same* record again, so nothing after it goes first;
* when the buffer is full ``publish`` waits (back-pressure) instead of dropping.

Everything is reported rather than hidden: a stall (undelivered records older than
``slow_after_s``) is logged when it starts and when it ends, with the count and duration;
a record the producer finally fails is logged and counted as lost. The metrics
``algostream_publisher_*`` (buffered/in-flight records, oldest undelivered age, delivered,
failed, stalls) show the same on ``/metrics``; :meth:`flush` returns exact counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from prometheus_client import Counter, Gauge

from algostream.config import KafkaConfig
from algostream.kafka.clients import Partitions, make_producer
from algostream.kafka.headers import SENT_NS_HEADER
from algostream.model.records import Record
from algostream.observability.metrics import REGISTRY, child

log = structlog.get_logger("algostream.kafka.publisher")

PUBLISHER_PENDING = Gauge(
    "algostream_publisher_pending_records",
    "Records published but not yet acknowledged by Kafka (buffered + in flight).",
    ("client",),
    registry=REGISTRY,
)
PUBLISHER_OLDEST_PENDING_SECONDS = Gauge(
    "algostream_publisher_oldest_pending_seconds",
    "Age of the oldest record not yet acknowledged by Kafka (0 when none).",
    ("client",),
    registry=REGISTRY,
)
PUBLISHER_DELIVERED = Counter(
    "algostream_publisher_delivered_total",
    "Records acknowledged by Kafka.",
    ("client", "topic"),
    registry=REGISTRY,
)
PUBLISHER_FAILED = Counter(
    "algostream_publisher_failed_total",
    "Records the producer gave up on (lost, each one logged).",
    ("client", "topic"),
    registry=REGISTRY,
)
PUBLISHER_STALLS = Counter(
    "algostream_publisher_stalls_total",
    "Times delivery stalled for longer than the publisher's slow threshold.",
    ("client",),
    registry=REGISTRY,
)

# aiokafka never expires a retried batch of an idempotent producer, but it does expire a
# batch whose partition has no known leader for longer than the request timeout (e.g.
# while a restarted broker elects itself); a long timeout keeps that from losing records.
DEFAULT_DELIVERY_TIMEOUT_MS = 300_000


class Publisher(Protocol):
    """Where processors' outputs go: Kafka in production, a list in tests and backtests."""

    async def publish(self, topic: str, record: Record) -> None: ...


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0
    retried: int = 0  # times the producer could not accept a record yet (offered again)
    failed: int = 0
    stalls: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    delivered_by_topic: dict[str, int] = field(default_factory=dict)


class ListPublisher:
    """Collects ``(topic, record)`` pairs in memory (tests, backtests)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, Record]] = []

    async def publish(self, topic: str, record: Record) -> None:
        self.records.append((topic, record))

    def on(self, topic: str) -> list[Record]:
        return [r for t, r in self.records if t == topic]


@dataclass
class _Item:
    seq: int
    topic: str
    record: Record
    queued: float  # time.monotonic() at publish


class KafkaPublisher:
    """Publish records keyed by ``record.key`` to ``prefix + topic``, in order."""

    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        max_buffered: int = 200_000,
        delivery_timeout_ms: int = DEFAULT_DELIVERY_TIMEOUT_MS,
        slow_after_s: float = 5.0,
        producer: AIOKafkaProducer | None = None,
        on_delivered: Callable[[str, Record], Awaitable[None] | None] | None = None,
    ) -> None:
        self.prefix = cfg.topic_prefix
        self.client = cfg.client_id
        self.producer = producer or make_producer(cfg, request_timeout_ms=delivery_timeout_ms)
        self.slow_after_s = slow_after_s
        self.stats = DeliveryStats()
        self._partitions = Partitions()  # the producer's own choice, worked out once per key
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_buffered)
        self._unacked: dict[int, _Item] = {}  # insertion order = publish order
        self._seq = 0
        self._callbacks: set[asyncio.Task[None]] = set()
        self._sender: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stalled_since: float | None = None
        self._full_logged = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._on_delivered = on_delivered
        self._pending_gauge = PUBLISHER_PENDING.labels(client=self.client)
        self._oldest_gauge = PUBLISHER_OLDEST_PENDING_SECONDS.labels(client=self.client)
        PUBLISHER_STALLS.labels(client=self.client)

    async def start(self) -> None:
        await self.producer.start()
        self._sender = asyncio.create_task(self._send_loop(), name="publisher-sender")
        self._monitor = asyncio.create_task(self._watch(), name="publisher-monitor")

    async def stop(self) -> None:
        await self.flush()
        await self.close()

    async def close(self) -> None:
        """Stop the background tasks and the producer (call :meth:`flush` first)."""
        for task in (self._sender, self._monitor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sender = self._monitor = None
        await self.producer.stop()

    @property
    def pending(self) -> int:
        """Records published and not yet acknowledged (or failed)."""
        return len(self._unacked)

    async def publish(self, topic: str, record: Record) -> None:
        """Buffer ``record`` for ``topic``; waits only when the buffer is full."""
        self._seq += 1
        item = _Item(self._seq, topic, record, time.monotonic())
        self.stats.sent += 1
        self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
        self._unacked[item.seq] = item
        self._drained.clear()  # the pending gauge follows every 0.5 s (check_stall)
        if self._queue.full() and not self._full_logged:
            self._full_logged = True
            log.warning(
                "publish buffer full: waiting for Kafka (back-pressure)",
                buffered=self._queue.qsize(),
                pending=len(self._unacked),
            )
        await self._queue.put(item)

    async def _send_loop(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                fut = await self._offer(item)
            except KafkaError as exc:  # not retriable (e.g. too large): lost, and said so
                fut = asyncio.get_running_loop().create_future()
                fut.set_exception(exc)
            try:
                fut.add_done_callback(functools.partial(self._delivered, item=item))
            finally:
                self._queue.task_done()
                if self._full_logged and self._queue.qsize() < self._queue.maxsize // 2:
                    self._full_logged = False

    async def _offer(self, item: _Item) -> asyncio.Future[Any]:
        """Hand ``item`` to the producer; while it cannot take it, wait and offer it again."""
        value, key = item.record.encode(), item.record.key.encode()
        topic = self.prefix + item.topic
        attempt = 0
        while True:
            try:
                part = self._partitions.get(topic, key)
                if part is None:
                    part = await self._partitions.of(self.producer, topic, key)
                fut: asyncio.Future[Any] = await self.producer.send(
                    topic,
                    value,
                    key=key,
                    partition=part,
                    headers=[(SENT_NS_HEADER, str(time.time_ns()).encode())],
                )
                return fut
            except KafkaTimeoutError as exc:
                # nothing was appended, and nothing after this record has been sent
                attempt += 1
                self.stats.retried += 1
                log.warning(
                    "producer cannot accept records (broker unreachable?): offering again",
                    topic=item.topic,
                    attempt=attempt,
                    pending=len(self._unacked),
                    error=repr(exc),
                )
            except KafkaError as exc:
                if not getattr(exc, "retriable", False):
                    raise
                attempt += 1
                self.stats.retried += 1
                log.warning("send refused, offering again", topic=item.topic, error=repr(exc))
                await asyncio.sleep(min(0.1 * attempt, 2.0))

    def _delivered(self, fut: asyncio.Future[Any], *, item: _Item) -> None:
        self._unacked.pop(item.seq, None)
        if not self._unacked:  # else the gauge follows every 0.5 s (check_stall)
            self._pending_gauge.set(0)
            self._drained.set()
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            self.stats.failed += 1
            PUBLISHER_FAILED.labels(client=self.client, topic=item.topic).inc()
            log.error(
                "record lost: the producer gave up on it",
                topic=item.topic,
                record_id=item.record.record_id,
                error=repr(exc) if exc is not None else "cancelled",
            )
            return
        self.stats.delivered += 1
        by = self.stats.delivered_by_topic
        by[item.topic] = by.get(item.topic, 0) + 1
        child(PUBLISHER_DELIVERED, client=self.client, topic=item.topic).inc()
        if self._on_delivered is not None:
            result = self._on_delivered(item.topic, item.record)
            if result is not None:
                task = asyncio.ensure_future(result)
                self._callbacks.add(task)
                task.add_done_callback(self._callbacks.discard)

    def _oldest_age(self, now: float) -> float:
        for item in self._unacked.values():
            return now - item.queued
        return 0.0

    async def _watch(self, interval_s: float = 0.5) -> None:
        """Log (once each) when delivery stalls and when it recovers; keep the gauges."""
        while True:
            await asyncio.sleep(interval_s)
            self.check_stall(time.monotonic())

    def check_stall(self, now: float) -> None:
        age = self._oldest_age(now)
        self._oldest_gauge.set(age)
        self._pending_gauge.set(len(self._unacked))
        if age >= self.slow_after_s and self._stalled_since is None:
            self._stalled_since = now - age
            self.stats.stalls += 1
            PUBLISHER_STALLS.labels(client=self.client).inc()
            log.warning(
                "kafka delivery stalled: records are buffered, in order, until it recovers",
                pending=len(self._unacked),
                oldest_s=round(age, 3),
            )
        elif age < self.slow_after_s and self._stalled_since is not None:
            log.warning(
                "kafka delivery recovered",
                stalled_s=round(now - self._stalled_since, 3),
                pending=len(self._unacked),
                delivered=self.stats.delivered,
                failed=self.stats.failed,
            )
            self._stalled_since = None

    async def flush(self) -> DeliveryStats:
        """Wait until every published record is delivered or counted as failed."""
        if self._sender is not None:
            await self._queue.join()
        await self.producer.flush()
        if self._sender is not None:
            await self._drained.wait()  # done-callbacks run on the next loop turns
        if self._callbacks:
            await asyncio.gather(*list(self._callbacks))
        return self.stats
