"""The Faust app and the edge every agent shares.

``create_app(settings, role)`` builds one Faust app per worker role (``market``,
``signals``, ``trading`` ...): each role is its own consumer group, so a worker runs only
its role's agents and roles scale independently. Topics carry raw bytes; records are
decoded at the edge by :func:`decode_or_dlq`, and anything undecodable goes to ``dlq``
with the reason, source topic, partition and offset, and the agent keeps going.

Commit after produce: Faust flushes the producer before it commits offsets
(``Consumer._commit_offsets``), so an input offset is committed only after the outputs sent
while processing it are on the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import faust
import structlog
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.serializers import codecs

from algostream.config import Settings
from algostream.kafka.catalog import Catalog, load_catalog
from algostream.kafka.clients import Partitions, faust_credentials
from algostream.kafka.dlq import dead_letter
from algostream.kafka.headers import SENT_NS_HEADER
from algostream.model.records import Record
from algostream.observability import metrics
from streams import framework
from streams.continuity import OffsetGuard, RecoveryWatchdog

R = TypeVar("R", bound=Record)
#: an in-process stage: ``(record, partition or None) -> None``
LocalHandler = Callable[[Any, "int | None"], Awaitable[None]]
log = structlog.get_logger("algostream.streams")


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

    def short(self, full_name: str) -> str:
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

    def listen(self, topic: str, handler: LocalHandler, *, first: bool = False) -> None:
        """Hand ``handler`` record this worker publishes to ``topic`` (:meth:`publish`),
        in-process, right after it is sent: a stage of the same worker takes it with no
        Kafka hop (the record is on the topic either way, for everyone else). ``first``:
        before the handlers already listening (a strategy sees a bar before its features)."""
        handlers = self._local.setdefault(topic, [])
        if first:
            handlers.insert(0, handler)
        else:
            handlers.append(handler)

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

    async def publish(self, topic: str, record: Record, partition: int | None = None) -> None:
        """:meth:`send`, then the in-process handlers of ``topic`` (``partition``: the
        record's, for handlers that write tables; the instrument's partition)."""
        await self.send(topic, record)
        await self.deliver(topic, record, partition)

    async def deliver(self, topic: str, record: Record, partition: int | None = None) -> None:
        """Only the in-process handlers of ``topic`` (the record was sent already)."""
        for handler in self._local.get(topic, ()):
            await handler(record, partition)

    async def send_all(self, records: list[tuple[str, Record]]) -> None:
        for topic, record in records:
            await self.send(topic, record)

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
        self.seen(agent, self.short(event.message.topic))
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
            agent=agent, topic=self.short(msg.topic), error_type=record.error_type
        ).inc()
        await self.send("dlq", record)

    def seen(self, agent: str, topic: str, n: int = 1) -> None:
        """Count ``n`` records in; the agent's DLQ series exist (at 0) from its first."""
        metrics.child(metrics.MESSAGES_IN, agent=agent, topic=topic).inc(n)
        metrics.child(metrics.DLQ_RECORDS, agent=agent, topic=topic, error_type="RecordDecodeError")


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


