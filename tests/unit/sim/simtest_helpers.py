"""A small, independent reference implementation of Binance's documented book sync, and
JSON receive helpers, used to check the simulator from the outside."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect


def ws_connect(url: str) -> connect:
    """A websockets client without receive-side flow control (tests read selectively)."""
    return connect(url, max_queue=None, close_timeout=2, max_size=None)


class OutOfSync(Exception):
    """A diff did not chain onto the previous one."""


class LocalBook:
    """Snapshot + diffs, per the Binance spot procedure (steps 4-7)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.last_u = int(snapshot["lastUpdateId"])
        self.bids = {Decimal(p): Decimal(q) for p, q in snapshot["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}
        self.started = False
        self.crossed_seen = False

    def apply(self, diff: dict[str, Any]) -> bool:
        """Apply one depthUpdate; False if it is older than the book; raises OutOfSync."""
        first, last = int(diff["U"]), int(diff["u"])
        if last <= self.last_u:
            return False
        if not self.started:
            if not first <= self.last_u + 1 <= last:
                raise OutOfSync(f"first diff U={first} u={last} vs lastUpdateId={self.last_u}")
            self.started = True
        elif first != self.last_u + 1:
            raise OutOfSync(f"gap: U={first} after u={self.last_u}")
        for side, levels in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = Decimal(q)
        self.last_u = last
        if self.bids and self.asks and max(self.bids) >= min(self.asks):
            self.crossed_seen = True
        return True

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(bids, asks) best first."""
        bids = sorted(self.bids.items(), key=lambda kv: -kv[0])
        return bids, sorted(self.asks.items())


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> Any:
    """The next frame, parsed."""
    async with asyncio.timeout(timeout):
        return orjson.loads(await ws.recv())


async def sync_book(
    ws: ClientConnection, http: httpx.AsyncClient, symbol: str, min_buffered: int = 5
) -> LocalBook:
    """Steps 1-5: buffer diffs, fetch a snapshot, drop stale diffs, apply the rest."""
    buffered: list[dict[str, Any]] = []
    while len(buffered) < min_buffered:
        frame = await recv_json(ws)
        if frame.get("data", {}).get("e") == "depthUpdate":
            buffered.append(frame["data"])
    resp = await http.get("/api/v3/depth", params={"symbol": symbol, "limit": 1000})
    snapshot = resp.json()
    assert snapshot["lastUpdateId"] >= buffered[0]["U"], "snapshot older than the stream"
    book = LocalBook(snapshot)
    for diff in buffered:
        book.apply(diff)
    return book


async def follow(ws: ClientConnection, book: LocalBook, until_u: int) -> None:
    """Apply diffs from ``ws`` until the book reaches update id ``until_u``."""
    async with asyncio.timeout(10):
        while book.last_u < until_u:
            frame = orjson.loads(await ws.recv())
            data = frame.get("data", {})
            if data.get("e") == "depthUpdate":
                book.apply(data)


def decimal_levels(levels: list[list[str]]) -> list[tuple[Decimal, Decimal]]:
    """Wire [[price, qty], ...] as Decimals."""
    return [(Decimal(p), Decimal(q)) for p, q in levels]
