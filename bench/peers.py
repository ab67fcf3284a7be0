"""Peers side by side, in one process, on the same recorded deltas.

* Book handling: the real Binance.US capture (tests/data), synced by the same ingest code,
  applied to (a) our :class:`OrderBook` (a dict and a bisect-sorted list a side,
  Decimal), (b) the ``order-book`` C library (the book cryptofeed uses: cryptofeed's
  feed handlers keep their L2 books in ``order_book.OrderBook``), each followed by
  reading the best 10 levels per side, as the book stage does for ``book.top``; and (c)
  our whole book stage (``BookProcessor``: chain check, crossed check, ``BookTop`` record
  with imbalance and microprice).
* Feed handlers, frames in and book updates out (issue 27 item 4): the capture's 336
  ``depthUpdate`` frames through cryptofeed's own ``BinanceUS`` handler (its
  ``message_handler``: JSON decode, the update-id check, its ``order-book`` C book, the
  ``L2_BOOK`` callback; its REST snapshot answered from the capture's recorded bodies)
  and through ours (``BinanceAdapter``: parse, sync, ``md.raw`` + ``md.book`` records;
  then the book stage's ``BookProcessor`` to ``book.top`` records), the same recorded
  REST snapshots given to both.
* Serialisation of the same ``md.book`` records: ours (pydantic model + orjson) against
  msgspec (typed Struct, its own JSON codec) and the stdlib ``json`` module.

Ratios are per-call CPU time of the alternative / ours (below 1: the alternative is faster).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec
import order_book
import orjson
from cryptofeed.defines import L2_BOOK
from cryptofeed.exchanges import BinanceUS
from cryptofeed.symbols import Symbols

from algostream.backtest.capture import load_recorded_binance_capture
from algostream.backtest.engine import BacktestEngine
from algostream.config import Settings, load_settings
from algostream.ingest.binance import BinanceAdapter
from algostream.marketdata.book import OrderBook
from algostream.marketdata.processor import BookProcessor
from algostream.model import BookUpdate, BookUpdateKind, RawFrame

CAPTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "binance-us-capture"
LEVELS = 10
SYMBOLS = ("COMPUSDT", "CRVUSDT", "OMGBUSD", "ZRXUSDT")


def _settings() -> Settings:
    return load_settings(env={"ALGOSTREAM__MARKET_DATA__SYMBOLS": orjson.dumps(SYMBOLS).decode()})


def recorded_updates() -> list[BookUpdate]:
    """md.book as the ingestor publishes it for the recorded capture."""
    settings = _settings()
    raws = [
        e.record(RawFrame)
        for e in load_recorded_binance_capture(
            CAPTURE / "BINANCE_US.ws.1.0", CAPTURE / "BINANCE_US.http.0.0"
        )
    ]
    result = BacktestEngine(settings).run(raws)
    return [r for t, r in result.outputs if t == "md.book" and isinstance(r, BookUpdate)]


def per_call_us(fn: Callable[[], int], repeat: int = 5) -> float:
    """Best of ``repeat`` runs of ``fn`` (which returns how many calls it made), µs of
    CPU per call (process time: other jobs on a shared machine move it less than wall time)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        n = fn()
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


def ours(updates: list[BookUpdate], loops: int, top: bool = True) -> int:
    for _ in range(loops):
        books: dict[str, OrderBook] = {}
        for u in updates:
            book = books.get(u.instrument)
            if book is None:
                book = books[u.instrument] = OrderBook(u.instrument)
            book.apply(u)
            if top:
                book.top(LEVELS)
    return loops * len(updates)


def c_order_book(updates: list[BookUpdate], loops: int, top: bool = True) -> int:
    for _ in range(loops):
        books: dict[str, order_book.OrderBook] = {}
        for u in updates:
            book = books.get(u.instrument)
            if book is None or u.kind is BookUpdateKind.SNAPSHOT:
                book = books[u.instrument] = order_book.OrderBook()
            for side, levels in ((book.bids, u.bids), (book.asks, u.asks)):
                for price, qty in levels:
                    if qty:
                        side[price] = qty
                    elif price in side:
                        del side[price]
            if not top:
                continue
            bids, asks = book.bids, book.asks
            _ = [bids.index(i) for i in range(min(LEVELS, len(bids)))]
            _ = [asks.index(i) for i in range(min(LEVELS, len(asks)))]
    return loops * len(updates)


