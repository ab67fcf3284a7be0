"""Binance spot adapter for the ingestor: combined streams + REST snapshots.

Per symbol a :class:`~algostream.marketdata.sync.BinanceBookSync` runs the documented
procedure (buffer diffs, snapshot, drop ``u <= lastUpdateId``, chain ``U``/``u``; a gap
asks for a new snapshot). Trades are de-duplicated by trade id so the overlap of a
rotated connection publishes each trade once; diffs are de-duplicated by the sync.
"""

from __future__ import annotations

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
from algostream.marketdata.frames import FrameKind
from algostream.marketdata.sync import BinanceBookSync
from algostream.model.enums import IntegrityKind
from algostream.model.ids import instrument_id

VENUE = "BINANCE"


class BinanceAdapter(FeedHealth):
    venue = VENUE
    exchange = "binance"

    def __init__(self, cfg: MarketDataConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.symbols = [s.upper() for s in cfg.symbols]
        self.instruments = {s: instrument_id(VENUE, s) for s in self.symbols}
        self.syncs = {s: BinanceBookSync(self.instruments[s]) for s in self.symbols}
        self.last_trade: dict[str, int] = {}
        # instruments told DISCONNECTED/STALE: they get RESYNCED once live again. A STALE
        # the book worker raised while no ingestor ran is cleared by the worker itself
        # when updates resume (BookProcessor), so a first sync is not announced.
        self.degraded: set[str] = set()

    def url(self) -> str:
        return combined_stream_url(self.cfg.websocket_url, self.symbols)

    def subscribe_messages(self) -> list[str]:
        return []  # the combined-stream URL subscribes

    def on_connected(self, conn_id: int, now_ns: int, *, rotating: bool = False) -> FrameResult:
        if not rotating:  # a fresh connection: every book starts over from a snapshot
            for sync in self.syncs.values():
                sync.reset()
        return FrameResult()

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
        for trade in frame.trades:
            tid = int(trade.trade_id) if trade.trade_id.isdigit() else None
            if tid is not None:
                if tid <= self.last_trade.get(trade.instrument, -1):
                    continue  # already published from the other connection
                self.last_trade[trade.instrument] = tid
            result.records.append(("md.trades", trade))
        for update in frame.book:
            symbol = update.instrument.partition(":")[2]
            sync = self.syncs.get(symbol)
            if sync is None:
                continue  # a symbol we did not subscribe to
            route_book(sync.on_diff(update), result)
            if sync.needs_snapshot:
                result.snapshot_requests.append(symbol)
            self.mark_fresh(update.instrument)
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
        result = FrameResult(records=[("md.raw", frame.raw)])
        sync = self.syncs[symbol]
        for snapshot in frame.book:
            out = sync.on_snapshot(snapshot)
            route_book(out, result)
            last = sync.last_update_id
            if last is not None:
                detail = f"live again from snapshot lastUpdateId={last}"
                self.live_again(snapshot, last, detail, result)
        if sync.needs_snapshot and sync.buffered:
            result.snapshot_requests.append(symbol)  # too old for the buffered diffs
        return result

    def on_disconnected(self, now_ns: int, reason: str) -> FrameResult:
        for sync in self.syncs.values():
            sync.reset()
        return self.feed_down(IntegrityKind.DISCONNECTED, now_ns, reason)
