"""Coinbase Advanced Trade adapter for the ingestor: ``level2``, ``market_trades`` and
``heartbeats`` on one connection (``market_data.websocket_url``: the simulator's
``ws://host:port/coinbase``, or ``wss://advanced-trade-ws.coinbase.com``).

Coinbase sends each product's whole book as an ``l2_data`` snapshot when it is subscribed,
then updates; there is no REST snapshot to fetch. ``sequence_num`` counts the messages of
one connection, so a jump means a message of this connection was lost: per connection a
:class:`~algostream.marketdata.sync.CoinbaseSequenceTracker` marks every synced product out
of sync (GAP) and withholds its updates, and the adapter asks for a new connection
(rotation: the old one is read until the new one delivers), whose subscribe brings fresh
snapshots (RESYNCED). A book update's first and final update ids are the message's
``sequence_num``, which restarts on a new connection: the book worker takes a snapshot as
the start of a chain whatever its number, so each product's updates are published from one
connection at a time, the one whose snapshot was published last (while two connections
overlap, the old one's updates for a product stop at the new one's snapshot). Trades are
published once by trade id (both connections of a rotation carry them).
"""

from __future__ import annotations

import httpx

from algostream.config import MarketDataConfig
from algostream.ingest.feed import FeedHealth, FrameResult, route_book
from algostream.marketdata.coinbase import VENUE, parse_message, subscribe_messages
from algostream.marketdata.errors import FrameError, short_repr
from algostream.marketdata.frames import FrameKind
from algostream.marketdata.sync import CoinbaseSequenceTracker
from algostream.model.enums import BookUpdateKind, IntegrityKind
from algostream.model.ids import instrument_id
from algostream.model.records import BookUpdate, Record, TradeTick


class CoinbaseAdapter(FeedHealth):
    venue = VENUE
    exchange = "coinbase"

    def __init__(self, cfg: MarketDataConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.products = [s.upper() for s in cfg.symbols]
        self.instruments = {p: instrument_id(VENUE, p) for p in self.products}
        self.subscribed = frozenset(self.instruments.values())
        #: connection id -> its sequence tracker (two while a rotation overlaps them)
        self.trackers: dict[int, CoinbaseSequenceTracker] = {}
        #: instrument -> the connection whose snapshot of it was published last
        self.owner: dict[str, int] = {}
        self.last_trade: dict[str, int] = {}
        #: instruments told DISCONNECTED/STALE: RESYNCED at their next snapshot
        self.degraded: set[str] = set()
        #: connection id -> when it was opened (ns): part of its book updates' record ids
        self.epochs: dict[int, int] = {}

    def url(self) -> str:
        return self.cfg.websocket_url

    def subscribe_messages(self) -> list[str]:
        return subscribe_messages(self.products)

    def on_connected(self, conn_id: int, now_ns: int, *, rotating: bool = False) -> FrameResult:
        if not rotating:  # the old connections are gone
            self.trackers.clear()
            self.owner.clear()
        for old in [c for c in self.trackers if c < conn_id - 1]:  # closed by now
            del self.trackers[old]
        for old in [c for c in self.epochs if c < conn_id - 1]:
            del self.epochs[old]
        self.trackers[conn_id] = CoinbaseSequenceTracker()
        self.epochs[conn_id] = now_ns
        return FrameResult()

    def on_frame(self, conn_id: int, text: str, recv_ns: int) -> FrameResult:
        result = FrameResult()
        try:
            frame = parse_message(text, recv_ns, epoch=self.epochs.get(conn_id, 0))
        except FrameError as exc:
            result.error = exc
            return result
        result.records.append(("md.raw", frame.raw))
        if frame.kind is FrameKind.ERROR:  # e.g. a subscribe it refused: to the dlq, named
            result.error = FrameError(
                "message", short_repr(frame.message), "the exchange answered with an error"
            )
            return result
        tracker = self.trackers.setdefault(conn_id, CoinbaseSequenceTracker())
        gaps = tracker.gaps
        for record in tracker.on_frame(frame):
            self._route(conn_id, record, result)
        if tracker.gaps > gaps:  # a new connection subscribes again: fresh snapshots
            tracker.take_resubscribe()
            self.degraded.update(tracker.out_of_sync)  # RESYNCED at the new snapshot
            result.rotate = True
        return result

    def _route(self, conn_id: int, record: Record, result: FrameResult) -> None:
        inst = record.instrument
        if isinstance(record, TradeTick):
            tid = int(record.trade_id) if record.trade_id.isdigit() else None
            if tid is not None:
                if tid <= self.last_trade.get(inst, -1):
                    return  # already published from the other connection
                self.last_trade[inst] = tid
            result.records.append(("md.trades", record))
            return
        if not isinstance(record, BookUpdate):  # the tracker's GAP / RESYNCED
            route_book([record], result)
            return
        if inst not in self.subscribed:
            return  # a product we did not subscribe to
        if record.kind is BookUpdateKind.SNAPSHOT:
            self.owner[inst] = conn_id
        elif self.owner.get(inst) != conn_id:
            return  # another connection's snapshot starts this product's chain now
        route_book([record], result)
        self.mark_fresh(inst)
        if record.kind is BookUpdateKind.SNAPSHOT:
            n = record.final_update_id
            self.live_again(
                record, n, f"live again from a level2 snapshot (sequence_num {n})", result
            )

    async def fetch_snapshot(
        self, http: httpx.AsyncClient, symbol: str, now_ns: int
    ) -> FrameResult:
        """Nothing to fetch: a book's snapshot comes on the connection (never asked for)."""
        return FrameResult()

    def on_disconnected(self, now_ns: int, reason: str) -> FrameResult:
        self.trackers.clear()
        self.owner.clear()
        return self.feed_down(IntegrityKind.DISCONNECTED, now_ns, reason)
