"""Binance spot market-data streams: encoders for the wire frames and the fan-out hub.

Endpoints (served by :mod:`algostream.sim.server`):

* ``/stream?streams=btcusdt@trade/btcusdt@depth@100ms`` combined streams, frames
  ``{"stream": name, "data": {...}}``;
* ``/ws`` and ``/ws/<stream>`` raw streams (bare payloads);
* live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` /
  ``GET_PROPERTY`` method messages.

Streams per symbol: ``trade``, ``aggTrade``, ``depth``, ``depth@100ms``, ``depth@1000ms``,
``bookTicker``, ``kline_<interval>`` (sent each second by the exchange, from its trade
tape). A listen key is a stream name too: the user data stream's events go out on it.
Depth streams are batched as Binance does: one ``depthUpdate`` per
stream interval (``@depth@100ms`` every 100 ms, ``@depth`` and ``@depth@1000ms`` every
second) holding every level changed in that interval at its latest quantity, ``U`` the
first and ``u`` the last update id it spans, and nothing sent for an interval without
changes; ``U == previous u + 1`` always, unless a fault drops a message. With
``batch_depth=False`` (the benchmarks' firehose) each market event is its own message.
The ``serverShutdown`` notice is sent as a bare payload
``{"e": "serverShutdown", "E": <ms>}`` on every connection, combined or raw.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from algostream.sim.hub import WsClient
from algostream.sim.market import LevelChange, MarketEvent, TradeFill
from algostream.sim.spec import SymbolSpec

DEPTH_SUFFIXES = ("depth", "depth@100ms", "depth@1000ms")
DEPTH_INTERVAL_MS = {"depth": 1000, "depth@100ms": 100, "depth@1000ms": 1000}
MAX_STREAMS = 1024


@dataclass(frozen=True)
class StreamNames:
    """The stream names of one symbol."""

    trade: str
    agg_trade: str
    depth: tuple[str, ...]
    book_ticker: str

    @classmethod
    def of(cls, symbol: str) -> StreamNames:
        """Names for ``symbol`` (lower-cased, as Binance requires)."""
        s = symbol.lower()
        return cls(
            f"{s}@trade",
            f"{s}@aggTrade",
            tuple(f"{s}@{k}" for k in DEPTH_SUFFIXES),
            f"{s}@bookTicker",
        )


def _levels(spec: SymbolSpec, changes: list[LevelChange]) -> list[list[str]]:
    return [[spec.price_str(p), spec.qty_str(q)] for p, q in changes]


def encode_depth(ev: MarketEvent, spec: SymbolSpec) -> bytes:
    """The ``depthUpdate`` payload of one event."""
    return orjson.dumps(
        {
            "e": "depthUpdate",
            "E": ev.time_ms,
            "s": ev.symbol,
            "U": ev.first_id,
            "u": ev.last_id,
            "b": _levels(spec, ev.bids),
            "a": _levels(spec, ev.asks),
        }
    )


@dataclass
class PendingDepth:
    """The changes of one depth stream since its last message."""

    spec: SymbolSpec
    symbol: str
    interval_ms: int
    first_id: int
    last_id: int = 0
    time_ms: int = 0
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)

    def merge(self, ev: MarketEvent) -> None:
        """Add one event's changes (a later quantity replaces an earlier one)."""
        self.last_id, self.time_ms = ev.last_id, ev.time_ms
        self.bids.update(ev.bids)
        self.asks.update(ev.asks)

    def encode(self) -> bytes:
        """The batched ``depthUpdate`` payload."""
        spec = self.spec
        return orjson.dumps(
            {
                "e": "depthUpdate",
                "E": self.time_ms,
                "s": self.symbol,
                "U": self.first_id,
                "u": self.last_id,
                "b": [[spec.price_str(p), spec.qty_str(q)] for p, q in self.bids.items()],
                "a": [[spec.price_str(p), spec.qty_str(q)] for p, q in self.asks.items()],
            }
        )


def encode_trade(ev: MarketEvent, fill: TradeFill, spec: SymbolSpec) -> bytes:
    """The ``trade`` payload of one fill."""
    return orjson.dumps(
        {
            "e": "trade",
            "E": ev.time_ms,
            "s": ev.symbol,
            "t": fill.trade_id,
            "p": spec.price_str(fill.price),
            "q": spec.qty_str(fill.qty),
            "T": fill.time_ms,
            "m": fill.buyer_is_maker,
            "M": True,
        }
    )


def encode_agg_trade(ev: MarketEvent, fill: TradeFill, spec: SymbolSpec) -> bytes:
    """The ``aggTrade`` payload of one fill (one fill per price level, so ``f == l``)."""
    return orjson.dumps(
        {
            "e": "aggTrade",
            "E": ev.time_ms,
            "s": ev.symbol,
            "a": fill.trade_id,
            "p": spec.price_str(fill.price),
            "q": spec.qty_str(fill.qty),
            "f": fill.trade_id,
            "l": fill.trade_id,
            "T": fill.time_ms,
            "m": fill.buyer_is_maker,
            "M": True,
        }
    )


