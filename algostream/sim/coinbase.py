"""Coinbase Advanced Trade market data on ``/coinbase``: ``level2``, ``market_trades``,
``ticker``, ``heartbeats``.

A client sends ``{"type": "subscribe", "product_ids": ["BTC-USDT"], "channel": "level2"}``
and receives a ``subscriptions`` message, then an ``l2_data`` message with a ``snapshot``
event, then ``update`` events. Every channel message carries ``channel``, ``client_id``,
``timestamp`` (RFC 3339, ns), ``sequence_num`` (per connection, +1 per message) and
``events``. ``market_trades`` starts with a ``snapshot`` of up to 50 recent trades (newest
first) and its trade ``side`` is the aggressor's side. ``error`` replies carry no
``sequence_num``. A dropped message (fault) still consumes a sequence number, so the gap
is visible as on the real feed. A removed level's ``new_quantity`` is ``"0"``.
``market_trades`` updates are batched: the trades of each 250 ms go out in one message
(:meth:`CoinbaseHub.flush_trades`, called by the exchange's timer; with
``batch_trades=False`` each event's trades go out at once). ``ticker`` sends a snapshot,
then an update on every trade (price, best bid/ask, running since-start volume, low and
high standing in for the 24 h figures). ``heartbeats`` carry Coinbase's
``current_time`` (``2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105``) and a
string ``heartbeat_counter``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from algostream.sim.hub import WsClient
from algostream.sim.market import LevelChange, MarketEvent, SimMarket, TradeFill
from algostream.sim.spec import SymbolSpec

CHANNELS = ("level2", "market_trades", "ticker", "heartbeats")
_CHANNEL_OUT = {
    "level2": "l2_data",
    "market_trades": "market_trades",
    "ticker": "ticker",
    "heartbeats": "heartbeats",
}
TRADES_INTERVAL_MS = 250


@dataclass
class _Stats:
    """Running price statistics of one product (since the simulator started)."""

    open: int = 0
    low: int = 0
    high: int = 0
    volume: int = 0

    def add(self, fill: TradeFill) -> None:
        if not self.open:
            self.open = self.low = self.high = fill.price
        self.low, self.high = min(self.low, fill.price), max(self.high, fill.price)
        self.volume += fill.qty


_last_second: list[Any] = [None, ""]


def rfc3339_ns(ns: int) -> str:
    """``2023-02-09T20:32:50.714964855Z`` from integer nanoseconds since the epoch."""
    sec, frac = divmod(ns, 1_000_000_000)
    if _last_second[0] != sec:
        _last_second[0] = sec
        _last_second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_last_second[1]}.{frac:09d}Z"


@dataclass
class _CbSub:
    seq: int = 0
    heartbeat_counter: int = 0
    channels: dict[str, set[str]] = field(default_factory=dict)


class CoinbaseHub:
    """The connected Coinbase clients: subscriptions, sequence numbers and fan-out."""

    def __init__(self, market: SimMarket | None, batch_trades: bool = True) -> None:
        self._market = market
        self.batch_trades = batch_trades
        self._pending_trades: dict[str, list[dict[str, str]]] = {}
        self._stats: dict[str, _Stats] = {}
        self._started = time.monotonic()
        self._subs: dict[WsClient, _CbSub] = {}
        self._products: dict[str, str] = {}
        if market is not None:
            self._products = {market.spec(s).coinbase_product: s for s in market.symbols}
        self.drop_l2_remaining = 0
        self.l2_dropped = 0

    @property
    def clients(self) -> list[WsClient]:
        """The open connections."""
        return list(self._subs)

    def add(self, client: WsClient) -> None:
        """Register a connection."""
        self._subs[client] = _CbSub()

    def remove(self, client: WsClient) -> None:
        """Forget a closed connection."""
        self._subs.pop(client, None)

    def _emit(self, client: WsClient, sub: _CbSub, channel: str, events: bytes, ts: str) -> None:
        client.push(
            b'{"channel":"'
            + channel.encode()
            + b'","client_id":"","timestamp":"'
            + ts.encode()
            + b'","sequence_num":'
            + str(sub.seq).encode()
            + b',"events":'
            + events
            + b"}"
        )
        sub.seq += 1

    async def handle_text(self, client: WsClient, text: str, now_ns: int) -> None:
        """Answer a subscribe / unsubscribe request."""
        sub = self._subs[client]
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            client.push(_error(f"malformed JSON: {text[:80]!r}"))
            return
        problem = self._validate(msg)
        if problem:
            client.push(_error(problem))
            return
        channel, products = msg["channel"], list(msg.get("product_ids") or [])
        ts = rfc3339_ns(now_ns)
        if msg["type"] == "unsubscribe":
            self._unsubscribe(sub, channel, products)
            self._emit_subscriptions(client, sub, ts)
            return
        fresh = [p for p in products if p not in sub.channels.get(channel, set())]
        sub.channels.setdefault(channel, set()).update(products)
        self._emit_subscriptions(client, sub, ts)
        for product in fresh:
            self._emit_snapshot(client, sub, channel, product, ts)

    def _validate(self, msg: Any) -> str:
        if not isinstance(msg, dict):
            return "request must be a JSON object"
        if msg.get("type") not in ("subscribe", "unsubscribe"):
            return f"type={msg.get('type')!r}: expected 'subscribe' or 'unsubscribe'"
        if msg.get("channel") not in CHANNELS:
            return f"channel={msg.get('channel')!r}: expected one of {', '.join(CHANNELS)}"
        products = msg.get("product_ids") or []
        if not isinstance(products, list):
            return f"product_ids={products!r}: expected a list"
        unknown = [p for p in products if p not in self._products]
        if unknown and msg["channel"] != "heartbeats":
            return f"product_ids: unknown product {unknown[0]!r}; known: {sorted(self._products)}"
        if not products and msg["channel"] != "heartbeats" and msg["type"] == "subscribe":
            return "product_ids=[]: name at least one product"
        return ""

    @staticmethod
    def _unsubscribe(sub: _CbSub, channel: str, products: list[str]) -> None:
        if not products:
            sub.channels.pop(channel, None)
        elif channel in sub.channels:
            sub.channels[channel] -= set(products)

    def _emit_subscriptions(self, client: WsClient, sub: _CbSub, ts: str) -> None:
        state = {ch: sorted(p) for ch, p in sub.channels.items()}
        self._emit(client, sub, "subscriptions", orjson.dumps([{"subscriptions": state}]), ts)

    def _emit_snapshot(
        self, client: WsClient, sub: _CbSub, channel: str, product: str, ts: str
    ) -> None:
        if self._market is None or channel == "heartbeats":
            return
        symbol = self._products[product]
        spec = self._market.spec(symbol)
        if channel == "ticker":
            event: dict[str, Any] = {"type": "snapshot", "tickers": [self._ticker(product)]}
        elif channel == "level2":
            bids, asks = self._market.book_ticks(symbol)
            updates = _updates(spec, bids, asks, ts)
            event = {"type": "snapshot", "product_id": product, "updates": updates}
        else:
            fills = reversed(self._market.recent_trades(symbol))
            event = {"type": "snapshot", "trades": [_trade(spec, product, f) for f in fills]}
        self._emit(client, sub, _CHANNEL_OUT[channel], orjson.dumps([event]), ts)

    def publish(self, ev: MarketEvent, spec: SymbolSpec, now_ns: int) -> None:
        """Fan one market event out as ``l2_data`` and ``market_trades`` updates."""
        product = spec.coinbase_product
        l2 = [(c, s) for c, s in self._subs.items() if product in s.channels.get("level2", ())]
        ts = rfc3339_ns(now_ns)
        if l2:
            if self.drop_l2_remaining > 0:
                self.drop_l2_remaining -= 1
                self.l2_dropped += 1
                for _, sub in l2:
                    sub.seq += 1
            else:
                updates = _updates(spec, ev.bids, ev.asks, ts)
                events = orjson.dumps(
                    [{"type": "update", "product_id": product, "updates": updates}]
                )
                for client, sub in l2:
                    self._emit(client, sub, "l2_data", events, ts)
        if ev.trades:
            stats = self._stats.setdefault(product, _Stats())
            for fill in ev.trades:
                stats.add(fill)
            self._publish_trades(ev, spec, product, ts)
            self._publish_ticker(product, ts)

    def _subscribed(self, channel: str, product: str) -> list[tuple[WsClient, _CbSub]]:
        return [(c, s) for c, s in self._subs.items() if product in s.channels.get(channel, ())]

    def _publish_trades(self, ev: MarketEvent, spec: SymbolSpec, product: str, ts: str) -> None:
        if not self._subscribed("market_trades", product):
            return
        trades = [_trade(spec, product, f) for f in reversed(ev.trades)]  # newest first
        if self.batch_trades:
            pending = self._pending_trades.setdefault(product, [])
            pending[:0] = trades
            return
        self._send_trades(product, trades, ts)

    def _send_trades(self, product: str, trades: list[dict[str, str]], ts: str) -> None:
        events = orjson.dumps([{"type": "update", "trades": trades}])
        for client, sub in self._subscribed("market_trades", product):
            self._emit(client, sub, "market_trades", events, ts)

    def flush_trades(self, now_ns: int) -> None:
        """Send each product's trades batched since the last flush, newest first."""
        pending, self._pending_trades = self._pending_trades, {}
        ts = rfc3339_ns(now_ns)
        for product, trades in pending.items():
            self._send_trades(product, trades, ts)

    def _publish_ticker(self, product: str, ts: str) -> None:
        subs = self._subscribed("ticker", product)
        if not subs:
            return
        events = orjson.dumps([{"type": "update", "tickers": [self._ticker(product)]}])
        for client, sub in subs:
            self._emit(client, sub, "ticker", events, ts)

    def _ticker(self, product: str) -> dict[str, str]:
        assert self._market is not None
        symbol = self._products[product]
        spec = self._market.spec(symbol)
        bids, asks = self._market.book_ticks(symbol)
        stats = self._stats.get(product, _Stats())
        last = self._market.last_trade_price(symbol)
        price = last if last is not None else spec.price(bids[0][0] if bids else 0)
        change = (
            (price - spec.price(stats.open)) / spec.price(stats.open) * 100 if stats.open else 0
        )
        return {
            "type": "ticker",
            "product_id": product,
            "price": str(price),
            "volume_24_h": spec.qty_short(stats.volume),
            "low_24_h": spec.price_short(stats.low),
            "high_24_h": spec.price_short(stats.high),
            "low_52_w": spec.price_short(stats.low),
            "high_52_w": spec.price_short(stats.high),
            "price_percent_chg_24_h": f"{change:.8f}",
            "best_bid": spec.price_short(bids[0][0]) if bids else "0",
            "best_bid_quantity": spec.qty_short(bids[0][1]) if bids else "0",
            "best_ask": spec.price_short(asks[0][0]) if asks else "0",
            "best_ask_quantity": spec.qty_short(asks[0][1]) if asks else "0",
        }

    def heartbeat(self, now_ns: int) -> None:
        """Send one ``heartbeats`` message to every connection subscribed to it."""
        ts = rfc3339_ns(now_ns)
        uptime = time.monotonic() - self._started
        current = ts.replace("T", " ").replace("Z", f" +0000 UTC m=+{uptime:.9f}")
        for client, sub in self._subs.items():
            if "heartbeats" in sub.channels:
                sub.heartbeat_counter += 1
                event = {"current_time": current, "heartbeat_counter": str(sub.heartbeat_counter)}
                self._emit(client, sub, "heartbeats", orjson.dumps([event]), ts)

    def broadcast(self, frame: bytes) -> int:
        """Send one raw frame to every connection (fault injection); returns how many took it."""
        return sum(client.push(frame) for client in list(self._subs))


def _updates(
    spec: SymbolSpec, bids: list[LevelChange], asks: list[LevelChange], ts: str
) -> list[dict[str, str]]:
    out = [
        {
            "side": "bid",
            "event_time": ts,
            "price_level": spec.price_short(p),
            "new_quantity": spec.qty_short(q) if q else "0",
        }
        for p, q in bids
    ]
    out += [
        {
            "side": "offer",
            "event_time": ts,
            "price_level": spec.price_short(p),
            "new_quantity": spec.qty_short(q) if q else "0",
        }
        for p, q in asks
    ]
    return out


def _trade(spec: SymbolSpec, product: str, fill: TradeFill) -> dict[str, str]:
    return {
        "trade_id": str(fill.trade_id),
        "product_id": product,
        "price": spec.price_short(fill.price),
        "size": spec.qty_short(fill.qty),
        "side": "SELL" if fill.buyer_is_maker else "BUY",
        "time": rfc3339_ns(fill.time_ms * 1_000_000),
    }


def _error(message: str) -> bytes:
    return orjson.dumps({"type": "error", "message": message})
