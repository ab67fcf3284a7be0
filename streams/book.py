"""Book agent: ``md.book`` -> order book table -> ``book.top`` and ``book.integrity``.

A thin shell over :class:`~algostream.marketdata.processor.BookProcessor`. The table
``book-state`` (keyed by instrument, co-partitioned with ``md.book``) holds each book and
its chain position; it is written with every update, so the state and the committed
offset move together and a restarted worker continues exactly (a re-delivered update is
recognised by its update id and dropped).
"""

from __future__ import annotations

import time

import faust

from algostream.config import Settings
from algostream.marketdata.processor import BookProcessor
from algostream.model.records import BookTop, BookUpdate
from algostream.observability import metrics
from streams.app import Edge


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    md = settings.market_data
    proc = BookProcessor(md.book_top_levels)
    table = app.Table("book-state", default=None, partitions=edge.catalog["md.book"].partitions)
    restored: set[str] = set()

    @app.agent(edge.topic("md.book"), name="book")
    async def books(stream: faust.StreamT[bytes]) -> None:
        async for update in edge.records(stream, BookUpdate, "book"):
            inst = update.instrument
            if inst not in restored:  # first sight since start: continue from the table
                restored.add(inst)
                saved = table.get(inst)
                if saved is not None:
                    proc.restore(saved)
            start = time.perf_counter()
            out = proc.on_update(update, time.time_ns())
            metrics.BOOK_UPDATE_SECONDS.labels(instrument=inst).observe(time.perf_counter() - start)
            for record in out:
                await edge.send(
                    "book.top" if isinstance(record, BookTop) else "book.integrity", record
                )
            table[inst] = proc.state(inst)

    @app.timer(interval=max(md.stale_after_ms / 2000, 0.1))
    async def stale_books() -> None:
        for event in proc.check_stale(time.time_ns(), md.stale_after_ms * 1_000_000):
            await edge.send("book.integrity", event)
