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

import time

import faust

from algostream.config import Settings
from algostream.marketdata.persist import LevelStore
from algostream.marketdata.processor import BookProcessor
from algostream.model.records import BookTop, BookUpdate
from algostream.observability import metrics
from streams.app import Edge


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    md = settings.market_data

    def fresh() -> LevelStore:
        return LevelStore(BookProcessor(md.book_top_levels))

    current = {"store": fresh()}
    table = app.Table("book-state", default=None, partitions=edge.catalog["md.book"].partitions)

    @app.on_partitions_revoked.connect
    async def forget_books(_app: faust.App, revoked: object, **_: object) -> None:
        current["store"] = fresh()  # owned instruments are restored from the table

    @app.agent(edge.topic("md.book"), name="book")
    async def books(stream: faust.StreamT[bytes]) -> None:
        async for update in edge.records(stream, BookUpdate, "book"):
            store = current["store"]
            proc = store.proc
            inst = update.instrument
            if proc.book(inst) is None:  # first sight since start or a rebalance
                store.load(table, inst)
            start = time.perf_counter()
            out = proc.on_update(update, time.time_ns())
            metrics.BOOK_UPDATE_SECONDS.labels(instrument=inst).observe(time.perf_counter() - start)
            for record in out:
                await edge.send(
                    "book.top" if isinstance(record, BookTop) else "book.integrity", record
                )
            store.save(table, update, out)

    @app.timer(interval=max(md.stale_after_ms / 2000, 0.1))
    async def stale_books() -> None:
        proc = current["store"].proc
        for event in proc.check_stale(time.time_ns(), md.stale_after_ms * 1_000_000):
            await edge.send("book.integrity", event)
