"""Record ids of market data are unique across runs and connections (issue 28).

The seeded simulator starts its update and trade ids over with every run, and Coinbase's
``sequence_num`` restarts with every connection: ids made of those alone named different
records alike (55 ``book.top`` records of a run shared an id with an older one), and a
consumer that drops repeats by ``record_id`` dropped real records. Two runs of the same
seeded simulator (and, for Coinbase, a reconnect inside a run) must not reuse an id for a
different record; the same record published twice (a rotation's overlap) may keep its id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from algostream.ingest.binance import BinanceAdapter
from algostream.ingest.coinbase import CoinbaseAdapter
from algostream.marketdata.processor import BookProcessor
from algostream.model import BookUpdate, Record, TradeTick
from tests.unit.ingest.ingest_kit import Rig, launch, shut, until

PRODUCTS = ("BTC-USDT", "ETH-USDT")  # the simulator's BTCUSDT and ETHUSDT
#: what is the same for the same record whoever received it when, from which frame
RECEIPT = {"ts_init", "lineage_id"}


def reused(records: Iterable[Record]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The ids given to two different records (fields other than :data:`RECEIPT`)."""
    seen: dict[str, dict[str, Any]] = {}
    out = []
    for record in records:
        body = record.model_dump(mode="json", exclude=RECEIPT)
        first = seen.setdefault(record.record_id, body)
        if first != body:
            out.append((record.record_id, first, body))
    return out


def tops(updates: list[BookUpdate]) -> list[Record]:
    """The ``book.top`` records the book stage makes of a run's ``md.book``."""
    proc = BookProcessor()
    return [r for u in updates for r in proc.on_update(u, u.ts_init)]


async def one_run(
    start: Callable[[], Awaitable[Rig]], during: Callable[[Rig], Awaitable[None]] | None = None
) -> tuple[list[BookUpdate], list[TradeTick]]:
    r = await start()
    try:
        await until(lambda: len(r.out.on("md.book")) > 300, what="300 book updates")
        if during is not None:
            await during(r)
        await until(lambda: len(r.out.on("md.trades")) > 20, what="20 trades")
    finally:
        await shut(r)
    return list(r.out.on("md.book")), list(r.out.on("md.trades"))


async def test_two_runs_of_the_seeded_binance_simulator_share_no_id() -> None:
    runs = [await one_run(lambda: launch(BinanceAdapter, "/stream")) for _ in range(2)]
    (book_a, trades_a), (book_b, trades_b) = runs
    # the simulator did start over: the same update ids and trade ids in both runs
    assert {u.final_update_id for u in book_a} & {u.final_update_id for u in book_b}
    assert {t.trade_id for t in trades_a} & {t.trade_id for t in trades_b}
    for records in (book_a + book_b, trades_a + trades_b, tops(book_a) + tops(book_b)):
        assert not reused(records), reused(records)[:2]


async def test_coinbase_ids_are_unique_over_a_reconnect_and_two_runs() -> None:
    async def reconnect(r: Rig) -> None:
        await r.exchange.disconnect_all(abrupt=True)
        await until(lambda: r.ingestor.stats.reconnects >= 1, what="reconnect")
        seen = len(r.out.on("md.book"))
        await until(lambda: len(r.out.on("md.book")) > seen + 300, what="300 more updates")

    def start() -> Awaitable[Rig]:
        return launch(CoinbaseAdapter, "/coinbase", exchange="coinbase", symbols=PRODUCTS)

    book_a, trades_a = await one_run(start, reconnect)
    book_b, trades_b = await one_run(start)
    sequence = {u.final_update_id for u in book_a}
    # sequence numbers did restart: on the new connection and in the second run
    assert len(book_a) > len(sequence) and sequence & {u.final_update_id for u in book_b}
    for records in (book_a + book_b, trades_a + trades_b, tops(book_a) + tops(book_b)):
        assert not reused(records), reused(records)[:2]
