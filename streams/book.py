"""Book stage: ``md.book`` -> order book table -> ``book.top`` and ``book.integrity``.

A thin shell over :class:`~algostream.marketdata.processor.BookProcessor`. The table
``book-state`` (co-partitioned with ``md.book``) holds each book one price level per key
plus its chain position (:class:`~algostream.marketdata.persist.LevelStore`); what an
update changed is written with it, so the state and the committed offset move together
and a restarted worker continues exactly (a re-delivered update is recognised by its
update id and dropped).

``md.book`` is read by the worker's batch reader (:mod:`streams.reader`), not a Faust
agent: each batch's updates are applied in order, each changed state key is written once
per batch, and the tops go to the producer as one batch per partition. At every rebalance
the in-memory books are dropped, and an instrument is restored from the table at its first
update. The stale timer only watches books this worker holds.

A STALE is part of the book's state: the timer detects (and logs) it at once, even while a
batch is stuck on the broker holding the reader (during a broker outage the books are
stale all the same: a batch in flight then waits for producer room for the whole outage);
then, after that batch, it writes the instrument's flags to the table and waits for the
broker to take them before it publishes the STALE, if the book is still stale, all with
the reader held: a hand-over (such as the rebalance that follows an outage) comes after
the STALE is on the broker, so the next owner's RESYNCED follows it, and never between the
flag and the event. Whichever worker holds the book when updates resume (this one, or the
next owner after a rebalance, restoring the flag from the table) says RESYNCED, so a
rebalance or a broker outage between the STALE and the next update cannot leave the
instrument degraded with nobody to clear it (issue 28: the gate stayed REDUCING after a
broker outage).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
import structlog
from aiokafka import TopicPartition

from algostream.config import Settings
from algostream.marketdata import native
from algostream.marketdata.persist import LevelStore
from algostream.marketdata.processor import BookProcessor
from algostream.model.records import BookIntegrity, BookTop, BookUpdate, Record
from algostream.observability import metrics
from streams.edge import Edge
from streams.outbox import Outbox
from streams.reader import PartitionReader, market_reader
from streams.stage import Stage
from streams.state import StageState

AGENT = "book"
log = structlog.get_logger("algostream.streams")


class _Pending(dict[str, Any]):
    """Writes of one instrument not yet in the table (``pop`` records a deletion)."""

    def pop(self, key: str, default: Any = None) -> Any:
        self[key] = _DELETE
        return default


_DELETE = object()


class BookStage:
    """Applies this worker's ``md.book`` batches (module doc)."""

    def __init__(self, app: faust.App, edge: Edge, settings: Settings) -> None:
        self.edge = edge
        self.md = settings.market_data
        self.state = StageState.add(app, edge, "book-state", "md.book")
        self.table = self.state.table
        self.store = self.new_store()

    def new_store(self) -> LevelStore:
        store = LevelStore(BookProcessor(self.md.book_top_levels))
        # the compiled path for the plain case, if built (None: pure Python)
        native.attach(store.proc, store, _Pending, _DELETE)
        return store

    def forget(self) -> None:
        """A hand-over: the books are restored from the table when next read."""
        self.store = self.new_store()

    async def handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Process one ``getmany`` batch: tops, integrity events and state writes go to the
        producer as one batch per partition (:class:`~streams.outbox.Outbox`), then to this
        worker's other stages in order; the offsets move on only once all of it is with the
        producer (a commit flushes the producer first)."""
        edge, store, table = self.edge, self.store, self.table
        proc = store.proc
        fast = proc.fast
        pending: dict[str, _Pending] = {}
        outbox = Outbox(edge)
        local: list[tuple[str, Any]] = []
        timings: dict[str, list[float]] = {}  # BOOK_UPDATE_SECONDS per instrument
        # the outputs a stage of this worker takes in-process (none: no list, no awaits)
        listened = {t: edge.listens(t) for t in ("book.top", "book.integrity")}
        top_topic = edge.topic("book.top").get_topic_name()
        partitions = edge.partitions
        clock, perf = time.time_ns, time.perf_counter
        for records in batch.values():
            edge.count_in(AGENT, "md.book", len(records))
            for rec in records:
                if fast is not None:  # the plain case, compiled (None: not plain)
                    start = perf()
                    done = fast.handle(rec.value, clock(), pending, listened["book.top"])
                    if done is not None:
                        took = perf() - start
                        inst, key, top, record = done
                        times = timings.get(inst)
                        if times is None:
                            times = timings[inst] = []
                        times.append(took)
                        if top is not None:
                            part = partitions.get(top_topic, key)
                            if part is None:
                                part = await partitions.of(outbox.producer, top_topic, key)
                            outbox.add_encoded("book.top", top_topic, key, top, part)
                            if record is not None:  # (made only when a stage listens)
                                local.append(("book.top", record))
                        continue
                try:
                    update = BookUpdate.decode(rec.value)
                except Exception as exc:  # any decode failure is a dead letter
                    await edge.dead_letter_raw(rec, rec.timestamp, exc, AGENT)
                    continue
                for record in self._python_path(update, pending, timings):
                    topic = "book.top" if isinstance(record, BookTop) else "book.integrity"
                    if not outbox.add_known(topic, record):
                        await outbox.add_record(topic, record)
                    if listened[topic]:
                        local.append((topic, record))
        for inst, writes in pending.items():  # once per changed key per batch
            store.save_meta(writes, inst)
            partition = self.state.partition(inst)  # (StageState.stage, hoisted: hot)
            for key, value in writes.items():
                name, raw_key, payload = table.stage(key, None if value is _DELETE else value)
                outbox.add(name, raw_key, payload, partition)
        await outbox.send()
        for inst, times in timings.items():
            metrics.observe_all(metrics.child(metrics.BOOK_UPDATE_SECONDS, instrument=inst), times)
        for topic, record in local:  # tops also to this worker's other stages
            await edge.deliver(topic, record)

    def _python_path(
        self, update: BookUpdate, pending: dict[str, _Pending], timings: dict[str, list[float]]
    ) -> list[Record]:
        """One update through :class:`BookProcessor` (everything the compiled path does
        not take, and every update where it is not built): its state writes staged in
        ``pending``; returns its records (a plain call, not a coroutine: once per update)."""
        store, proc, table = self.store, self.store.proc, self.table
        inst = update.instrument
        if proc.book(inst) is None:  # first sight since start or a rebalance
            store.load(table, inst)
        start = time.perf_counter()
        out = proc.on_update(update, time.time_ns())
        took = time.perf_counter() - start
        times = timings.get(inst)
        if times is None:
            times = timings[inst] = []
        times.append(took)
        writes = pending.get(inst)
        if writes is None:  # (not setdefault: it would build a _Pending every update)
            writes = pending[inst] = _Pending()
        store.save(writes, update, out, meta=False)
        return out

    async def mark_stale(self, reader: PartitionReader, now_ns: int) -> list[BookIntegrity]:
        """STALE for each held book silent for ``stale_after_ms`` (module doc): detected and
        logged without waiting for the batch in flight; the flag is on the broker, in the
        table, before the event is published, with no batch or hand-over in between.
        Returns the STALEs published."""
        if not reader.ready.is_set():  # handing over (or not reading): no books held
            return []
        store, epoch = self.store, reader.epoch
        events = store.proc.check_stale(now_ns, self.md.stale_after_ms * 1_000_000)
        if not events:
            return []
        log.info(  # batch_in_flight: storing the flag waits for it (for the broker)
            "books stale",
            instruments=[e.instrument for e in events],
            batch_in_flight=reader.busy.locked(),
        )
        sent: list[tuple[BookIntegrity, asyncio.Future[Any]]] = []
        published: list[BookIntegrity] = []
        async with reader.busy:  # after the batch in flight; no batch or hand-over until done
            if reader.epoch != epoch:  # handed over meanwhile: the books were dropped
                return []
            for event in events:
                inst = event.instrument
                if not store.proc.is_stale(inst):  # an update came meanwhile: RESYNCED
                    continue
                topic, key, value = self.table.stage(*_meta(store, inst))
                sent.append(
                    (event, await self.edge.send_raw(topic, key, value, self.state.partition(inst)))
                )
            written = await asyncio.gather(*(ack for _, ack in sent), return_exceptions=True)
            for (event, _), ack in zip(sent, written, strict=True):
                if isinstance(ack, BaseException):  # not in the table: raise it again later
                    store.proc.rearm_stale(event.instrument)
                elif await _delivered(self.edge, "book.integrity", event):
                    published.append(event)
        return published


async def _delivered(edge: Edge, topic: str, record: BookIntegrity) -> bool:
    """Send ``record`` and wait until the broker has it (a failure is logged and counted
    by the edge)."""
    name = edge.topic(topic).get_topic_name()
    ack = await edge.send_raw(name, record.key.encode(), record.encode())
    edge.count_out(topic)
    try:
        await ack
    except Exception:
        return False
    return True


def _meta(store: LevelStore, instrument: str) -> tuple[str, Any]:
    """The table key and value of ``instrument``'s chain position and flags."""
    held: dict[str, Any] = {}
    store.save_meta(held, instrument)
    ((key, value),) = held.items()
    return key, value


def stages(app: faust.App, edge: Edge, settings: Settings) -> list[Stage]:
    md = settings.market_data
    stage = BookStage(app, edge, settings)
    reader = market_reader(app, edge, settings)
    reader.read("md.book", stage.handle, stage.forget)

    @app.timer(interval=max(md.stale_after_ms / 2000, 0.1))  # type: ignore[untyped-decorator]
    async def stale_books() -> None:
        await stage.mark_stale(reader, time.time_ns())

    return [
        Stage(AGENT, reads=("md.book",), outputs=("book.top", "book.integrity"), state=stage.state)
    ]
