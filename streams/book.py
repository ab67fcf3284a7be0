"""Book stage: ``md.book`` -> order book table -> ``book.top`` and ``book.integrity``.

A thin shell over :class:`~algostream.marketdata.processor.BookProcessor`. The table
``book-state`` (co-partitioned with ``md.book``) holds each book one price level per key
plus its chain position (:class:`~algostream.marketdata.persist.LevelStore`); what an
update changed is written with it, so the state and the committed offset move together
and a restarted worker continues exactly (a re-delivered update is recognised by its
update id and dropped).

``md.book`` is read by :class:`BookReader`, a batch consumer of its own, not a Faust agent:
Faust hands an agent one record at a time (~135 µs of CPU per record before any work, and
its fetch loop drops records around rebalances that the offset guard must re-read), which
held the book path to ~900-1,100 updates/s per worker. The reader takes ``getmany``
batches of up to ``MAX_BATCH`` records, writes each changed state key once per batch and
commits after the producer is flushed (commit after produce). Faust still decides who
owns what: the reader reads the ``md.book`` partitions whose ``md.trades`` partitions (same
instruments, same numbers) Faust assigned to this worker, once the ``book-state`` table
has been recovered for them, and it commits its offsets in a consumer group of its own
(``<app id>-book``, manual assignment).

Scale-out: workers of the role share the instruments' partitions, and a partition's books
move with it. At the start of every rebalance (before Faust commits and flushes) the reader
stops, writes what it holds, commits and drops its in-memory books; when the rebalance is
complete it reads the partitions it now owns from their committed offsets, and an
instrument is restored from the table at its first update (a partition that comes back
continues from the state its other owner saved). The stale timer only watches books this
worker holds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from algostream.config import Settings
from algostream.kafka.clients import make_consumer
from algostream.marketdata.persist import LevelStore
from algostream.marketdata.processor import BookProcessor
from algostream.model.records import BookTop, BookUpdate
from algostream.observability import metrics
from streams.app import FETCH_MAX_WAIT_MS, DirectTable, Edge, Outbox

log = structlog.get_logger("algostream.streams")

#: most md.book records taken in one batch (one state write per changed key per batch)
MAX_BATCH = 500
#: offsets are committed (after a producer flush) this often, and at every rebalance
COMMIT_INTERVAL_S = 1.0
AGENT = "book"


class _Pending(dict[str, Any]):
    """Writes of one instrument not yet in the table (``pop`` records a deletion)."""

    def pop(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self[key] = _DELETE
        return default


_DELETE = object()


class BookReader:
    """Reads ``md.book`` in batches for the partitions Faust gave this worker (module doc)."""

    def __init__(self, app: faust.App, edge: Edge, settings: Settings) -> None:
        self.app = app
        self.edge = edge
        self.settings = settings
        self.md = settings.market_data
        self.topic = edge.topic("md.book").get_topic_name()
        #: Faust assigns md.book's partition N with md.trades' partition N (one instrument)
        self.anchor = edge.topic("md.trades").get_topic_name()
        self.group = f"{app.conf.id}-book"
        self.table = DirectTable.add(app, "book-state", edge.catalog["md.book"].partitions)
        self.store = self.fresh()
        self.consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()  # set while this worker reads its partitions
        self.busy = asyncio.Lock()  # one batch, a commit or a hand-over at a time
        #: partition -> next offset to read, for what was processed and written (sent)
        self.processed: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.epoch = 0  # hand-overs so far: a commit begun before one is dropped

    def fresh(self) -> LevelStore:
        return LevelStore(BookProcessor(self.md.book_top_levels))

    async def _consumer(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            consumer = make_consumer(
                self.settings.kafka,
                group_id=self.group,
                client_id=f"{self.settings.kafka.client_id}-{self.edge.role}-book",
                max_poll_records=MAX_BATCH,
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            )
            await consumer.start()
            self.consumer = consumer
        return self.consumer

    def owned(self) -> list[TopicPartition]:
        """The md.book partitions of the md.trades partitions Faust assigned here."""
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # consumer not started
            return []
        parts = sorted(tp.partition for tp in assigned if tp.topic == self.anchor)
        return [TopicPartition(self.topic, p) for p in parts]

    async def take_over(self, *_: Any, **__: Any) -> None:
        """A rebalance is complete (tables recovered): read the partitions owned now, each
        from its committed offset (without one: the log start)."""
        consumer = await self._consumer()
        async with self.busy:
            tps = self.owned()
            consumer.assign(tps)
            self.processed, self.committed = {}, {}
            for tp in tps:
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                    committed = await consumer.position(tp)
                else:
                    consumer.seek(tp, committed)
                self.processed[tp] = self.committed[tp] = committed
            log.info("book reader assigned", partitions=[tp.partition for tp in tps])
            self.ready.set()

    async def hand_over(self) -> None:
        """A rebalance begins: stop, commit what was processed, forget the books (their
        partitions may move; they are restored from the table when next read)."""
        self.ready.clear()
        async with self.busy:
            self.epoch += 1
            offsets = self._due()
            if offsets:
                await self._flush()
                await self._commit(offsets)
            self.store = self.fresh()
            if self.consumer is not None:
                self.consumer.assign([])
            self.processed, self.committed = {}, {}

    async def commit(self) -> None:
        """What was processed, once its outputs and state writes are on the broker. The
        flush runs outside the lock: the reader goes on meanwhile."""
        if not self.ready.is_set() or not (offsets := self._due()):
            return
        epoch = self.epoch
        await self._flush()
        async with self.busy:
            if self.epoch == epoch and self.ready.is_set():
                await self._commit(offsets)

    def _due(self) -> dict[TopicPartition, int]:
        return {tp: o for tp, o in self.processed.items() if o > self.committed.get(tp, -1)}

    async def _flush(self) -> None:
        """The records sent so far are on the broker. The reader sends straight to the
        app's aiokafka producer; Faust's ``flush`` would also drain its ProducerBuffer
        (other agents' table writes), which took seconds under load and held the book
        path up (measured: a 5.7 s commit)."""
        producer = self.edge.aiokafka_producer()
        await (producer.flush() if producer is not None else self.app.producer.flush())

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.consumer is not None:
            await self.consumer.commit(offsets)
            self.committed.update(offsets)

    async def run(self) -> None:
        consumer = await self._consumer()
        try:
            while True:
                await self.ready.wait()
                batch = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
                if not batch:
                    continue
                async with self.busy:
                    if not self.ready.is_set():
                        continue  # fetched before a hand-over: read again from the commit
                    await self.handle(batch)
        finally:  # the worker stops: what was processed is committed (best effort)
            try:
                await asyncio.wait_for(self.hand_over(), COMMIT_INTERVAL_S * 5)
            except Exception as exc:
                log.warning("book reader: no final commit", error=repr(exc))
            await consumer.stop()

    async def handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Process one ``getmany`` batch: tops, integrity events and state writes go to the
        producer as one batch per partition (:class:`~streams.app.Outbox`), then to this
        worker's other stages in order; the offsets move on only once all of it is with the
        producer (a commit flushes the producer first)."""
        edge, store, table = self.edge, self.store, self.table
        proc = store.proc
        pending: dict[str, tuple[int, _Pending]] = {}
        outbox = Outbox(edge)
        local: list[tuple[str, Any, int]] = []
        done: dict[TopicPartition, int] = {}
        timers: dict[str, Any] = {}  # BOOK_UPDATE_SECONDS per instrument
        for tp, records in batch.items():
            if tp not in self.processed:
                continue  # no longer ours
            edge.seen(AGENT, "md.book", len(records))
            for rec in records:
                try:
                    update = BookUpdate.decode(rec.value)
                except Exception as exc:  # any decode failure is a dead letter
                    await edge.dead_letter_raw(rec, rec.timestamp, exc, AGENT)
                    continue
                inst = update.instrument
                if proc.book(inst) is None:  # first sight since start or a rebalance
                    store.load(table, inst)
                start = time.perf_counter()
                out = proc.on_update(update, time.time_ns())
                timer = timers.get(inst)
                if timer is None:
                    timer = timers[inst] = metrics.child(
                        metrics.BOOK_UPDATE_SECONDS, instrument=inst
                    )
                timer.observe(time.perf_counter() - start)
                for record in out:
                    topic = "book.top" if isinstance(record, BookTop) else "book.integrity"
                    await outbox.add_record(topic, record)
                    local.append((topic, record, tp.partition))
                _, writes = pending.setdefault(inst, (tp.partition, _Pending()))
                store.save(writes, update, out, meta=False)
            done[tp] = records[-1].offset + 1
        for inst, (partition, writes) in pending.items():  # once per changed key per batch
            store.save_meta(writes, inst)
            for key, value in writes.items():
                outbox.add(*table.stage(key, None if value is _DELETE else value), partition)
        await outbox.send()
        self.processed.update(done)
        for topic, record, partition in local:  # tops also to this worker's other stages
            await edge.deliver(topic, record, partition)

    async def report_lag(self) -> None:
        consumer = self.consumer
        if consumer is None or not self.ready.is_set():
            return
        for tp, offset in self.processed.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(
                    agent=self.edge.role, topic="md.book", partition=str(tp.partition)
                ).set(max(0, highwater - offset))


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    md = settings.market_data
    reader = BookReader(app, edge, settings)
    edge.before_revoke(reader.hand_over)
    app.on_rebalance_complete.connect(reader.take_over)  # type: ignore[arg-type]
    app.task(reader.run)
    app.timer(interval=COMMIT_INTERVAL_S, name="book-commit")(reader.commit)
    app.timer(interval=5.0, name="book-lag")(reader.report_lag)

    @app.timer(interval=max(md.stale_after_ms / 2000, 0.1))
    async def stale_books() -> None:
        for event in reader.store.proc.check_stale(time.time_ns(), md.stale_after_ms * 1_000_000):
            await edge.send("book.integrity", event)
