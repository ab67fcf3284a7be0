"""Book agent: ``md.book`` -> order book table -> ``book.top`` and ``book.integrity``.

A thin shell over :class:`~algostream.marketdata.processor.BookProcessor`. The table
``book-state`` (co-partitioned with ``md.book``) holds each book one price level per key
plus its chain position (:class:`~algostream.marketdata.persist.LevelStore`); what an
update changed is written with it, so the state and the committed offset move together
and a restarted worker continues exactly (a re-delivered update is recognised by its
update id and dropped).

Scale-out: workers of the role share ``md.book``'s partitions, and a partition's books move
with it. On every rebalance the in-memory books are dropped, so an instrument is restored
from the table at its first update after the rebalance (a partition that comes back to a
worker continues from the state its other owner saved, not from this worker's stale
copy), and the stale timer only watches books this worker still owns.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from algostream.config import Settings
from algostream.marketdata.persist import LevelStore
from algostream.marketdata.processor import BookProcessor
from algostream.model.records import BookTop, BookUpdate
from algostream.observability import metrics
from streams.app import DirectTable, Edge

#: most md.book records held (processed, outputs sent, not yet acked) before table writes
MAX_BATCH = 500


class _Pending(dict[str, Any]):
    """Writes of one instrument not yet in the table (``pop`` records a deletion)."""

    def pop(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self[key] = _DELETE
        return default


_DELETE = object()


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    md = settings.market_data

    def fresh() -> LevelStore:
        return LevelStore(BookProcessor(md.book_top_levels))

    current = {"store": fresh()}
    table = DirectTable.add(app, "book-state", edge.catalog["md.book"].partitions)
    held: list[faust.EventT[bytes]] = []
    pending: dict[str, tuple[int, _Pending]] = {}

    busy = asyncio.Lock()  # one record's processing, or a flush, at a time

    async def flush_held() -> None:
        # at the start of a rebalance: what was processed is written (and the producer
        # flushed by Faust after it) before the partition's next owner recovers the table
        async with busy:
            await flush()

    edge.before_revoke(flush_held)

    @app.on_partitions_revoked.connect
    async def forget_books(_app: faust.App, revoked: object, **_: object) -> None:
        # owned instruments are restored from the table at their next record (a partition
        # this worker keeps is not delivered again: the offset guard skips what it processed)
        await flush_held()
        current["store"] = fresh()

    async def flush() -> None:
        """Write the held records' state to the table, then ack them (commit after)."""
        for partition, writes in pending.values():
            for key, value in writes.items():
                await table.write(edge, partition, key, None if value is _DELETE else value)
        pending.clear()
        for event in held:
            event.ack()
        held.clear()

    @app.agent(edge.topic("md.book"), name="book")
    async def books(stream: faust.StreamT[bytes]) -> None:
        """Adaptive batches: state is written when the agent has caught up (nothing more
        buffered) or after MAX_BATCH records, and the records are acked only after it, so
        the committed offset never passes state that is not in the table. At a low rate
        every record is its own batch; under load a key changed many times is written once.
        """
        acks = stream.noack()
        queue = acks.channel.queue
        async for event in acks.events():
            # outside the lock: the offset guard may wait on the consumer thread, which a
            # rebalance holds until the before-revoke flush (which takes the lock) is done
            update = await edge.decode_or_dlq(event, BookUpdate, "book")
            async with busy:
                held.append(event)
                if update is not None:
                    store = current["store"]
                    proc = store.proc
                    inst = update.instrument
                    if proc.book(inst) is None:  # first sight since start or a rebalance
                        store.load(table, inst)
                    start = time.perf_counter()
                    out = proc.on_update(update, time.time_ns())
                    metrics.BOOK_UPDATE_SECONDS.labels(instrument=inst).observe(
                        time.perf_counter() - start
                    )
                    for record in out:  # tops also to this worker's other stages
                        topic = "book.top" if isinstance(record, BookTop) else "book.integrity"
                        await edge.publish(topic, record, event.message.partition)
                    _, writes = pending.setdefault(inst, (event.message.partition, _Pending()))
                    store.save(writes, update, out)
                if len(held) >= MAX_BATCH or queue.empty():
                    await flush()

    @app.timer(interval=max(md.stale_after_ms / 2000, 0.1))
    async def stale_books() -> None:
        proc = current["store"].proc
        for event in proc.check_stale(time.time_ns(), md.stale_after_ms * 1_000_000):
            await edge.send("book.integrity", event)