def book_stage(updates: list[BookUpdate], loops: int) -> int:
    for _ in range(loops):
        proc = BookProcessor(LEVELS)
        for u in updates:
            proc.on_update(u, u.ts_init)
    return loops * len(updates)


def recorded_frames() -> tuple[list[RawFrame], dict[str, str]]:
    """The capture's ``depthUpdate`` frames and REST depth snapshots (as ``md.raw``
    records, in receive order), and each symbol's snapshot body."""
    raws = [
        e.record(RawFrame)
        for e in load_recorded_binance_capture(
            CAPTURE / "BINANCE_US.ws.1.0", CAPTURE / "BINANCE_US.http.0.0"
        )
    ]
    depth = [r for r in raws if r.stream.startswith("rest:") or "depthUpdate" in r.payload]
    bodies = {
        r.instrument.partition(":")[2]: r.payload for r in raws if r.stream.startswith("rest:")
    }
    return depth, bodies


def ours_frames(frames: list[RawFrame], loops: int, book: bool) -> int:
    """Our ingest adapter on the frames (a snapshot body where the capture has it), and
    with ``book`` the book stage on its ``md.book`` records; returns depth frames handled."""
    settings = _settings()
    n = 0
    for _ in range(loops):
        adapter, proc = BinanceAdapter(settings.market_data), BookProcessor(LEVELS)
        for raw in frames:
            if raw.stream.startswith("rest:"):
                symbol = raw.instrument.partition(":")[2]
                result = adapter.on_snapshot_body(symbol, raw.payload, raw.ts_init)
            else:
                result = adapter.on_frame(0, raw.payload, raw.ts_init)
                n += 1
            if book:
                for topic, record in result.records:
                    if topic == "md.book":
                        proc.on_update(record, raw.ts_init)  # type: ignore[arg-type]
    return n


class _RecordedRest:
    """cryptofeed's HTTP connection, answering its depth request from the capture."""

    def __init__(self, bodies: dict[str, str]) -> None:
        self.bodies = bodies

    async def read(self, url: str, **_: object) -> str:
        return self.bodies[url.split("symbol=")[1].split("&")[0]]


def cryptofeed_handler(frames: list[RawFrame], bodies: dict[str, str], loops: int) -> int:
    """cryptofeed's ``BinanceUS.message_handler`` on the same depth frames; returns depth
    frames handled (each a book callback or an update the handler skipped as old)."""
    info = {
        "symbols": [
            {"symbol": s, "baseAsset": s[:-4], "quoteAsset": s[-4:], "filters": [{"tickSize": "0"}]}
            for s in SYMBOLS
        ]
    }
    Symbols.set(BinanceUS.id, *BinanceUS._parse_symbol_data(info))  # no exchangeInfo request
    depth = [(r.ts_init / 1e9, r.payload) for r in frames if not r.stream.startswith("rest:")]
    books = [0]

    async def on_book(book: object, receipt: float) -> None:
        books[0] += 1

    async def run() -> int:
        for _ in range(loops):
            feed = BinanceUS(
                symbols=[f"{s[:-4]}-{s[-4:]}" for s in SYMBOLS],
                channels=[L2_BOOK],
                callbacks={L2_BOOK: on_book},
            )
            feed.http_conn = _RecordedRest(bodies)
            for receipt, text in depth:
                await feed.message_handler(text, None, receipt)
        return loops * len(depth)

    return asyncio.run(run())


def handlers(loops: int) -> list[str]:
    frames, bodies = recorded_frames()
    depth = sum(not r.stream.startswith("rest:") for r in frames)
    cf = per_call_us(lambda: cryptofeed_handler(frames, bodies, loops))
    ingest = per_call_us(lambda: ours_frames(frames, loops, book=False))
    both = per_call_us(lambda: ours_frames(frames, loops, book=True))
    return [
        "",
        f"{depth} recorded `depthUpdate` frames (4 symbols, each symbol's recorded REST "
        f"snapshot given to both), replayed {loops} times; best of 5 runs.",
        "",
        "| feed handler: depth frames in, book updates out | CPU µs / frame | vs cryptofeed |",
        "|---|---|---|",
        f"| cryptofeed 2.4 `BinanceUS.message_handler` (decode, update-id check, order-book "
        f"C book, L2_BOOK callback) | {cf:.2f} | 1.00 |",
        f"| ours: `BinanceAdapter` (parse, sync, md.raw + md.book records) | {ingest:.2f} | "
        f"{ingest / cf:.2f} |",
        f"| ours: `BinanceAdapter` + book stage (`BookProcessor` -> book.top records) | "
        f"{both:.2f} | {both / cf:.2f} |",
    ]


