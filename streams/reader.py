"""Batch readers: the market worker's ``md.book`` and ``md.trades``, the trading worker's
taps (``book.top``, ``md.trades``) and its proposals, read in batches, not by Faust agents.
The readers' client is ``kafka.reader_client`` (:mod:`streams.reader_clients`: librdkafka,
or aiokafka as before); the trading gate's reader of its proposals keeps aiokafka.

Faust hands an agent one record at a time (~135 µs of CPU per record before any work, and
its fetch loop drops records around rebalances that the offset guard must re-read), which
held the book path to ~900-1,100 updates/s per worker; the trades took the same path into
the bar stage (py-spy: ~18% of a draining market worker's samples for a fifth of its
records, and the largest stage of tick-to-trade). :class:`PartitionReader` takes batches
of up to ``MAX_BATCH`` records of its topics with one consumer and hands each topic's part
of a batch to its stage (:meth:`PartitionReader.read`: the book stage, :mod:`streams.book`;
the bar stage, :mod:`streams.bars`), which writes each changed state key once per batch.
The trading worker's readers (:func:`tap`, and the gate's in :mod:`streams.risk`) keep its
Faust consumer to the quiet trading topics.

Faust still decides who owns what: ``md.trades`` (``orders.proposed`` for the gate) is
held (:meth:`Edge.hold <streams.edge.Edge.hold>`: subscribed, assigned by Faust, never
fetched by it), and the market reader reads the partitions of ``md.book`` and
``md.trades`` (same instruments, same numbers) Faust assigned to this worker, once the
tables have been recovered for them. Each reader commits its offsets in a consumer group
of its own (``<app id>-<name>``: ``-book``, ``-taps``, ``-proposals``; manual assignment)
after Faust's producer is flushed (commit after produce: the stages' outputs and state
writes, and what this worker's later stages sent in-process, are on the broker first).

Scale-out: workers of the role share the instruments' partitions, and a partition's state
moves with it. At the start of every rebalance (before Faust commits and flushes) the
reader stops, commits what it processed and calls the stages' hand-over hooks, which drop
their in-memory state; when the rebalance is complete it reads the partitions it now owns
from their committed offsets, and an instrument is restored from the tables at its first
record (a partition that comes back continues from the state its other owner saved).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import faust
import structlog
from aiokafka import TopicPartition

from algostream.config import KafkaConfig, Settings
from algostream.kafka.clients import make_admin
from algostream.model.records import Record
from algostream.observability import metrics
from streams.edge import Edge, Rejected
from streams.framework import FETCH_MAX_WAIT_MS
from streams.reader_clients import ReaderClient, reader_client

log = structlog.get_logger("algostream.streams")
R = TypeVar("R", bound=Record)

#: most records taken in one batch (one state write per changed key per batch)
MAX_BATCH = 500
#: offsets are committed (after a producer flush) this often, and at every rebalance
COMMIT_INTERVAL_S = 1.0
#: the topic whose Faust assignment says which instruments' partitions this worker reads
ANCHOR = "md.trades"
#: the taps' fetches: wait up to this long for this much data. A fetch round trip costs
#: aiokafka a few hundred µs of CPU; answered at the first record (as the market reader's
#: are, latency first) the trading worker's tap made ~300 a second for ``book.top`` and
#: that was most of its busy time (py-spy), taking turns with the proposals' hop. A top
#: reaches the gate's marks and the paper broker at most this much later; tick-to-trade
#: does not wait for it (the fill is the order's, against the broker's latest top).
TAP_FETCH_WAIT_MS = 20
TAP_FETCH_MIN_BYTES = 256 * 1024

#: a stage's part of one batch: partition -> its records, in offset order
BatchHandler = Callable[[dict[TopicPartition, list[Any]]], Awaitable[None]]

#: fault injection (fault tests): ``<reader name>:<path>``: when the named reader finds the
#: file ``path`` with a batch fetched, it deletes it and never handles that batch (nor any
#: other: it hangs for good, holding no lock)
FAULT_HANG_ENV = "ALGOSTREAM_FAULT_HANG"

_READERS: weakref.WeakKeyDictionary[Edge, dict[str, PartitionReader]] = weakref.WeakKeyDictionary()


def reader_of(
    app: faust.App, edge: Edge, settings: Settings, name: str, anchor: str | None
) -> PartitionReader:
    """The worker's reader ``name`` (made, with its task and timers, at the first call)."""
    readers = _READERS.setdefault(edge, {})
    reader = readers.get(name)
    if reader is None:
        reader = readers[name] = PartitionReader(app, edge, settings, name, anchor)
        edge.before_revoke(reader.hand_over)
        app.on_rebalance_complete.connect(reader.take_over)  # type: ignore[arg-type, unused-ignore]
        app.task(reader.run)
        app.timer(interval=COMMIT_INTERVAL_S, name=f"{name}-commit")(reader.commit)
        app.timer(interval=5.0, name=f"{name}-lag")(reader.report_lag)
    return reader