class DirectTable(faust.Table):  # type: ignore[type-arg]
    """A Faust table whose changelog records are sent straight to the producer.

    ``table[key] = value`` queues its changelog record in Faust's ProducerBuffer, which one
    task drains a record at a time, and Faust's conductor stops delivering records while
    that buffer holds more than 100: with a few level keys per book update this capped the
    book agent at ~300-500 updates/s while its own code used a fraction of a core
    (measured: 3.1 s waiting for records vs 0.5 s working per 1000). :meth:`write` sends
    the changelog record to the producer (awaited, so in order, and flushed before any
    commit like every other send) to the partition of the records that caused it.
    """

    @classmethod
    def add(cls, app: faust.App, name: str, partitions: int) -> DirectTable:
        table = cls(app, name=name, default=None, partitions=partitions)
        app.tables.add(table)
        return table

    async def write(self, edge: Edge, partition: int, key: str, value: Any) -> None:
        """Set (or, with ``value is None``, delete) ``key`` and send its changelog record."""
        await edge.send_raw(*self.stage(key, value), partition)

    def stage(self, key: str, value: Any) -> tuple[str, bytes | None, bytes | None]:
        """Set (or, with ``value is None``, delete) ``key``; its changelog record's topic,
        key and value, for the caller to send to the partition that caused it."""
        key_codec, value_codec = self._codecs
        if value is None:
            self.data.pop(key, None)
            payload = None
        else:
            self.data[key] = value
            payload = value_codec.dumps(value)
        raw_keys = self._raw_keys
        raw_key = raw_keys.get(key)
        if raw_key is None:
            if len(raw_keys) >= self.RAW_KEYS:
                raw_keys.clear()
            raw_key = raw_keys[key] = key_codec.dumps(key)
        return self._changelog_name, raw_key, payload

    #: serialised keys kept (level keys repeat: a price level is written again and again)
    RAW_KEYS = 100_000

    @cached_property
    def _raw_keys(self) -> dict[str, bytes]:
        return {}

    @cached_property
    def _codecs(self) -> tuple[Any, Any]:
        """The key and value codecs: what ``Topic.prepare_key/prepare_value`` use for a
        plain (non-``faust.Record``) value, without their registry lookups per call
        (3 -> ~1 µs a staged key; the same bytes, tested)."""
        return (
            codecs.get_codec(self.key_serializer or "json"),
            codecs.get_codec(self.value_serializer or "json"),
        )

    @cached_property
    def _changelog_name(self) -> str:
        return self.changelog_topic.get_topic_name()


class Recent:
    """The last ``size`` ids seen (a bounded, insertion-ordered set)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def add(self, item: str) -> None:
        self._ids[item] = None
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


def put(table: Any, key: str, value: Any, partition: int | None) -> None:
    """``table[key] = value``, its changelog record to ``partition`` when one is given.

    A stage called in-process (from another agent's task, or a timer, with no current
    event of the table's own source topic) names the partition of the record that caused
    the write: the instrument's partition, which is the same number on every topic keyed
    by instrument (they are co-partitioned), so a worker taking the partition over
    recovers the state with it.
    """
    if partition is None:
        table[key] = value  # from the table's own agent: the current event's partition
    else:
        table.data[key] = value
        table.send_changelog(partition, key, value)


def create_app(settings: Settings, role: str, **overrides: Any) -> tuple[faust.App, Edge]:
    """Build the Faust app for ``role`` from config; returns the app and its edge."""
    k = settings.kafka
    conf: dict[str, Any] = {
        "broker": f"kafka://{k.bootstrap_servers}",
        "broker_client_id": f"{k.client_id}-{role}",
        # SASL/TLS for real clusters: the same settings as algostream's own clients
        "broker_credentials": faust_credentials(k),
        "topic_partitions": 3,
        "topic_replication_factor": k.replication_factor,
        "topic_allow_declare": True,
        "store": k.table_store,
        "datadir": f"{k.data_dir}/{role}",
        "web_enabled": True,
        "web_port": k.web_port,
        "web_host": "127.0.0.1",
        "web_bind": "127.0.0.1",
        "producer_acks": -1 if k.acks == "all" else int(k.acks),
        "producer_linger_ms": k.linger_ms,
        "producer_max_batch_size": 1_048_576,
        # Faust's fetcher awaits a commit (producer flush + offset commit) inline every
        # `commit_every` acks, stalling the stream: at 100 it capped the book agent at
        # ~600 updates/s. Commits come from the 1 s interval timer instead.
        "broker_commit_every": 100_000,
        # a killed worker's partitions move to a live one within ~10 s, not Faust's 60 s
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        "broker_commit_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        "table_cleanup_interval": 30.0,
        "autodiscover": False,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    conf.update(overrides)
    framework.install()
    Path(conf["datadir"]).mkdir(parents=True, exist_ok=True)
    app = faust.App(f"{k.app_id}-{role}", **conf)
    RecoveryWatchdog(app).install()
    return app, Edge(app, settings, load_catalog(), role)
