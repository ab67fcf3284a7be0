"""The Coinbase adapter against the real simulator (``/coinbase`` WebSocket on 127.0.0.1).

The book rebuilt from what the ingestor publishes is compared with the simulator's true
book; faults (a lost ``l2_data`` message, malformed frames, a disconnect, rotations, a
refused subscribe) are injected on the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from algostream.config import MarketDataConfig, load_settings
from algostream.ingest.coinbase import CoinbaseAdapter
from algostream.ingest.run import make_adapter
from algostream.kafka.publisher import ListPublisher
from algostream.marketdata.book import OrderBook
from algostream.marketdata.processor import BookProcessor
from algostream.model import BookIntegrity, BookUpdate, DeadLetter, IntegrityKind, TradeTick
from algostream.model.enums import BookUpdateKind
from tests.unit.ingest.ingest_kit import SYMBOLS, Rig, launch, shut, until

PRODUCTS = ("BTC-USDT", "ETH-USDT")
INSTRUMENTS = {f"COINBASE:{p}" for p in PRODUCTS}


def snapshots(out: ListPublisher) -> set[str]:
    return {
        u.instrument
        for u in out.on("md.book")
        if isinstance(u, BookUpdate) and u.kind is BookUpdateKind.SNAPSHOT
    }


@pytest.fixture
async def rig() -> AsyncIterator[Callable[..., Any]]:
    rigs: list[Rig] = []

    async def start(
        products: tuple[str, ...] = PRODUCTS, *, synced: bool = True, **cfg: Any
    ) -> Rig:
        r = await launch(CoinbaseAdapter, "/coinbase", exchange="coinbase", symbols=products, **cfg)
        rigs.append(r)
        if synced:
            await until(lambda: snapshots(r.out) == INSTRUMENTS, what="a snapshot per product")
        return r

    yield start
    for r in rigs:
        await shut(r)


def books_from(out: ListPublisher) -> dict[str, OrderBook]:
    """The books the market worker's processor makes of md.book (a snapshot starts a chain
    over; an update numbered at or below the last applied is a repeat and dropped)."""
    proc = BookProcessor()
    for update in out.on("md.book"):
        assert isinstance(update, BookUpdate)
        proc.on_update(update, 0)
    return {inst: book for inst in INSTRUMENTS if (book := proc.book(inst)) is not None}


def books_match(r: Rig) -> bool:
    books = books_from(r.out)
    for symbol, product in zip(SYMBOLS, PRODUCTS, strict=True):
        bids, asks = r.market.book(symbol)
        book = books.get(f"COINBASE:{product}")
        if book is None or book.bids() != [tuple(lv) for lv in bids]:
            return False
        if book.asks() != [tuple(lv) for lv in asks]:
            return False
    return True


async def assert_books_match_simulator(r: Rig) -> None:
    """Pause the market; the ingested books must reach the simulator's, level for level."""
    r.exchange.pause()
    await until(lambda: books_match(r), what="ingested books equal to the simulator's")
    r.exchange.resume()


def integrity(out: ListPublisher, kind: IntegrityKind) -> list[BookIntegrity]:
    return [e for e in out.on("book.integrity") if isinstance(e, BookIntegrity) and e.kind is kind]


def trades(out: ListPublisher) -> list[TradeTick]:
    return [t for t in out.on("md.trades") if isinstance(t, TradeTick)]


def test_make_adapter_picks_coinbase() -> None:
    settings = load_settings(env={"ALGOSTREAM__MARKET_DATA__EXCHANGE": "coinbase"})
    assert isinstance(make_adapter(settings), CoinbaseAdapter)