async def decoded(
    edge: Edge,
    batch: dict[TopicPartition, list[Any]],
    topic: str,
    record_type: type[R],
    agent: str,
) -> AsyncIterator[tuple[TopicPartition, Any, R]]:
    """Each record of a stage's batch (of catalog ``topic``) that decodes, with its
    partition and consumer record, in order; the others go to ``dlq`` as ``agent``'s."""
    for tp, records in batch.items():
        edge.count_in(agent, topic, len(records))
        for rec in records:
            try:
                record = record_type.decode(rec.value)
            except Exception as exc:  # any decode failure is a dead letter
                await edge.dead_letter_raw(rec, rec.timestamp, exc, agent)
                continue
            yield tp, rec, record


async def group_offsets(
    cfg: KafkaConfig, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The offsets consumer group ``group`` committed for ``tps`` (those it has). A reader
    whose own group has none continues from its worker's Faust group: the agents that read
    the topic before it did (an upgraded trading worker would otherwise replay every
    retained ``book.top`` into its paper broker). ``{}`` if the broker cannot say."""
    admin = make_admin(cfg)
    try:
        await admin.start()
        found = await admin.list_consumer_group_offsets(group, partitions=tps)
    except Exception as exc:  # an unreachable coordinator: the log start, as before
        log.warning("no offsets of the Faust group to continue from", error=repr(exc))
        return {}
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in found.items() if meta is not None and meta.offset >= 0}


def reached(processed: dict[TopicPartition, int], target: dict[TopicPartition, int]) -> bool:
    """Every partition of ``target`` processed up to its offset there (a partition no
    longer read counts as done: it moved away)."""
    return all(processed.get(tp, offset) >= offset for tp, offset in target.items())


def readers(edge: Edge) -> dict[str, PartitionReader]:
    """The readers of ``edge``'s worker, by name."""
    return dict(_READERS.get(edge, {}))


def market_reader(app: faust.App, edge: Edge, settings: Settings) -> PartitionReader:
    """The market stages' reader: the instruments' partitions Faust gave this worker."""
    return reader_of(app, edge, settings, "book", ANCHOR)


def tap(
    app: faust.App,
    edge: Edge,
    settings: Settings,
    topic: str,
    record_type: type[Record],
    agent: str,
    handler: Callable[[Any], Awaitable[None]],
) -> None:
    """Read every partition of ``topic`` with this worker's ``taps`` reader, decode each
    record once and hand it to ``handler``; an undecodable record (or one the handler
    refuses: :class:`~streams.edge.Rejected`) is a dead letter of ``agent``. For the
    trading worker: its gate and paper broker both need every instrument's ``book.top``,
    and its paper broker every trade, whichever worker makes them, while its Faust
    consumer keeps to the quiet trading topics (a proposal's fetch no longer waits behind
    the tops')."""
    reader = reader_of(app, edge, settings, "taps", None)
    name = edge.topic(topic).get_topic_name()
    if name in reader.handlers:
        raise ValueError(f"topic {topic!r} is tapped twice")

    async def handle(batch: dict[TopicPartition, list[Any]]) -> None:
        async for _, rec, record in decoded(edge, batch, topic, record_type, agent):
            try:
                await handler(record)
            except Rejected as exc:  # decodes, but its stage refuses it
                await edge.dead_letter_raw(rec, rec.timestamp, exc, agent)

    reader.read(topic, handle)


class PartitionReader:
    """Reads its stages' topics in batches (module doc): with an ``anchor``, the
    partitions whose anchor partition Faust assigned to this worker; without, every
    partition. Offsets are committed in the group ``<app id>-<name>``."""

    def __init__(
        self, app: faust.App, edge: Edge, settings: Settings, name: str, anchor: str | None
    ) -> None:
        self.app = app
        self.edge = edge
        self.settings = settings
        self.name = name
        self.anchor = None if anchor is None else edge.hold(anchor).get_topic_name()
        self.group = f"{app.conf.id}-{name}"
        #: full topic name -> the stage that takes its records (in registration order)
        self.handlers: dict[str, BatchHandler] = {}
        self._hand_over_hooks: list[Callable[[], None]] = []
        self.consumer: ReaderClient | None = None
        #: librdkafka under the readers (``kafka.reader_client``) but the trading gate's,
        #: whose offsets go into the account transaction (:mod:`streams.fencing`) and whose
        #: fetch is on the latency path: it keeps aiokafka
        self.rdkafka = name != "proposals" and settings.kafka.reader_client == "rdkafka"
        self.ready = asyncio.Event()  # set while this worker reads its partitions
        self.busy = asyncio.Lock()  # one batch, a commit or a hand-over at a time
        #: partition -> next offset to read, for what was processed and written (sent)
        self.processed: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.epoch = 0  # hand-overs so far: a commit begun before one is dropped
        #: set once this reader has processed its partitions up to their end offsets as
        #: of its last take-over (the backlog it was given); cleared at a hand-over
        self.caught_up = asyncio.Event()
        self.catch_up_to: dict[TopicPartition, int] = {}
        #: readers that must have caught up before this one handles a batch (:meth:`after`)
        self.waits_for: list[PartitionReader] = []
        self._advanced = asyncio.Event()  # set (and replaced) at every batch handled
        name_, _, path = os.environ.get(FAULT_HANG_ENV, "").partition(":")
        self._hang_file = path if name_ == name and path else None
        #: commits outputs and offsets together (the trading gate's account transaction,
        #: :mod:`streams.fencing`) instead of a producer flush and a consumer commit;
        #: False: not committed (fenced), the offsets stay where they were
        self.committer: Callable[[dict[TopicPartition, int], str], Awaitable[bool]] | None = None
        #: commit after every batch (the gate: its decisions become visible at a commit)
        self.commit_every_batch = False
        #: awaited at every take-over before the committed offsets are read (the gate
        #: fences an older owner first: its open transaction cannot commit after the read)
        self.before_take_over: list[Callable[[], Awaitable[None]]] = []

    def read(
        self, topic: str, handler: BatchHandler, forget: Callable[[], None] | None = None
    ) -> str:
        """Hand ``handler`` this worker's records of catalog ``topic`` (co-partitioned with
        the anchor) batch by batch; ``forget`` is called at every hand-over, with no batch
        running, to drop the stage's in-memory state. Returns the topic's full name."""
        name = self.edge.topic(topic).get_topic_name()
        if self.anchor is not None:
            parts, anchor = self.edge.catalog[topic].partitions, self.edge.catalog_name(self.anchor)
            if parts != self.edge.catalog[anchor].partitions:
                raise ValueError(
                    f"topic {topic!r} has {parts} partitions and {anchor!r} "
                    f"{self.edge.catalog[anchor].partitions}: the reader needs them "
                    "co-partitioned"
                )
        self.handlers[name] = handler
        if forget is not None:
            self._hand_over_hooks.append(forget)
        return name

    def after(self, other: PartitionReader) -> None:
        """Handle no batch until ``other`` has read the backlog it was given at its last
        take-over: the trading worker's gate decides no proposal before its tap has brought
        its marks up to the ``book.top`` that was there when the worker started (a worker
        started on a backlog read its proposals first and rejected every one for want of
        a book, ``NO_MARKET_DATA``, while its tap was still reading the tops before them)."""
        if other is not self and other not in self.waits_for:
            self.waits_for.append(other)

    def _check_caught_up(self) -> None:
        if not self.caught_up.is_set() and reached(self.processed, self.catch_up_to):
            self.caught_up.set()
            log.info(f"reader {self.name} caught up", offsets=sum(self.catch_up_to.values()))

    async def _consumer(self) -> ReaderClient:
        if self.consumer is None:
            consumer = reader_client(
                self.settings.kafka,
                rdkafka=self.rdkafka,
                group_id=self.group,
                client_id=f"{self.settings.kafka.client_id}-{self.edge.role}-{self.name}",
                max_poll_records=MAX_BATCH,
                # the trading worker's outputs are transactional (streams.fencing): an
                # aborted (fenced) record is never read
                isolation_level="read_committed" if self.edge.txn else "read_uncommitted",
                **(
                    {"fetch_max_wait_ms": FETCH_MAX_WAIT_MS}
                    if self.anchor is not None
                    else {
                        "fetch_max_wait_ms": TAP_FETCH_WAIT_MS,
                        "fetch_min_bytes": TAP_FETCH_MIN_BYTES,
                    }
                ),
            )
            await consumer.start()
            self.consumer = consumer
        return self.consumer

    def owned(self) -> list[TopicPartition]:
        """The partitions of every stage's topic whose anchor partition Faust assigned here
        (without an anchor: all of them)."""
        if self.anchor is None:
            catalog, short = self.edge.catalog, self.edge.catalog_name
            return [
                TopicPartition(name, p)
                for name in self.handlers
                for p in range(catalog[short(name)].partitions)
            ]
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # consumer not started
            return []
        parts = sorted(tp.partition for tp in assigned if tp.topic == self.anchor)
        return [TopicPartition(name, p) for name in self.handlers for p in parts]

    async def take_over(self, *_: Any, **__: Any) -> None:
        """A rebalance is complete (tables recovered): read the partitions owned now, each
        from its committed offset (without one: the Faust group's, else the log start)."""
        consumer = await self._consumer()
        async with self.busy:
            for hook in self.before_take_over:
                await hook()
            tps = self.owned()
            self.processed, self.committed = {}, {}
            start = await consumer.committed(tps)
            if any(offset is None for offset in start.values()):
                # none yet: continue where the worker's Faust agents for these topics
                # stopped (before this reader read them), else from the log start
                earlier = await group_offsets(self.settings.kafka, self.app.conf.id, tps)
                start = {tp: earlier.get(tp) if o is None else o for tp, o in start.items()}
            for tp, committed in (await consumer.begin(start)).items():
                self.processed[tp] = self.committed[tp] = committed
            self.catch_up_to = await consumer.end_offsets(tps) if tps else {}
            log.info(
                f"reader {self.name} assigned",
                partitions=sorted({tp.partition for tp in tps}),
                topics=[self.edge.catalog_name(name) for name in self.handlers],
                client="rdkafka" if self.rdkafka else "aiokafka",
            )
            self.ready.set()
            self._check_caught_up()

    async def hand_over(self) -> None:
        """A rebalance begins: stop, commit what was processed, have the stages forget
        their state (their partitions may move; restored from the tables when next read)."""
        self.ready.clear()
        self.caught_up.clear()
        async with self.busy:
            self.epoch += 1
            offsets = self._due()
            if offsets:
                await self._flush_and_commit(offsets)
            for forget in self._hand_over_hooks:
                forget()
            if self.consumer is not None:
                await self.consumer.unassign()
            self.processed, self.committed = {}, {}

    async def commit(self) -> None:
        """What was processed, once its outputs and state writes are on the broker. The
        flush runs outside the lock: the reader goes on meanwhile."""
        if not self.ready.is_set() or not (offsets := self._due()):
            return
        epoch = self.epoch
        if self.committer is None:
            await self._flush()
        async with self.busy:
            if self.epoch == epoch and self.ready.is_set():
                if self.committer is None:
                    await self._commit(offsets)
                else:
                    await self._flush_and_commit(self._due())

    def _due(self) -> dict[TopicPartition, int]:
        return {tp: o for tp, o in self.processed.items() if o > self.committed.get(tp, -1)}

    async def _flush(self) -> None:
        """Everything sent so far is on the broker: the stages send straight to the app's
        aiokafka producer, and their in-process consumers (features, signals and, in the
        ``single`` layout, the gate) write tables through Faust's buffer, which its
        ``flush`` drains first."""
        await self.app.producer.flush()

    async def _flush_and_commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Outputs first, then the offsets (in one transaction with a committer)."""
        if self.committer is None:
            await self._flush()
            await self._commit(offsets)
        elif offsets and await self.committer(offsets, self.group):
            self.committed.update(offsets)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.consumer is not None:
            await self.consumer.commit(offsets)
            self.committed.update(offsets)

    async def run(self) -> None:
        consumer = await self._consumer()
        try:
            while True:
                await self.ready.wait()
                for other in self.waits_for:
                    if not other.caught_up.is_set():
                        log.info(f"reader {self.name} waits for reader {other.name}")
                        await other.caught_up.wait()
                epoch = self.epoch
                batch = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
                if not batch:
                    continue
                if self._hang_file is not None and os.path.exists(self._hang_file):
                    os.unlink(self._hang_file)
                    log.warning(f"reader {self.name}: hanging on purpose ({FAULT_HANG_ENV})")
                    await asyncio.Event().wait()  # the injected fault: never set
                async with self.busy:
                    if not self.ready.is_set():
                        continue  # fetched before a hand-over: read again from the commit
                    if self.epoch != epoch:
                        # fetched across a hand-over and take-over: it may hold records
                        # of either assignment; read again from what was processed
                        await consumer.begin(dict(self.processed))
                        continue
                    await self.handle(batch)
        finally:  # the worker stops: what was processed is committed (best effort)
            try:
                await asyncio.wait_for(self.hand_over(), COMMIT_INTERVAL_S * 5)
            except Exception as exc:
                log.warning("reader: no final commit", error=repr(exc))
            await consumer.stop()

    async def handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """One ``getmany`` batch: each stage's part in registration order (the book before
        the trades); the offsets move on only once the stages are done with it (their
        outputs are with the producer; a commit flushes the producer first)."""
        mine = {tp: records for tp, records in batch.items() if tp in self.processed}
        for name, handler in self.handlers.items():
            part = {tp: records for tp, records in mine.items() if tp.topic == name}
            if part:
                await handler(part)
        for tp, records in mine.items():
            self.processed[tp] = records[-1].offset + 1
        if self.commit_every_batch and mine:
            await self._flush_and_commit(self._due())
        self._check_caught_up()
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def advance(self, timeout_s: float) -> bool:
        """Wait for this reader's next batch to be handled; False if none came in
        ``timeout_s`` (nothing more to read, or it is not reading)."""
        try:
            await asyncio.wait_for(self._advanced.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def _lags(self) -> Iterator[tuple[TopicPartition, int]]:
        """Each partition's records (as of its last fetch) not yet processed here, for
        the partitions whose end is known."""
        for tp, offset in self.processed.items():
            highwater = self.highwater(tp)
            if highwater is not None:
                yield tp, highwater - offset

    def behind(self) -> bool:
        """Some partition has records (as of its last fetch) not yet processed here."""
        return any(lag > 0 for _, lag in self._lags())

    def fetched_at_ns(self, tp: TopicPartition) -> int | None:
        """Wall time (ns) of the last fetch response for ``tp`` (None: not fetched since
        it was assigned here, or not assigned)."""
        return None if self.consumer is None else self.consumer.fetched_at_ns(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's end offset as of the last fetch (None: not known yet)."""
        return None if self.consumer is None else self.consumer.highwater(tp)

    async def report_lag(self) -> None:
        if not self.ready.is_set():
            return
        for tp, lag in self._lags():
            metrics.CONSUMER_LAG.labels(
                agent=self.edge.role,
                topic=self.edge.catalog_name(tp.topic),
                partition=str(tp.partition),
            ).set(max(0, lag))