class MsgspecUpdate(msgspec.Struct):
    instrument: str
    ts_event: int
    ts_init: int
    record_id: str
    lineage_id: str
    kind: str
    first_update_id: int
    final_update_id: int
    bids: list[tuple[Decimal, Decimal]] = []
    asks: list[tuple[Decimal, Decimal]] = []


def serde(updates: list[BookUpdate], loops: int) -> dict[str, float]:
    payloads = [u.encode() for u in updates]
    dicts = [json.loads(p) for p in payloads]
    structs = [msgspec.json.decode(p, type=MsgspecUpdate) for p in payloads]
    enc = msgspec.json.Encoder(decimal_format="string")
    dec = msgspec.json.Decoder(MsgspecUpdate)
    n = loops * len(updates)

    def run(fn: Callable[[int], object]) -> Callable[[], int]:
        def go() -> int:
            for _ in range(loops):
                for i in range(len(updates)):
                    fn(i)
            return n

        return go

    return {
        "decode: strict msgspec pass, pydantic for what it refuses (ours)": per_call_us(
            run(lambda i: BookUpdate.decode(payloads[i]))
        ),
        "decode: orjson + the pydantic model alone (before)": per_call_us(
            run(lambda i: BookUpdate.model_validate(orjson.loads(payloads[i])))
        ),
        "decode: msgspec typed Struct (Decimals, no checks)": per_call_us(
            run(lambda i: dec.decode(payloads[i]))
        ),
        "decode: stdlib json (untyped dict)": per_call_us(run(lambda i: json.loads(payloads[i]))),
        "encode: msgspec from the record's fields (ours)": per_call_us(
            run(lambda i: updates[i].encode())
        ),
        "encode: pydantic model_dump + orjson (before)": per_call_us(
            run(lambda i: orjson.dumps(updates[i].model_dump(mode="json")))
        ),
        "encode: msgspec typed Struct": per_call_us(run(lambda i: enc.encode(structs[i]))),
        "encode: stdlib json (dict)": per_call_us(run(lambda i: json.dumps(dicts[i]).encode())),
    }


def main(loops: int = 30) -> list[str]:
    updates = recorded_updates()
    levels = sum(len(u.bids) + len(u.asks) for u in updates)
    ours_us = per_call_us(lambda: ours(updates, loops))
    c_us = per_call_us(lambda: c_order_book(updates, loops))
    ours_apply = per_call_us(lambda: ours(updates, loops, top=False))
    c_apply = per_call_us(lambda: c_order_book(updates, loops, top=False))
    stage_us = per_call_us(lambda: book_stage(updates, loops))
    lines = [
        f"{len(updates)} recorded md.book updates ({levels} level changes, 4 instruments), "
        f"replayed {loops} times; best of 5 runs.",
        "",
        "| book handling | CPU µs / update | vs ours |",
        "|---|---|---|",
        f"| ours: OrderBook (dict + bisect-sorted list, Decimal), apply only | {ours_apply:.2f} "
        "| 1.00 |",
        f"| order-book C library (cryptofeed's book), apply only | {c_apply:.2f} | "
        f"{c_apply / ours_apply:.2f} |",
        f"| ours: OrderBook + top 10 | {ours_us:.2f} | 1.00 |",
        f"| order-book C library + top 10 (index(i) per level) | {c_us:.2f} | "
        f"{c_us / ours_us:.2f} |",
        f"| ours: whole book stage (BookProcessor -> BookTop record) | {stage_us:.2f} | "
        f"{stage_us / ours_us:.2f} |",
    ]
    lines += handlers(loops)
    lines += [
        "",
        "| serialisation of md.book records | CPU µs / record | vs ours |",
        "|---|---|---|",
    ]
    results = serde(updates, loops)
    for name, us in results.items():
        kind = name.split(":")[0]
        base = next(v for k, v in results.items() if k.startswith(kind) and k.endswith("(ours)"))
        lines.append(f"| {name} | {us:.2f} | {us / base:.2f} |")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
