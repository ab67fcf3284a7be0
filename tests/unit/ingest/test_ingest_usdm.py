"""The futures ingestor against the real simulator (``/fstream`` WebSocket + ``/fapi`` REST
on 127.0.0.1): books equal to the simulator's with no false GAP, mark prices to
``md.mark_price``, a dropped diff is a GAP then RESYNCED, bad frames to the dlq."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from algostream.config import Settings
from algostream.ingest.binance import BinanceAdapter
from algostream.ingest.binance_usdm import BinanceUsdmAdapter
from algostream.ingest.run import make_adapter
from algostream.kafka.publisher import ListPublisher
from algostream.marketdata.book import OrderBook
from algostream.model import BookIntegrity, BookUpdate, DeadLetter, IntegrityKind, MarkPrice
from algostream.sim.binance_usdm import usdm_id
from tests.unit.ingest.ingest_kit import SYMBOLS, Rig, launch, shut, until


@pytest.fixture
async def rig() -> AsyncIterator[Callable[..., Any]]:
    rigs: list[Rig] = []

    async def start(**cfg: Any) -> Rig:
        r = await launch(BinanceUsdmAdapter, "/fstream", exchange="binance_usdm", **cfg)
        rigs.append(r)
        await until(lambda: all(s.last_update_id for s in r.adapter.syncs.values()), what="sync")
        return r

    yield start
    for r in rigs:
        await shut(r)


def integrity(out: ListPublisher, kind: IntegrityKind) -> list[BookIntegrity]:
    events = out.on("book.integrity")
    return [e for e in events if isinstance(e, BookIntegrity) and e.kind is kind]


async def assert_books_match_simulator(r: Rig) -> None:
    r.exchange.pause()
    await until(
        lambda: all(
            r.adapter.syncs[s].last_update_id == usdm_id(r.market.last_update_id(s))
            for s in SYMBOLS
        ),
        what="ingestor caught up",
    )
    books: dict[str, OrderBook] = {}
    for update in r.out.on("md.book"):
        assert isinstance(update, BookUpdate)
        books.setdefault(update.instrument, OrderBook(update.instrument)).apply(update)
    for symbol in SYMBOLS:
        bids, asks = r.market.book(symbol)
        book = books[f"BINANCE_USDM:{symbol}"]
        assert book.bids() == [tuple(level) for level in bids]
        assert book.asks() == [tuple(level) for level in asks]
    r.exchange.resume()


async def test_futures_book_equals_simulator_book_without_a_false_gap(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    await until(lambda: len(r.out.on("md.book")) > 100, what="100 book updates")
    await assert_books_match_simulator(r)
    assert not integrity(r.out, IntegrityKind.GAP)
    assert {u.instrument for u in r.out.on("md.book")} == {f"BINANCE_USDM:{s}" for s in SYMBOLS}
    assert r.out.on("md.trades")
    await until(lambda: len(r.out.on("md.mark_price")) >= 2, what="mark prices")
    marks = [m for m in r.out.on("md.mark_price") if isinstance(m, MarkPrice)]
    assert {m.instrument for m in marks} == {f"BINANCE_USDM:{s}" for s in SYMBOLS}
    assert all(m.next_funding_ns > m.ts_event and m.mark_price > 0 for m in marks)


async def test_dropped_futures_diff_is_a_gap_then_resync(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    at_start = len(integrity(r.out, IntegrityKind.RESYNCED))
    r.exchange.drop_depth(1)
    await until(lambda: len(integrity(r.out, IntegrityKind.RESYNCED)) > at_start, what="resync")
    gap = integrity(r.out, IntegrityKind.GAP)[0]
    assert gap.instrument.startswith("BINANCE_USDM:") and "pu=" in gap.detail
    await assert_books_match_simulator(r)


async def test_malformed_frames_go_to_dlq_and_the_feed_goes_on(rig) -> None:  # type: ignore[no-untyped-def]
    r = await rig()
    r.exchange.send_malformed(3)
    await until(lambda: len(r.out.on("dlq")) >= 3, what="3 dead letters")
    letters = [d for d in r.out.on("dlq") if isinstance(d, DeadLetter)]
    assert all(d.source_topic == "ws:binance_usdm" and d.reason for d in letters)
    await assert_books_match_simulator(r)


async def test_futures_frames_on_a_spot_connection_go_to_dlq_naming_pu() -> None:
    r = await launch(BinanceAdapter, "/fstream")  # a spot adapter reading futures streams
    try:
        await until(lambda: len(r.out.on("dlq")) >= 3, what="dead letters")
        letters = [d for d in r.out.on("dlq") if isinstance(d, DeadLetter)]
        assert any("'data.pu'" in d.reason and "spot connection" in d.reason for d in letters)
        assert not r.out.on("md.book")
    finally:
        await shut(r)


def test_the_configured_exchange_picks_the_futures_adapter() -> None:
    s = Settings.model_validate({"market_data": {"exchange": "binance_usdm"}})
    adapter = make_adapter(s)
    assert isinstance(adapter, BinanceUsdmAdapter)
    assert set(adapter.instruments.values()) == {"BINANCE_USDM:BTCUSDT", "BINANCE_USDM:ETHUSDT"}
