"""Binance spot adapter for the ingestor: combined streams + REST snapshots.

Per symbol a :class:`~algostream.marketdata.sync.BinanceBookSync` runs the documented
procedure (buffer diffs, snapshot, drop ``u <= lastUpdateId``, chain ``U``/``u``; a gap
asks for a new snapshot). Trades are de-duplicated by trade id so the overlap of a
rotated connection publishes each trade once; diffs are de-duplicated by the sync.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from algostream.config import MarketDataConfig
from algostream.ingest.feed import FeedHealth, FrameResult, route_book
from algostream.marketdata.binance import (
    combined_stream_url,
    depth_snapshot_url,
    parse_depth_snapshot,
    parse_frame,
)
from algostream.marketdata.binance_usdm import require_pu_absent
from algostream.marketdata.errors import FrameError
from algostream.marketdata.frames import FrameKind, ParsedFrame
from algostream.marketdata.sync import BinanceBookSync
from algostream.model.enums import IntegrityKind
from algostream.model.ids import instrument_id
from algostream.model.records import BookUpdate, TradeTick

VENUE = "BINANCE"


class BinanceFamily(FeedHealth):
    """What the spot and USD-M adapters share: a book sync per symbol (``new_sync``), the
    combined-stream URL, trades once per id, snapshots that take a book live again."""

    venue = VENUE

    def __init__(self, cfg: MarketDataConfig, new_sync: Callable[[str], Any]) -> None:
        super().__init__()
        self.cfg = cfg
        self.symbols = [s.upper() for s in cfg.symbols]
        self.instruments = {s: instrument_id(self.venue, s) for s in self.symbols}
        self.syncs = {s: new_sync(self.instruments[s]) for s in self.symbols}
        self.last_trade: dict[str, int] = {}
        # instruments told DISCONNECTED/STALE: they get RESYNCED once live again. A STALE
        # the book worker raised while no ingestor ran is cleared by the worker itself
        # when updates resume (BookProcessor), so a first sync is not announced.
        self.degraded: set[str] = set()

    def subscribe_messages(self) -> list[str]:
        return []  # the combined-stream URL subscribes

    def on_connected(self, conn_id: int, now_ns: int, *, rotating: bool = False) -> FrameResult:
        if not rotating:  # a fresh connection: every book starts over from a snapshot
            for sync in self.syncs.values():
                sync.reset()
        return FrameResult()

    def on_disconnected(self, now_ns: int, reason: str) -> FrameResult:
        for sync in self.syncs.values():
            sync.reset()
        return self.feed_down(IntegrityKind.DISCONNECTED, now_ns, reason)

    def add_trades(self, trades: list[TradeTick], result: FrameResult) -> None:
        """``md.trades`` for each trade not published yet (the overlap of a rotated
        connection is published once; an id that is not a number is always published)."""
        for trade in trades:
            tid = int(trade.trade_id) if trade.trade_id.isdigit() else None
            if tid is not None:
                if tid <= self.last_trade.get(trade.instrument, -1):
                    continue  # already published from the other connection
                self.last_trade[trade.instrument] = tid
            result.records.append(("md.trades", trade))

    def add_diff(self, sync: Any, out: Any, update: BookUpdate, result: FrameResult) -> None:
        """Route what ``sync`` made of ``update`` (``out``); ask for a snapshot if due."""
        route_book(out, result)
        if sync.needs_snapshot:
            result.snapshot_requests.append(sync.instrument.partition(":")[2])
        self.mark_fresh(update.instrument)

    def snapshot_result(self, frame: ParsedFrame, symbol: str, source: str) -> FrameResult:
        """The records of a parsed REST depth snapshot (``source`` names it in the
        RESYNCED detail)."""
        result = FrameResult(records=[("md.raw", frame.raw)])
        sync = self.syncs[symbol]
        for snapshot in frame.book:
            route_book(sync.on_snapshot(snapshot), result)
            last = sync.last_update_id
            if last is not None:
                detail = f"live again from {source} lastUpdateId={last}"
                self.live_again(snapshot, last, detail, result)
        if sync.needs_snapshot and sync.buffered:
            result.snapshot_requests.append(symbol)  # too old for the buffered diffs
        return result


class BinanceAdapter(BinanceFamily):
    exchange = "binance"

    def __init__(self, cfg: MarketDataConfig) -> None:
        super().__init__(cfg, BinanceBookSync)

    def url(self) -> str:
        return combined_stream_url(self.cfg.websocket_url, self.symbols)

    def on_frame(self, conn_id: int, text: str, recv_ns: int) -> FrameResult:
        result = FrameResult()
        try:
            frame = parse_frame(text, recv_ns, VENUE)
        except FrameError as exc:
            result.error = exc
            return result
        if frame.book:  # a futures diff (with pu) chains differently: refuse it, named
            try:
                require_pu_absent(text)
            except FrameError as exc:
                result.error = exc
                return result
        result.records.append(("md.raw", frame.raw))
        if frame.kind is FrameKind.SHUTDOWN:
            result.rotate = True
        self.add_trades(frame.trades, result)
        for update in frame.book:
            sync = self.syncs.get(update.instrument.partition(":")[2])
            if sync is not None:  # else a symbol we did not subscribe to
                self.add_diff(sync, sync.on_diff(update), update, result)
        return result

    async def fetch_snapshot(
        self, http: httpx.AsyncClient, symbol: str, now_ns: int
    ) -> FrameResult:
        url = depth_snapshot_url(self.cfg.rest_url, symbol, self.cfg.snapshot_depth)
        resp = await http.get(url)
        resp.raise_for_status()
        return self.on_snapshot_body(symbol, resp.content, now_ns)

    def on_snapshot_body(self, symbol: str, body: bytes | str, now_ns: int) -> FrameResult:
        """A REST depth snapshot (fetched now, or read back from a capture)."""
        frame = parse_depth_snapshot(body, symbol, now_ns, VENUE)
        return self.snapshot_result(frame, symbol, "snapshot")
