"""The ingestor's publisher on librdkafka (``confluent-kafka``): same promises as
:class:`~algostream.kafka.publisher.KafkaPublisher`, a fifth of its CPU per record.

``publish`` hands the record to librdkafka's producer at once (``produce`` copies it into
the client's queue and returns; librdkafka's own threads batch, send and retry). What
:class:`KafkaPublisher` does in Python with aiokafka, librdkafka does in C with the same
guarantees:

* idempotent (``enable.idempotence``, acks=all): retries keep each partition's order and
  the broker drops the duplicates a retry would write; a record is retried until
  ``delivery_timeout_ms`` (default 5 min) before it counts as lost;
* keys go to the same partitions as aiokafka and the Java client (``murmur2_random``), so
  the workers' co-partitioned tables see the same split;
* when librdkafka's queue is full (the broker away for long), the record and everything
  published after it wait in a FIFO in this class and are offered again in order:
  ``publish`` then waits (back-pressure) once ``max_buffered`` records are held back.

Delivery reports are served on the event loop's thread (``poll(0)`` after each publish and
on a 50 ms timer), so the counters, the stall log ("kafka delivery stalled" /
"kafka delivery recovered") and the ``algostream_publisher_*`` metrics are the same as
:class:`KafkaPublisher`'s. The oldest undelivered age is kept to 0.1 s: records are
counted per 100 ms of their produce time (their Kafka timestamp), not one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import orjson
import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from algostream.config import KafkaConfig
from algostream.kafka.headers import SENT_NS_HEADER
from algostream.kafka.publisher import (
    DEFAULT_DELIVERY_TIMEOUT_MS,
    PUBLISHER_DELIVERED,
    PUBLISHER_FAILED,
    PUBLISHER_OLDEST_PENDING_SECONDS,
    PUBLISHER_PENDING,
    PUBLISHER_STALLS,
    DeliveryStats,
)
from algostream.model.records import Record

log = structlog.get_logger("algostream.kafka.publisher")
#: librdkafka's own log lines and client errors (a broker away: connection refused, all
#: brokers down). Under ``kafka.`` so the outage filter counts them as a Kafka client's
#: failed attempts and reports ``kafka unreachable`` / ``kafka reachable again`` instead
#: of one line per retry (:mod:`algostream.observability.outage`).
CLIENT_LOG = logging.getLogger("kafka.rdkafka")

_BUCKET_MS = 100  # resolution of the oldest-undelivered age
_POLL_EVERY = 8  # records produced between two polls for delivery reports (and the timer)


def rdkafka_config(cfg: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """librdkafka producer settings for ``cfg``: the same connection and security as
    :func:`~algostream.kafka.clients.client_kwargs`, idempotent when ``acks`` is all."""
    conf: dict[str, Any] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "client.id": cfg.client_id,
        "security.protocol": cfg.security_protocol.lower(),
        "acks": "all" if cfg.acks == "all" else cfg.acks,
        "enable.idempotence": cfg.acks == "all",
        "linger.ms": cfg.linger_ms,
        "compression.type": "none",
        "partitioner": "murmur2_random",  # aiokafka's and Java's choice for a key
        "socket.nagle.disable": True,
        "message.timeout.ms": DEFAULT_DELIVERY_TIMEOUT_MS,
        "queue.buffering.max.messages": 500_000,
        "log_level": 4,  # warnings and worse: a broker away is logged by this class
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL") and cfg.ssl_cafile:
        conf["ssl.ca.location"] = cfg.ssl_cafile
    if cfg.security_protocol.startswith("SASL"):
        conf["sasl.mechanism"] = cfg.sasl_mechanism or "PLAIN"
        conf["sasl.username"] = cfg.sasl_username or ""
        conf["sasl.password"] = cfg.sasl_password.get_secret_value() if cfg.sasl_password else ""
    return conf | overrides


class RdKafkaPublisher:
    """Publish records keyed by ``record.key`` to ``prefix + topic``, in order."""

    #: ``publish`` hands the record to the client before it returns (no sender task)
    hands_over_inline = True

    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        max_buffered: int = 200_000,
        delivery_timeout_ms: int = DEFAULT_DELIVERY_TIMEOUT_MS,
        slow_after_s: float = 5.0,
        **overrides: Any,
    ) -> None:
        self.prefix = cfg.topic_prefix
        self.client = cfg.client_id
        self.conf = rdkafka_config(cfg, **{"message.timeout.ms": delivery_timeout_ms} | overrides)
        self.producer: Producer | None = None
        self._send: Any = None  # the producer's produce and poll, once started
        self._poll: Any = None
        self.slow_after_s = slow_after_s
        self.max_buffered = max_buffered
        self.stats = DeliveryStats()
        self._names: dict[str, str] = {}  # prefixed topic -> topic
        self._full: dict[str, str] = {}  # topic -> prefixed topic
        self._unpolled = 0
        self._delivered_n: dict[str, int] = {}  # topic -> delivered, not yet on the counter
        self._held: deque[tuple[str, Record]] = deque()  # refused by a full queue, in order
        self._room = asyncio.Event()
        self._room.set()
        self._buckets: dict[int, int] = {}  # produce time // 100 ms -> undelivered records
        self._delivered: dict[str, Any] = {}  # topic -> its delivered counter child
        self._stalled_since: float | None = None
        self._refused_logged = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pending_gauge = PUBLISHER_PENDING.labels(client=self.client)
        self._oldest_gauge = PUBLISHER_OLDEST_PENDING_SECONDS.labels(client=self.client)
        PUBLISHER_STALLS.labels(client=self.client)

    async def start(self, ready_timeout_s: float = 10.0) -> None:
        self.producer = Producer(
            self.conf
            | {"error_cb": self._on_error, "on_delivery": self._on_delivery, "logger": CLIENT_LOG}
        )
        self._send, self._poll = self.producer.produce, self.producer.poll
        try:  # connected before the first record, as aiokafka's start() is: records
            # produced while it connects waited for it (up to ~0.5 s in a hop test)
            await asyncio.to_thread(self.producer.list_topics, None, ready_timeout_s)
        except KafkaException as exc:  # not fatal: librdkafka keeps trying by itself
            log.warning("kafka not reachable yet: records wait for it", error=str(exc))
        self._tasks = [
            asyncio.create_task(self._serve(), name="rdkafka-poll"),
            asyncio.create_task(self._watch(), name="publisher-monitor"),
        ]

    async def stop(self) -> None:
        await self.flush()
        await self.close()

    async def close(self) -> None:
        """Stop the background tasks (call :meth:`flush` first)."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def pending(self) -> int:
        """Records published and not yet acknowledged (or failed)."""
        s = self.stats
        return s.sent - s.delivered - s.failed

    # ------------------------------------------------------------------ publishing
    async def publish(self, topic: str, record: Record) -> None:
        """Hand ``record`` to the producer; waits only while ``max_buffered`` are held."""
        while len(self._held) >= self.max_buffered:  # back-pressure
            self._room.clear()
            await self._room.wait()
        self._take(topic, record)

    def try_publish(self, topic: str, record: Record) -> bool:
        """:meth:`publish` without a coroutine: False (and nothing done) when it would
        have to wait; the caller then awaits :meth:`publish`."""
        if len(self._held) >= self.max_buffered:
            return False
        self._take(topic, record)
        return True

    def _take(self, topic: str, record: Record) -> None:
        stats = self.stats
        stats.sent += 1
        by = stats.by_topic
        by[topic] = by.get(topic, 0) + 1
        if self._held or not self._produce(topic, record):
            self._held.append((topic, record))
            if len(self._held) == 1:  # the first held: a task offers them again
                self._tasks = [t for t in self._tasks if not t.done()]
                self._tasks.append(asyncio.create_task(self._offer_held(), name="rdkafka-held"))

    def _produce(self, topic: str, record: Record) -> bool:
        """``record`` into librdkafka's queue; False when the queue is full."""
        full = self._full.get(topic)
        if full is None:
            full = self._full[topic] = self.prefix + topic
            self._names[full] = topic
        now = time.time_ns()
        ms = now // 1_000_000
        try:
            self._send(
                full,
                record.encode(),
                record.key.encode(),
                timestamp=ms,
                headers=[(SENT_NS_HEADER, str(now).encode())],
            )
        except BufferError:
            return False
        except KafkaException as exc:  # refused for good (e.g. too large): lost, said so
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.fatal():
                raise
            self._lost(topic, record.record_id, str(exc))
            return True
        bucket = ms // _BUCKET_MS
        buckets = self._buckets
        buckets[bucket] = buckets.get(bucket, 0) + 1
        self._unpolled += 1
        if self._unpolled >= _POLL_EVERY:  # delivery reports: a few records at a time
            self._unpolled = 0
            self._poll(0)
        return True

    async def _offer_held(self) -> None:
        """Offer the held records again, oldest first, while the queue has room."""
        attempt = 0
        while self._held:
            topic, record = self._held[0]
            if self._produce(topic, record):
                self._held.popleft()
                if len(self._held) < self.max_buffered // 2:
                    self._room.set()
                continue
            attempt += 1
            self.stats.retried += 1
            if not self._refused_logged:
                self._refused_logged = True
                log.warning(
                    "producer cannot accept records (broker unreachable?): holding them",
                    held=len(self._held),
                    pending=self.pending,
                )
            await asyncio.sleep(min(0.01 * attempt, 0.2))
        self._refused_logged = False
        self._room.set()

    # ------------------------------------------------------------------ delivery
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        _, ts = msg.timestamp()
        bucket = ts // _BUCKET_MS
        buckets = self._buckets
        left = buckets.get(bucket, 0) - 1
        if left > 0:
            buckets[bucket] = left
        else:
            buckets.pop(bucket, None)
        full = msg.topic() or ""
        topic = self._names.get(full, full)
        if err is not None:
            try:
                record_id = orjson.loads(msg.value() or b"{}").get("record_id")
            except orjson.JSONDecodeError:
                record_id = None
            self._lost(topic, record_id, str(err))
            return
        self.stats.delivered += 1
        by = self.stats.delivered_by_topic
        by[topic] = by.get(topic, 0) + 1
        n = self._delivered_n
        n[topic] = n.get(topic, 0) + 1  # on the counter after each poll (_count_delivered)

    def _count_delivered(self) -> None:
        """Add the deliveries reported since the last call to ``algostream_publisher_
        delivered_total`` (once per poll, not once per record: a counter takes a lock)."""
        for topic, n in self._delivered_n.items():
            counter = self._delivered.get(topic)
            if counter is None:
                counter = self._delivered[topic] = PUBLISHER_DELIVERED.labels(
                    client=self.client, topic=topic
                )
            counter.inc(n)
        self._delivered_n.clear()

    def _lost(self, topic: str, record_id: str | None, error: str) -> None:
        self.stats.failed += 1
        PUBLISHER_FAILED.labels(client=self.client, topic=topic).inc()
        log.error(
            "record lost: the producer gave up on it",
            topic=topic,
            record_id=record_id,
            error=error,
        )

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's client-level errors (all brokers down, ...): it retries by itself;
        a fatal one (the idempotent producer's state lost) fails every later produce."""
        if err.fatal():
            log.error("kafka producer fatal error", error=str(err))
        CLIENT_LOG.warning("producer error: %s", err.str())

    async def _serve(self, interval_s: float = 0.05) -> None:
        """Delivery reports while nothing is published."""
        while True:
            await asyncio.sleep(interval_s)
            self._poll(0)
            self._count_delivered()

    # ------------------------------------------------------------------ health
    def _oldest_age(self, now: float) -> float:
        """Age (s) of the oldest record produced and not acknowledged; held ones count
        from when the producer first refused them (they are older still)."""
        for bucket in self._buckets:
            return max(0.0, now - bucket * _BUCKET_MS / 1000)
        return 0.0

    async def _watch(self, interval_s: float = 0.5) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.check_stall(time.time())

    def check_stall(self, now: float) -> None:
        """``now``: wall clock seconds (the buckets are the records' Kafka timestamps)."""
        age = self._oldest_age(now)
        self._oldest_gauge.set(age)
        self._pending_gauge.set(self.pending)
        if age >= self.slow_after_s and self._stalled_since is None:
            self._stalled_since = now - age
            self.stats.stalls += 1
            PUBLISHER_STALLS.labels(client=self.client).inc()
            log.warning(
                "kafka delivery stalled: records are buffered, in order, until it recovers",
                pending=self.pending,
                oldest_s=round(age, 3),
            )
        elif age < self.slow_after_s and self._stalled_since is not None:
            log.warning(
                "kafka delivery recovered",
                stalled_s=round(now - self._stalled_since, 3),
                pending=self.pending,
                delivered=self.stats.delivered,
                failed=self.stats.failed,
            )
            self._stalled_since = None

    async def flush(self) -> DeliveryStats:
        """Wait until every published record is delivered or counted as failed."""
        while self._held:
            await asyncio.sleep(0.01)
        if self.producer is not None:
            while self.producer.flush(0.05) > 0:  # a short block at a time, then yield
                await asyncio.sleep(0)
            self.producer.poll(0)
        self._count_delivered()
        self.check_stall(time.time())
        return self.stats


__all__ = ["KafkaException", "RdKafkaPublisher", "rdkafka_config"]