def encode_book_ticker(ev: MarketEvent, spec: SymbolSpec) -> bytes:
    """The ``bookTicker`` payload for a changed top of book."""
    assert ev.top is not None
    bp, bq, ap, aq = ev.top
    return orjson.dumps(
        {
            "u": ev.last_id,
            "s": ev.symbol,
            "b": spec.price_str(bp),
            "B": spec.qty_str(bq),
            "a": spec.price_str(ap),
            "A": spec.qty_str(aq),
        }
    )


def server_shutdown_frame(now_ms: int) -> bytes:
    """The maintenance notice: reconnect before this connection closes."""
    return orjson.dumps({"e": "serverShutdown", "E": now_ms})


def malformed_frames(symbol: str, count: int) -> list[bytes]:
    """``count`` broken frames, cycling: truncated JSON, not JSON, wrong schema."""
    s = symbol.lower()
    kinds = [
        f'{{"stream":"{s}@depth@100ms","data":{{"e":"depthUpdate","E":1,"s":"'.encode(),
        b"\x00not json at all",
        f'{{"stream":"{s}@trade","data":{{"e":"trade","p":1.5,"q":null}}}}'.encode(),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


@dataclass
class _Sub:
    combined: bool
    streams: set[str] = field(default_factory=set)


class BinanceHub:
    """The connected Binance clients, their subscriptions, and the frame fan-out.

    ``pending_type`` batches a depth stream and ``encode_one`` writes an unbatched depth
    message: the USD-M futures hub (:mod:`.binance_usdm`) replaces both."""

    pending_type: type[PendingDepth] = PendingDepth

    def __init__(self, batch_depth: bool = True) -> None:
        self.batch_depth = batch_depth
        self._pending: dict[str, PendingDepth] = {}
        self._subs: dict[WsClient, _Sub] = {}
        self._refcount: Counter[str] = Counter()
        self._names: dict[str, StreamNames] = {}
        self.drop_depth_remaining = 0
        self.depth_dropped = 0
        self.frames_published = 0

    @property
    def clients(self) -> list[WsClient]:
        """The open connections."""
        return list(self._subs)

    def add(self, client: WsClient, combined: bool, streams: list[str]) -> None:
        """Register a connection with its URL streams."""
        self._subs[client] = _Sub(combined)
        self.subscribe(client, streams)

    def remove(self, client: WsClient) -> None:
        """Forget a closed connection."""
        sub = self._subs.pop(client, None)
        if sub is not None:
            self._refcount.subtract(sub.streams)

    def subscribe(self, client: WsClient, streams: list[str]) -> None:
        """Add streams to a connection."""
        sub = self._subs[client]
        new = set(streams) - sub.streams
        sub.streams |= new
        self._refcount.update(new)

    def unsubscribe(self, client: WsClient, streams: list[str]) -> None:
        """Remove streams from a connection."""
        sub = self._subs[client]
        gone = set(streams) & sub.streams
        sub.streams -= gone
        self._refcount.subtract(gone)

    def streams_of(self, client: WsClient) -> list[str]:
        """The streams a connection is subscribed to, sorted."""
        return sorted(self._subs[client].streams)

    def set_combined(self, client: WsClient, combined: bool) -> None:
        """Switch a connection between combined and raw payloads."""
        self._subs[client].combined = combined

    def is_combined(self, client: WsClient) -> bool:
        """Whether a connection receives combined-stream wrappers."""
        return self._subs[client].combined

    def publish(self, ev: MarketEvent, spec: SymbolSpec) -> None:
        """Fan one market event out as trade, depth and bookTicker frames."""
        names = self._names.get(ev.symbol) or self._names.setdefault(
            ev.symbol, StreamNames.of(ev.symbol)
        )
        rc = self._refcount
        if ev.trades and rc[names.trade] > 0:
            for fill in ev.trades:
                self.send(names.trade, encode_trade(ev, fill, spec))
        if ev.trades and rc[names.agg_trade] > 0:
            for fill in ev.trades:
                self.send(names.agg_trade, encode_agg_trade(ev, fill, spec))
        self._publish_depth(names.depth, ev, spec)
        if ev.top is not None and rc[names.book_ticker] > 0:
            self.send(names.book_ticker, encode_book_ticker(ev, spec))

    def _publish_depth(
        self, depth_names: tuple[str, ...], ev: MarketEvent, spec: SymbolSpec
    ) -> None:
        wanted = [n for n in depth_names if self._refcount[n] > 0]
        if not wanted:
            return
        if self.batch_depth:
            for name in wanted:
                pending = self._pending.get(name)
                if pending is None:
                    interval = DEPTH_INTERVAL_MS[name.partition("@")[2]]
                    pending = self.pending_type(spec, ev.symbol, interval, ev.first_id)
                    self._pending[name] = pending
                pending.merge(ev)
            return
        if self._dropping():
            return
        data = self.encode_one(ev, spec)
        for name in wanted:
            self.send(name, data)

    def encode_one(self, ev: MarketEvent, spec: SymbolSpec) -> bytes:
        """The depth message of one event (``batch_depth=False``)."""
        return encode_depth(ev, spec)

    def _dropping(self) -> bool:
        if self.drop_depth_remaining > 0:
            self.drop_depth_remaining -= 1
            self.depth_dropped += 1
            return True
        return False

    def flush_all(self) -> None:
        """Send every pending depth message now (100 ms and 1 s streams alike)."""
        for interval in set(DEPTH_INTERVAL_MS.values()):
            self.flush_depth(interval)

    def flush_depth(self, interval_ms: int) -> int:
        """Send the batched messages of every depth stream of ``interval_ms``; returns how
        many were sent (a fault may drop some)."""
        due = [n for n, p in self._pending.items() if p.interval_ms == interval_ms]
        sent = 0
        for name in due:
            pending = self._pending.pop(name)
            if self._refcount[name] > 0 and not self._dropping():
                self.send(name, pending.encode())
                sent += 1
        return sent

    def kline_streams(self) -> list[str]:
        """The ``<symbol>@kline_<interval>`` streams someone subscribes to."""
        return [n for n, c in self._refcount.items() if c > 0 and "@kline_" in n]

    def wants(self, stream: str) -> bool:
        """Whether any connection subscribes to ``stream``."""
        return self._refcount[stream] > 0

    def send(self, stream: str, data: bytes, combined: bytes | None = None) -> None:
        """Send one payload on ``stream`` to every subscriber (wrapping for combined ones)."""
        self.frames_published += 1
        for client, sub in self._subs.items():
            if stream in sub.streams:
                if sub.combined:
                    if combined is None:
                        combined = b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"
                    client.push(combined)
                else:
                    client.push(data)

    def broadcast(self, frame: bytes) -> int:
        """Send one frame, unwrapped, to every connection; returns how many queued it."""
        return sum(client.push(frame) for client in list(self._subs))

    async def handle_text(self, client: WsClient, text: str) -> None:
        """Answer a live method message (SUBSCRIBE and friends)."""
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            client.push(_error(3, f"Invalid JSON: {exc}", None))
            return
        if not isinstance(msg, dict):
            client.push(_error(2, "Invalid request: expected a JSON object", None))
            return
        client.push(self._answer(client, msg))

    def _answer(self, client: WsClient, msg: dict[str, Any]) -> bytes:
        req_id, method, params = msg.get("id"), msg.get("method"), msg.get("params", [])
        if not isinstance(params, list):
            return _error(2, "Invalid request: 'params' must be an array", req_id)
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [p for p in params if not valid_stream_name(p)]
            if bad:
                return _error(2, f"Invalid request: invalid stream name {bad[0]!r}", req_id)
            if method == "SUBSCRIBE":
                if len(self._subs[client].streams | set(params)) > MAX_STREAMS:
                    return _error(2, f"Invalid request: more than {MAX_STREAMS} streams", req_id)
                self.subscribe(client, params)
            else:
                self.unsubscribe(client, params)
            return orjson.dumps({"result": None, "id": req_id})
        if method == "LIST_SUBSCRIPTIONS":
            return orjson.dumps({"result": self.streams_of(client), "id": req_id})
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(client, method, params, req_id)
        return _error(2, f"Invalid request: unknown method {method!r}", req_id)

    def _property(self, client: WsClient, method: str, params: list[Any], req_id: Any) -> bytes:
        if not params or params[0] != "combined":
            return _error(0, "Unknown property", req_id)
        if method == "GET_PROPERTY":
            return orjson.dumps({"result": self.is_combined(client), "id": req_id})
        if len(params) != 2 or not isinstance(params[1], bool):
            return _error(1, "Invalid value type: expected Boolean", req_id)
        self.set_combined(client, params[1])
        return orjson.dumps({"result": None, "id": req_id})


def valid_stream_name(name: object) -> bool:
    """``<lower-case symbol>@<kind>``; unknown symbols are allowed (they stay silent)."""
    if not isinstance(name, str):
        return False
    symbol, at, kind = name.partition("@")
    return bool(at and kind and symbol.isalnum() and symbol == symbol.lower())


def _error(code: int, msg: str, req_id: Any) -> bytes:
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": req_id})
