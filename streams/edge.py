"""The edge every agent shares: decode at the edge (bad records to ``dlq`` with the reason,
source topic, partition and offset, and the agent keeps going), send to catalog topics,
hand records to the stages of the same worker in-process (:meth:`Edge.listen`), and say
which partitions this worker owns.

Commit after produce: Faust flushes the producer before it commits offsets
(``Consumer._commit_offsets``), so an input offset is committed only after the outputs sent
while processing it are on the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import faust
import structlog

from algostream.config import Settings
from algostream.kafka.catalog import Catalog
from algostream.kafka.clients import Partitions
from algostream.kafka.dlq import dead_letter
from algostream.kafka.headers import SENT_NS_HEADER
from algostream.model.records import Record
from algostream.observability import metrics
from streams.continuity import OffsetGuard

R = TypeVar("R", bound=Record)
#: an in-process stage's handler of one record (:mod:`streams.stage`)
LocalHandler = Callable[[Any], Awaitable[None]]
log = structlog.get_logger("algostream.streams")


class Rejected(ValueError):
    """A record that decodes but that its stage refuses (:mod:`streams.stage`): read from
    a topic, it goes to ``dlq`` with this reason; taken in-process, it is logged."""


class Edge:
    """Decode-at-the-edge and send helpers bound to one app and the catalog."""

    def __init__(
        self, app: faust.App, settings: Settings, catalog: Catalog, role: str = "worker"
    ) -> None:
        self.app = app
        self.role = role
        self.settings = settings
        self.catalog = catalog
        self.prefix = settings.kafka.topic_prefix
        self._topics: dict[str, faust.TopicT] = {}
        self.guard = OffsetGuard(app)  # re-reads records skipped across a rebalance
        self.guard.install()
        #: topic -> stages of this worker that take its records in-process (the hot path)
        self._local: dict[str, list[LocalHandler]] = {}
        #: topic -> how this worker's stages take it -> which (:func:`streams.stage.wire`)
        self.wiring: dict[str, dict[str, list[str]]] = {}
        #: full names of topics Faust assigns here but never fetches (:meth:`hold`)
        self.held: set[str] = set()
        app._algostream_held = self.held  # type: ignore[attr-defined]
        self._owned: dict[str, bool] = {}  # owns() per topic, until the next rebalance
        #: (topic, key) -> the producer's partition for it (:class:`Outbox`)
        self.partitions = Partitions()
        app.on_partitions_assigned.connect(self._forget_owned)
        app.on_partitions_revoked.connect(self._forget_owned)
        self._revoke_hooks: list[Callable[[], Awaitable[None]]] = []
        self._emptied_hooks: list[Callable[[], Awaitable[None]]] = []
        #: the trading worker's account transaction (:mod:`streams.fencing`), if any:
        #: :meth:`send` writes the trading outputs through it
        self.txn: Any = None
        wait_empty = app._consumer_wait_empty

        async def _wait_empty(consumer: Any, logger: Any) -> None:
            for hook in self._revoke_hooks:
                await hook()
            await wait_empty(consumer, logger)
            for hook in self._emptied_hooks:
                await hook()

        app._consumer_wait_empty = _wait_empty  # type: ignore[method-assign]

    async def _forget_owned(self, *_: Any, **__: Any) -> None:
        self._owned.clear()

    def before_revoke(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` at the start of a rebalance, before Faust waits for the acks,
        commits and flushes the producer. State an agent holds back (written in batches)
        must be written here: a write made later, in ``on_partitions_revoked``, is not
        covered by that flush, and the partition's next owner can build its recovery
        highwater before the write lands. Seen in the scale-out test: the next owner
        restored a book one update short of what the committed offset covered, and the
        book broke its chain there."""
        self._revoke_hooks.append(hook)

    def after_streams_empty(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` in a rebalance once the agents have handled what they had begun
        (after :meth:`before_revoke`'s hooks and Faust's wait for the acks), before Faust
        flushes the producer and commits: the account transaction commits and stops here,
        so an agent's record in flight is still handled and written with it."""
        self._emptied_hooks.append(hook)

    def hold(self, topic: str) -> faust.TopicT:
        """Have Faust assign ``topic``'s partitions to workers of this role, but never fetch
        them: a batch reader of this worker reads them (:mod:`streams.reader`), and Faust's
        assignment, rebalances and table recovery still decide which worker owns which
        partition. The topic is subscribed without an agent and its partitions stay paused
        in Faust's consumer (recovery resumes every other partition it assigned)."""
        held = self.topic(topic)
        name = held.get_topic_name()
        self.held.add(name)
        self.guard.watched.discard(name)  # nothing is delivered from it: never a hole
        self.app.topics.add(held)
        return held

    def catalog_name(self, full_name: str) -> str:
        """The catalog name of a (prefixed) topic, for metric labels."""
        return full_name[len(self.prefix) :] if full_name.startswith(self.prefix) else full_name

    def topic(self, name: str) -> faust.TopicT:
        """The Faust topic for a catalog entry (raw bytes, never declared by Faust)."""
        if name not in self.catalog:
            raise KeyError(f"topic {name!r} is not in topics/topics.toml")
        if name not in self._topics:
            spec = self.catalog[name]
            if spec.full_name(self.prefix) not in self.held:
                self.guard.watched.add(spec.full_name(self.prefix))
            self._topics[name] = self.app.topic(
                spec.full_name(self.prefix),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=spec.partitions,
                internal=False,
            )
        return self._topics[name]

    async def send(self, topic: str, record: Record) -> None:
        """Produce a record keyed by its ``key`` (flushed before the input is committed).

        The ``algostream-sent-ns`` header is the wall-clock time of the send (ns): with the
        lineage ids it gives each stage's latency at a finer grain than Kafka's ms timestamp.
        """
        name = self.topic(topic).get_topic_name()
        if self.txn is not None and topic in self.txn.topics:
            await self.txn.send(name, record.key.encode(), record.encode())
        else:
            await self.send_raw(name, record.key.encode(), record.encode())
        self.count_out(topic)

    def count_out(self, topic: str, n: int = 1) -> None:
        metrics.child(metrics.MESSAGES_OUT, agent=self.role, topic=topic).inc(n)

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        """Hand a record straight to the app's producer (not through ``Topic.send``).

        Faust's ``Topic.send`` costs ~120 µs of CPU more per record than the producer
        itself (channel, FutureMessage, sensors; measured with py-spy on the book agent).
        The producer is the app's, so ``app.producer.flush()`` before a commit still covers
        these records; a failed delivery is logged and counted, never silent. Returns the
        delivery future, for a caller that must know the record is on the broker.
        """
        fut = await self.app.producer.send(
            topic, key, value, partition, None, [(SENT_NS_HEADER, str(time.time_ns()).encode())]
        )
        acked = asyncio.ensure_future(fut)
        acked.add_done_callback(self.check_delivery)
        return acked

    def aiokafka_producer(self) -> Any | None:
        """The aiokafka producer inside the app's Faust producer (``None`` until started)."""
        return getattr(self.app.producer, "_producer", None)

    def check_delivery(self, fut: Any) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            metrics.SEND_FAILURES.labels(agent=self.role).inc()
            log.error("record not delivered", agent=self.role, error=repr(exc))

    def listen(self, topic: str, handler: LocalHandler) -> None:
        """Hand ``handler`` each record this worker publishes to ``topic`` (:meth:`publish`),
        in-process, right after it is sent: a stage of the same worker takes it with no
        Kafka hop (the record is on the topic either way, for everyone else)."""
        self._local.setdefault(topic, []).append(handler)

    def listens(self, topic: str) -> bool:
        """Whether a stage of this worker takes ``topic``'s records in-process (:meth:`listen`)."""
        return bool(self._local.get(topic))

    def assigned(self, topic: str) -> set[int]:
        """The partitions of catalog ``topic`` assigned to this worker (none before start)."""
        name = self.topic(topic).get_topic_name()
        try:
            return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == name}
        except Exception:  # consumer not started
            return set()

    def owns(self, topic: str) -> bool:
        """Whether every partition of ``topic`` is assigned to this worker (the trading
        topics have one: the worker that owns them decides for the account); cached until
        the next rebalance."""
        if self.txn is not None and self.txn.fenced:
            return False  # another worker owns the account now (streams.fencing)
        known = self._owned.get(topic)
        if known is None:
            known = self._owned[topic] = len(self.assigned(topic)) == self.catalog[topic].partitions
        return known

    async def publish(self, topic: str, record: Record) -> None:
        """:meth:`send`, then the in-process handlers of ``topic``."""
        await self.send(topic, record)
        await self.deliver(topic, record)

    async def deliver(self, topic: str, record: Record) -> None:
        """Only the in-process handlers of ``topic`` (the record was sent already)."""
        for handler in self._local.get(topic, ()):
            try:
                await handler(record)
            except Rejected as exc:  # made here, refused here: a bug to see, not a crash
                log.error("record refused in-process", topic=topic, error=str(exc))

    async def decode_or_dlq(
        self, event: faust.EventT[bytes], record_type: type[R], agent: str
    ) -> R | None:
        """Decode ``event`` into ``record_type``; on failure send a DeadLetter, return None.

        Also None (and nothing sent) for a record out of offset order, which is read again
        in order (:class:`~streams.continuity.OffsetGuard`).
        """
        if not await self.guard.admit(event, agent):
            return None
        value = event.value
        self.count_in(agent, self.catalog_name(event.message.topic))
        try:
            return record_type.decode(value)
        except Exception as exc:  # any decode failure is a dead letter, never a crash
            await self.dead_letter(event, exc, agent)
            return None

    async def records(
        self, stream: faust.StreamT[bytes], record_type: type[R], agent: str
    ) -> AsyncIterator[R]:
        """The decoded records of ``stream``; undecodable ones go to ``dlq`` and are skipped."""
        async for event in stream.events():
            record = await self.decode_or_dlq(event, record_type, agent)
            if record is not None:
                yield record

    async def dead_letter(self, event: faust.EventT[bytes], exc: BaseException, agent: str) -> None:
        msg = event.message
        ts_ms = int(msg.timestamp * 1e3) if msg.timestamp else 0
        await self.dead_letter_raw(msg, ts_ms, exc, agent)

    async def dead_letter_raw(self, msg: Any, ts_ms: int, exc: BaseException, agent: str) -> None:
        """The dead letter of a record read by any consumer (``topic``, ``partition``,
        ``offset``, ``key``, ``value`` attributes; ``ts_ms``: its Kafka timestamp)."""
        record = dead_letter(
            agent=agent,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            payload=msg.value,
            error=exc,
            ts_event=ts_ms * 1_000_000,
            now_ns=time.time_ns(),
        )
        log.warning(
            "dead letter",
            agent=agent,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            error=record.reason,
        )
        metrics.DLQ_RECORDS.labels(
            agent=agent, topic=self.catalog_name(msg.topic), error_type=record.error_type
        ).inc()
        await self.send("dlq", record)

    def count_in(self, agent: str, topic: str, n: int = 1) -> None:
        """Count ``n`` records in; the agent's DLQ series exist (at 0) from its first."""
        metrics.child(metrics.MESSAGES_IN, agent=agent, topic=topic).inc(n)
        metrics.child(metrics.DLQ_RECORDS, agent=agent, topic=topic, error_type="RecordDecodeError")
