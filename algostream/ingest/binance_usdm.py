"""Binance USDⓈ-M futures adapter for the ingestor: combined streams + ``/fapi`` snapshots.

``market_data.exchange = "binance_usdm"``; ``websocket_url`` is
``wss://fstream.binance.com`` (or the simulator's ``ws://host:port/fstream``) and
``rest_url`` ``https://fapi.binance.com`` (or the simulator's ``http://host:port``).
Per symbol a :class:`~algostream.marketdata.usdm_sync.UsdmBookSync` runs the futures
procedure (chain on ``pu``); aggregate trades go to ``md.trades`` (once per ``a`` id, so
the overlap of a rotated connection is published once) and mark price / funding updates
to ``md.mark_price`` (once per event time); liquidation orders (``forceOrder``) to
``md.liquidations``, counted in ``algostream_liquidations_total`` and
``algostream_liquidated_notional_total``.
"""

from __future__ import annotations

import httpx

from algostream.config import MarketDataConfig
from algostream.ingest.binance import BinanceFamily
from algostream.ingest.feed import FrameResult
from algostream.marketdata.binance_usdm import (
    VENUE,
    nearest_depth_limit,
    parse_usdm_depth,
    parse_usdm_frame,
    usdm_depth_url,
    usdm_stream_url,
)
from algostream.marketdata.errors import FrameError, short_repr
from algostream.marketdata.frames import FrameKind
from algostream.marketdata.usdm_sync import UsdmBookSync
from algostream.observability import metrics


class BinanceUsdmAdapter(BinanceFamily):
    venue = VENUE
    exchange = "binance_usdm"

    def __init__(self, cfg: MarketDataConfig) -> None:
        super().__init__(cfg, UsdmBookSync)
        self.last_mark: dict[str, int] = {}

    def url(self) -> str:
        return usdm_stream_url(self.cfg.websocket_url, self.symbols)

    def on_frame(self, conn_id: int, text: str, recv_ns: int) -> FrameResult:
        result = FrameResult()
        try:
            parsed = parse_usdm_frame(text, recv_ns, VENUE)
        except FrameError as exc:
            result.error = exc
            return result
        frame = parsed.frame
        result.records.append(("md.raw", frame.raw))
        if frame.kind is FrameKind.SHUTDOWN:
            result.rotate = True
        elif frame.kind is FrameKind.ERROR:
            result.error = FrameError(
                "error", short_repr(frame.message), "the exchange answered with an error"
            )
        self.add_trades(frame.trades, result)
        for mark in parsed.marks:
            if mark.ts_event <= self.last_mark.get(mark.instrument, -1):
                continue
            self.last_mark[mark.instrument] = mark.ts_event
            result.records.append(("md.mark_price", mark))
        for liquidation in parsed.liquidations:
            result.records.append(("md.liquidations", liquidation))
            metrics.LIQUIDATIONS.labels(
                instrument=liquidation.instrument, side=liquidation.side.value
            ).inc()
            metrics.LIQUIDATED_NOTIONAL.labels(instrument=liquidation.instrument).inc(
                float(liquidation.quantity * (liquidation.avg_price or liquidation.price))
            )
        for update, pu in zip(frame.book, parsed.prev_final_ids, strict=True):
            sync = self.syncs.get(update.instrument.partition(":")[2])
            if sync is not None:  # else a symbol we did not subscribe to
                self.add_diff(sync, sync.on_diff(update, pu), update, result)
        return result

    async def fetch_snapshot(
        self, http: httpx.AsyncClient, symbol: str, now_ns: int
    ) -> FrameResult:
        limit = nearest_depth_limit(self.cfg.snapshot_depth)
        resp = await http.get(usdm_depth_url(self.cfg.rest_url, symbol, limit))
        resp.raise_for_status()
        return self.on_snapshot_body(symbol, resp.content, now_ns)

    def on_snapshot_body(self, symbol: str, body: bytes | str, now_ns: int) -> FrameResult:
        """A ``/fapi/v1/depth`` snapshot (fetched now, or read back from a capture)."""
        frame = parse_usdm_depth(body, symbol, now_ns, VENUE)
        return self.snapshot_result(frame, symbol, "/fapi/v1/depth")
