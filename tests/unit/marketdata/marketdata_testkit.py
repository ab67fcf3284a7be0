"""Readers for the recorded Binance.US capture (tests/data/binance-us-capture/, see its
README in ../shared/data): ws file = URL line then ``<recv unix s>: <frame>``; http file =
``<url> -> <recv unix s>: <json body>``."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from algostream.marketdata.binance import parse_depth_snapshot, parse_frame
from algostream.marketdata.book import OrderBook
from algostream.marketdata.frames import BookTicker
from algostream.marketdata.sync import BinanceBookSync
from algostream.model import BookIntegrity, BookUpdate, BookUpdateKind, Side, TradeTick

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "binance-us-capture"
WS_FILE = CAPTURE / "BINANCE_US.ws.1.0"
HTTP_FILE = CAPTURE / "BINANCE_US.http.0.0"


def seconds_to_ns(text: str) -> int:
    """Exact: ``"1633998274.723671"`` → ns without binary-float rounding."""
    return int(Decimal(text.strip()) * 1_000_000_000)


@dataclass(frozen=True)
class WsLine:
    recv_ns: int
    frame: str


@dataclass(frozen=True)
class HttpLine:
    url: str
    recv_ns: int
    body: str

    @property
    def symbol(self) -> str:
        return parse_qs(urlparse(self.url).query)["symbol"][0]


def ws_url() -> str:
    return WS_FILE.read_text().splitlines()[0]


def ws_lines() -> list[WsLine]:
    out = []
    for line in WS_FILE.read_text().splitlines()[1:]:
        if not line.strip():
            continue
        stamp, sep, frame = line.partition(": ")
        assert sep, f"capture line without ': ' separator: {line[:80]!r}"
        out.append(WsLine(seconds_to_ns(stamp), frame))
    return out


def http_lines() -> list[HttpLine]:
    out = []
    for line in HTTP_FILE.read_text().splitlines():
        if not line.strip():
            continue
        url, sep, rest = line.partition(" -> ")
        stamp, sep2, body = rest.partition(": ")
        assert sep and sep2, f"http capture line not '<url> -> <t>: <json>': {line[:80]!r}"
        out.append(HttpLine(url, seconds_to_ns(stamp), body))
    return out


def delta(inst: str, first: int, final: int, bids=(), asks=(), ts: int = 1) -> BookUpdate:
    return BookUpdate(
        instrument=inst,
        ts_event=ts,
        ts_init=ts,
        record_id=f"d{first}-{final}",
        lineage_id="raw",
        kind=BookUpdateKind.DELTA,
        bids=bids,
        asks=asks,
        first_update_id=first,
        final_update_id=final,
    )


def snapshot(inst: str, last: int, bids=(), asks=(), ts: int = 1) -> BookUpdate:
    return BookUpdate(
        instrument=inst,
        ts_event=ts,
        ts_init=ts,
        record_id=f"s{last}",
        lineage_id="rest",
        kind=BookUpdateKind.SNAPSHOT,
        bids=bids,
        asks=asks,
        first_update_id=last,
        final_update_id=last,
    )


def trade(inst: str, n: int, ts: int, price: str, size: str) -> TradeTick:
    return TradeTick(
        instrument=inst,
        ts_event=ts,
        ts_init=ts,
        record_id=f"t{n}",
        lineage_id="raw",
        trade_id=str(n),
        price=price,
        size=size,
        aggressor_side=Side.BUY,
    )


@dataclass
class Replay:
    syncs: dict[str, BinanceBookSync] = field(default_factory=dict)
    published: dict[str, list[BookUpdate]] = field(default_factory=lambda: defaultdict(list))
    integrity: list[BookIntegrity] = field(default_factory=list)
    books: dict[str, OrderBook] = field(default_factory=dict)
    tops_at: dict[tuple[str, int], tuple] = field(default_factory=dict)
    tickers: list[BookTicker] = field(default_factory=list)
    crossed_after: list[tuple[str, int]] = field(default_factory=list)

    def sync(self, inst: str) -> BinanceBookSync:
        return self.syncs.setdefault(inst, BinanceBookSync(inst))

    def publish(self, records: list) -> None:
        for rec in records:
            if isinstance(rec, BookIntegrity):
                self.integrity.append(rec)
                continue
            self.published[rec.instrument].append(rec)
            book = self.books.setdefault(rec.instrument, OrderBook(rec.instrument))
            book.apply(rec)
            self.tops_at[(rec.instrument, rec.final_update_id)] = (book.best_bid(), book.best_ask())
            if book.is_crossed():
                self.crossed_after.append((rec.instrument, rec.final_update_id))


def capture_events(skip_diff: tuple[str, int] | None = None) -> list[tuple[int, str, object]]:
    """ws frames and REST snapshots in receive order (a diff can be left out)."""
    events: list[tuple[int, str, object]] = []
    for line in ws_lines():
        if skip_diff and f'"s":"{skip_diff[0]}","U":{skip_diff[1]},' in line.frame:
            continue
        events.append((line.recv_ns, "ws", line.frame))
    events += [(h.recv_ns, "http", h) for h in http_lines()]
    events.sort(key=lambda e: e[0])
    return events


def replay(events, replay_state: Replay | None = None) -> Replay:
    r = replay_state or Replay()
    for recv_ns, kind, item in events:
        if kind == "http":
            (snap,) = parse_depth_snapshot(item.body, item.symbol, recv_ns).book
            r.publish(r.sync(snap.instrument).on_snapshot(snap))
            continue
        f = parse_frame(item, recv_ns)
        r.tickers += f.tickers
        for update in f.book:
            r.publish(r.sync(update.instrument).on_diff(update))
    return r


def raw_depth_by_symbol() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for line in ws_lines():
        data = json.loads(line.frame)["data"]
        if data.get("e") == "depthUpdate":
            out[data["s"]].append(data)
    return out
