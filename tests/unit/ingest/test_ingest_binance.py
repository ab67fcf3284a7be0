"""The ingestor against the real simulator (WebSocket + REST servers on 127.0.0.1).

The reconstructed book is compared with the simulator's true book; faults (gap,
malformed frames, disconnect, serverShutdown, silence) are injected on the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from algostream.ingest.binance import BinanceAdapter
from algostream.kafka.publisher import ListPublisher
from algostream.marketdata.book import OrderBook
from algostream.model import BookIntegrity, BookUpdate, DeadLetter, IntegrityKind, TradeTick
from tests.unit.ingest.ingest_kit import SYMBOLS, Rig, launch, shut, until


@pytest.fixture
async def rig() -> AsyncIterator[Callable[..., Any]]:
    rigs: list[Rig] = []

    async def start(**cfg: Any) -> Rig:
        r = await launch(BinanceAdapter, "/stream", **cfg)
        rigs.append(r)
        await until(lambda: all(s.last_update_id for s in r.adapter.syncs.values()), what="sync")
        return r

    yield start
    for r in rigs:
        await shut(r)


def books_from(out: ListPublisher) -> dict[str, OrderBook]:
    books: dict[str, OrderBook] = {}
    for update in out.on("md.book"):
        assert isinstance(update, BookUpdate)
        books.setdefault(update.instrument, OrderBook(update.instrument)).apply(update)
    return books


async def assert_books_match_simulator(r: Rig) -> None:
    """Pause the market, let the ingestor catch up, compare every level."""
    r.exchange.pause()
    await until(
        lambda: all(
            r.adapter.syncs[s].last_update_id == r.market.last_update_id(s) for s in SYMBOLS
        ),
        what="ingestor caught up",
    )
    books = books_from(r.out)
    for symbol in SYMBOLS:
        bids, asks = r.market.book(symbol)
        book = books[f"BINANCE:{symbol}"]
        assert book.bids() == [tuple(level) for level in bids]
        assert book.asks() == [tuple(level) for level in asks]
        assert not book.is_crossed()
    r.exchange.resume()


def integrity(out: ListPublisher, kind: IntegrityKind) -> list[BookIntegrity]:
    return [
        e
        for e in out.on("book.integrity")  # type: ignore[misc]
        if isinstance(e, BookIntegrity) and e.kind is kind
    ]


async def test_ingested_book_equals_simulator_book(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    await until(lambda: len(r.out.on("md.book")) > 200, what="200 book updates")
    await assert_books_match_simulator(r)
    assert r.out.on("md.raw") and r.out.on("md.trades")
    trades = [t for t in r.out.on("md.trades") if isinstance(t, TradeTick)]
    assert len({(t.instrument, t.trade_id) for t in trades}) == len(trades)


async def test_dropped_diff_is_a_gap_then_resync(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    at_start = len(integrity(r.out, IntegrityKind.RESYNCED))
    r.exchange.drop_depth(1)
    await until(lambda: len(integrity(r.out, IntegrityKind.RESYNCED)) > at_start, what="resync")
    gap = integrity(r.out, IntegrityKind.GAP)[0]
    assert gap.received_update_id is not None and gap.expected_update_id is not None
    assert gap.received_update_id > gap.expected_update_id
    await assert_books_match_simulator(r)


async def test_malformed_frames_go_to_dlq_and_the_feed_goes_on(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    r.exchange.send_malformed(6)
    await until(lambda: len(r.out.on("dlq")) >= 6, what="6 dead letters")
    letters = [d for d in r.out.on("dlq") if isinstance(d, DeadLetter)]
    assert len(letters) == 6 and all(d.reason and d.source_topic == "ws:binance" for d in letters)
    seen = len(r.out.on("md.book"))
    await until(lambda: len(r.out.on("md.book")) > seen + 20, what="feed continues")
    await assert_books_match_simulator(r)


async def test_disconnect_reconnects_and_resyncs(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    at_start = len(integrity(r.out, IntegrityKind.RESYNCED))
    await r.exchange.disconnect_all(abrupt=True)
    await until(lambda: r.ingestor.stats.reconnects >= 1, what="reconnect")
    assert integrity(r.out, IntegrityKind.DISCONNECTED)
    await until(lambda: all(s.last_update_id for s in r.adapter.syncs.values()), what="resync")
    await until(
        lambda: len(integrity(r.out, IntegrityKind.RESYNCED)) >= at_start + len(SYMBOLS),
        what="RESYNCED for every instrument",
    )
    assert {e.instrument for e in integrity(r.out, IntegrityKind.RESYNCED)[at_start:]} == {
        f"BINANCE:{s}" for s in SYMBOLS
    }
    await assert_books_match_simulator(r)


async def test_server_shutdown_rotates_without_a_gap(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    r.exchange.send_server_shutdown(close_after_s=1.0)
    await until(lambda: r.ingestor.stats.rotations == 1, what="rotation")
    seen = len(r.out.on("md.book"))
    await until(lambda: len(r.out.on("md.book")) > seen + 50, what="data after rotation")
    assert not integrity(r.out, IntegrityKind.GAP)
    assert not integrity(r.out, IntegrityKind.DISCONNECTED)
    trades = [t for t in r.out.on("md.trades") if isinstance(t, TradeTick)]
    assert len({(t.instrument, t.trade_id) for t in trades}) == len(trades)
    await assert_books_match_simulator(r)


async def test_silent_feed_is_detected(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig(stale_after_ms=300)
    at_start = len(integrity(r.out, IntegrityKind.RESYNCED))
    r.exchange.silence(3.0)
    await until(lambda: integrity(r.out, IntegrityKind.STALE), what="stale event")
    stale = integrity(r.out, IntegrityKind.STALE)
    assert {e.instrument for e in stale} == {f"BINANCE:{s}" for s in SYMBOLS}
    await until(
        lambda: (
            {e.instrument for e in integrity(r.out, IntegrityKind.RESYNCED)[at_start:]}
            == {f"BINANCE:{s}" for s in SYMBOLS}
        ),
        what="resynced after the silence",
    )


async def test_a_new_ingestor_does_not_call_its_first_sync_a_resync(rig) -> None:  # type: ignore[no-untyped-def]
    """A first sync is not a recovery: no RESYNCED (a STALE the book worker raised while no
    ingestor ran is cleared by the worker itself when updates resume)."""
    r = await rig()
    assert r.out.on("md.book")
    assert integrity(r.out, IntegrityKind.RESYNCED) == []
