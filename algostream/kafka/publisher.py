"""Publishing records from non-Faust processes (ingestor, CLI, replay).

:class:`KafkaPublisher` wraps an idempotent aiokafka producer: ``publish`` queues a record
and returns at once; delivery results are tracked so ``flush`` can say exactly how many
records were sent, delivered and failed. A send that fails (broker down past the delivery
timeout) is retried with backoff up to ``max_retries`` before it counts as failed, so a
broker restart within the bound loses nothing and every loss is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from algostream.config import KafkaConfig
from algostream.kafka.clients import make_producer
from algostream.model.records import Record

log = structlog.get_logger("algostream.kafka.publisher")


class Publisher(Protocol):
    """Where processors' outputs go: Kafka in production, a list in tests and backtests."""

    async def publish(self, topic: str, record: Record) -> None: ...


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


class ListPublisher:
    """Collects ``(topic, record)`` pairs in memory (tests, backtests)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, Record]] = []

    async def publish(self, topic: str, record: Record) -> None:
        self.records.append((topic, record))

    def on(self, topic: str) -> list[Record]:
        return [r for t, r in self.records if t == topic]


class KafkaPublisher:
    """Publish records keyed by ``record.key`` to ``prefix + topic``."""

    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        max_retries: int = 5,
        retry_backoff_s: float = 1.0,
        producer: AIOKafkaProducer | None = None,
        on_delivered: Callable[[str, Record], Awaitable[None] | None] | None = None,
    ) -> None:
        self.prefix = cfg.topic_prefix
        self.producer = producer or make_producer(cfg)
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.stats = DeliveryStats()
        self._pending: set[asyncio.Task[None]] = set()
        self._on_delivered = on_delivered

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.flush()
        await self.producer.stop()

    async def publish(self, topic: str, record: Record) -> None:
        self.stats.sent += 1
        self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
        fut = await self.producer.send(
            self.prefix + topic, record.encode(), key=record.key.encode()
        )
        task = asyncio.ensure_future(self._track(fut, topic, record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _track(self, fut: asyncio.Future[object], topic: str, record: Record) -> None:
        attempt = 0
        while True:
            try:
                await fut
                self.stats.delivered += 1
                if self._on_delivered is not None:
                    result = self._on_delivered(topic, record)
                    if result is not None:
                        await result
                return
            except KafkaError as exc:
                attempt += 1
                if attempt > self.max_retries:
                    self.stats.failed += 1
                    log.error(
                        "record lost after retries",
                        topic=topic,
                        error=repr(exc),
                        record_id=record.record_id,
                    )
                    return
                self.stats.retried += 1
                log.warning("send failed, retrying", topic=topic, attempt=attempt, error=repr(exc))
                await asyncio.sleep(self.retry_backoff_s * attempt)
                fut = await self.producer.send(
                    self.prefix + topic, record.encode(), key=record.key.encode()
                )

    async def flush(self) -> DeliveryStats:
        """Wait until every queued record is delivered or counted as failed."""
        await self.producer.flush()
        while self._pending:
            await asyncio.gather(*list(self._pending))
        return self.stats