async def test_ingested_book_equals_simulator_book(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    await until(lambda: len(r.out.on("md.book")) > 200, what="200 book updates")
    await until(lambda: len(trades(r.out)) > 5, what="trades")
    await assert_books_match_simulator(r)
    assert r.out.on("md.raw")
    ticks = trades(r.out)
    assert {t.instrument for t in ticks} <= INSTRUMENTS
    assert len({(t.instrument, t.trade_id) for t in ticks}) == len(ticks)
    assert integrity(r.out, IntegrityKind.GAP) == []
    assert integrity(r.out, IntegrityKind.RESYNCED) == []  # a first sync is not a resync


async def test_a_lost_message_is_a_gap_then_a_new_connection_resyncs(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    r.exchange.drop_depth(1)
    await until(lambda: integrity(r.out, IntegrityKind.GAP), what="a GAP")
    assert {g.instrument for g in integrity(r.out, IntegrityKind.GAP)} == INSTRUMENTS
    await until(
        lambda: {e.instrument for e in integrity(r.out, IntegrityKind.RESYNCED)} == INSTRUMENTS,
        what="RESYNCED for every product",
    )
    assert r.ingestor.stats.rotations >= 1
    await assert_books_match_simulator(r)


async def test_malformed_frames_go_to_dlq_and_the_feed_goes_on(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    r.exchange.send_malformed(4)
    await until(lambda: len(r.out.on("dlq")) >= 4, what="4 dead letters")
    letters = [d for d in r.out.on("dlq") if isinstance(d, DeadLetter)]
    assert all(d.reason and d.source_topic == "ws:coinbase" for d in letters)
    seen = len(r.out.on("md.book"))
    await until(lambda: len(r.out.on("md.book")) > seen + 20, what="feed continues")
    await assert_books_match_simulator(r)


async def test_disconnect_reconnects_and_resyncs(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    await r.exchange.disconnect_all(abrupt=True)
    await until(lambda: r.ingestor.stats.reconnects >= 1, what="reconnect")
    assert {e.instrument for e in integrity(r.out, IntegrityKind.DISCONNECTED)} == INSTRUMENTS
    await until(
        lambda: {e.instrument for e in integrity(r.out, IntegrityKind.RESYNCED)} == INSTRUMENTS,
        what="RESYNCED for every product",
    )
    await assert_books_match_simulator(r)


async def test_rotations_lose_and_repeat_nothing(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig(rotate_after_s=1)
    await until(lambda: r.ingestor.stats.rotations >= 2, what="two rotations")
    seen = len(r.out.on("md.book"))
    await until(lambda: len(r.out.on("md.book")) > seen + 50, what="data after the rotations")
    assert integrity(r.out, IntegrityKind.GAP) == []
    assert integrity(r.out, IntegrityKind.DISCONNECTED) == []
    ticks = trades(r.out)
    assert len({(t.instrument, t.trade_id) for t in ticks}) == len(ticks)
    await assert_books_match_simulator(r)


async def test_a_refused_subscribe_is_a_dead_letter_naming_it(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig(("BTC-USDT", "NOPE-USD"), synced=False)
    await until(lambda: r.out.on("dlq"), what="a dead letter")
    [letter, *_] = [d for d in r.out.on("dlq") if isinstance(d, DeadLetter)]
    assert "NOPE-USD" in letter.reason and letter.source_topic == "ws:coinbase"


def l2(seq: int, kind: str, product: str, price: str, qty: str) -> str:
    """One ``l2_data`` message with one level (``side`` bid)."""
    ts = "2026-01-01T00:00:00.000000001Z"
    return (
        f'{{"channel":"l2_data","client_id":"","timestamp":"{ts}","sequence_num":{seq},'
        f'"events":[{{"type":"{kind}","product_id":"{product}","updates":[{{"side":"bid",'
        f'"event_time":"{ts}","price_level":"{price}","new_quantity":"{qty}"}}]}}]}}'
    )


def test_while_two_connections_overlap_a_book_follows_the_newest_snapshot() -> None:
    adapter = CoinbaseAdapter(MarketDataConfig(exchange="coinbase", symbols=("BTC-USDT",)))
    adapter.on_connected(1, 0)
    published: list[BookUpdate] = []

    def feed(conn: int, text: str) -> None:
        result = adapter.on_frame(conn, text, 1)
        assert result.error is None
        published.extend(r for t, r in result.records if t == "md.book")  # type: ignore[misc]

    feed(1, l2(1, "snapshot", "BTC-USDT", "100", "1"))
    feed(1, l2(2, "update", "BTC-USDT", "101", "1"))
    adapter.on_connected(2, 0, rotating=True)
    feed(2, l2(1, "snapshot", "BTC-USDT", "101", "1"))  # the new connection's book
    feed(1, l2(3, "update", "BTC-USDT", "102", "1"))  # the old one's: not on this chain
    feed(2, l2(2, "update", "BTC-USDT", "102", "1"))
    assert [(u.kind, u.final_update_id) for u in published] == [
        (BookUpdateKind.SNAPSHOT, 1),
        (BookUpdateKind.DELTA, 2),
        (BookUpdateKind.SNAPSHOT, 1),
        (BookUpdateKind.DELTA, 2),
    ]
