"""Binance spot market data: stream names, frame parsing, REST depth / exchangeInfo bodies.

Pure functions: a frame (text or bytes) and its receive time in, records out. Prices and
quantities must be decimal strings; anything malformed raises
:class:`~algostream.marketdata.errors.FrameError` naming the field and the value.

>>> stream_names(["BTCUSDT"])
['btcusdt@trade', 'btcusdt@depth@100ms', 'btcusdt@bookTicker']
>>> f = parse_frame('{"stream":"btcusdt@trade","data":{"e":"trade","E":2,"s":"BTCUSDT",'
...                 '"t":7,"p":"100.5","q":"0.1","T":1,"m":true}}', recv_ns=5)
>>> f.trades[0].instrument, f.trades[0].price, f.trades[0].aggressor_side.value
('BINANCE:BTCUSDT', Decimal('100.5'), 'SELL')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from algostream.marketdata.errors import FrameError, short_repr
from algostream.marketdata.frames import (
    BookTicker,
    FrameKind,
    Kline,
    ParsedFrame,
    as_bool,
    as_decimal,
    as_int,
    as_list,
    as_obj,
    as_str,
    build,
    decode_frame,
    instrument_for,
    levels,
    ms_to_ns,
    raw_frame,
    req,
)
from algostream.model.enums import BookUpdateKind, Side
from algostream.model.ids import derive_id
from algostream.model.records import BookUpdate, TradeTick

VENUE = "BINANCE"
DEPTH_SNAPSHOT_PATH = "/api/v3/depth"


# --------------------------------------------------------------------------- stream names


def stream_names(
    symbols: Iterable[str],
    *,
    trades: str = "trade",
    depth_speed: str = "100ms",
    book_ticker: bool = True,
) -> list[str]:
    """Combined-stream names per symbol (lower case): trades, diff depth, book ticker.

    ``trades`` is ``"trade"`` or ``"aggTrade"``; ``depth_speed`` ``"100ms"`` or ``"1000ms"``.
    """
    if trades not in ("trade", "aggTrade"):
        raise ValueError(f"trades={trades!r}: expected 'trade' or 'aggTrade'")
    if depth_speed not in ("100ms", "1000ms"):
        raise ValueError(f"depth_speed={depth_speed!r}: expected '100ms' or '1000ms'")
    names: list[str] = []
    for symbol in symbols:
        s = symbol.strip().lower()
        if not s.isalnum():
            raise ValueError(f"symbol {symbol!r}: expected letters and digits, e.g. BTCUSDT")
        names += [f"{s}@{trades}", f"{s}@depth@{depth_speed}"]
        if book_ticker:
            names.append(f"{s}@bookTicker")
    return names


def combined_stream_url(base: str, symbols: Iterable[str], **names: Any) -> str:
    """``<base>/stream?streams=a/b/c``; ``base`` may already end in ``/stream``.

    >>> combined_stream_url("wss://stream.binance.com:9443", ["ETHUSDT"], book_ticker=False)
    'wss://stream.binance.com:9443/stream?streams=ethusdt@trade/ethusdt@depth@100ms'
    """
    root = base.rstrip("/")
    if not root.endswith("/stream"):
        root += "/stream"
    streams = stream_names(symbols, **names)
    if not streams:
        raise ValueError("symbols: name at least one symbol")
    if len(streams) > 1024:
        raise ValueError(f"{len(streams)} streams: Binance allows at most 1024 per connection")
    return f"{root}?streams={'/'.join(streams)}"


def subscribe_message(streams: Iterable[str], request_id: int, method: str = "SUBSCRIBE") -> str:
    """A live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` request; the ack is ``{"result":null,"id":...}``."""
    if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
        raise ValueError(f"method={method!r}: expected SUBSCRIBE or UNSUBSCRIBE")
    return orjson.dumps({"method": method, "params": list(streams), "id": request_id}).decode()


def depth_snapshot_url(rest_base: str, symbol: str, limit: int = 1000) -> str:
    """``GET /api/v3/depth`` for one symbol (limit 5..5000)."""
    if not 1 <= limit <= 5000:
        raise ValueError(f"limit={limit}: expected 1..5000")
    return f"{rest_base.rstrip('/')}{DEPTH_SNAPSHOT_PATH}?symbol={symbol.upper()}&limit={limit}"


# --------------------------------------------------------------------------- frames


def parse_frame(raw: str | bytes, recv_ns: int, venue: str = VENUE) -> ParsedFrame:
    """Parse one WebSocket frame (combined ``{"stream","data"}`` or a raw stream payload).

    Market frames yield trades (``trade``/``aggTrade``), book diffs (``depthUpdate``),
    tickers (``bookTicker``) and klines; ``{"result":..,"id":..}`` is an ACK, an error
    reply is ERROR, ``serverShutdown`` (bare, combined or ``{"event":{...}}``) is SHUTDOWN.
    Raises :class:`FrameError` for anything malformed or unknown.
    """
    text, obj = decode_frame(raw)
    if type(obj) is not dict:
        raise FrameError("<frame>", short_repr(obj), "expected a JSON object")
    stream = ""
    data: Any = obj
    if "stream" in obj:
        stream = as_str(obj["stream"], "stream")
        data = as_obj(req(obj, "data", "<frame>"), "data")
        path = "data"
    elif "event" in obj:
        data, path = as_obj(obj["event"], "event"), "event"
    elif "id" in obj and ("result" in obj or "error" in obj):
        return control_frame(obj, text, recv_ns, venue)
    else:
        path = "<frame>"
    event = data.get("e")
    if event is None and (stream.endswith("@bookTicker") or "B" in data):
        event = "bookTicker"
    handler = _HANDLERS.get(event) if type(event) is str else None
    if handler is None:
        raise FrameError(
            f"{path}.e",
            short_repr(event),
            f"unknown event type; known: {', '.join(sorted(_HANDLERS))}",
        )
    return handler(data, path, text, recv_ns, venue, stream)


def control_frame(obj: dict[str, Any], text: str, recv_ns: int, venue: str) -> ParsedFrame:
    """The venue's answer to a request on the socket (subscribe ack or error); the
    futures adapter shares it."""
    ack_id = obj["id"]
    if ack_id is not None and type(ack_id) not in (int, str):
        raise FrameError("id", short_repr(ack_id), "expected an integer or string request id")
    raw = raw_frame(text, recv_ns, venue, "", f"{venue}:*")
    if "error" in obj and obj["error"] is not None:
        err = as_obj(obj["error"], "error")
        return ParsedFrame(
            raw=raw,
            kind=FrameKind.ERROR,
            ack_id=ack_id,
            message=f"{err.get('code')}: {err.get('msg')}",
        )
    return ParsedFrame(raw=raw, kind=FrameKind.ACK, ack_id=ack_id)


def _trade(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> ParsedFrame:
    inst = instrument_for(venue, req(d, "s", path), f"{path}.s")
    kind = d["e"]
    id_key = "a" if kind == "aggTrade" else "t"
    trade_id = str(as_int(req(d, id_key, path), f"{path}.{id_key}"))
    price = as_decimal(req(d, "p", path), f"{path}.p", positive=True)
    size = as_decimal(req(d, "q", path), f"{path}.q", positive=False)
    ts = ms_to_ns(req(d, "T", path), f"{path}.T")
    # m: the buyer is the maker, so the seller crossed the spread
    side = Side.SELL if as_bool(req(d, "m", path), f"{path}.m") else Side.BUY
    raw = raw_frame(text, recv_ns, venue, stream, inst)
    tick = build(
        TradeTick,
        instrument=inst,
        ts_event=ts,
        ts_init=recv_ns,
        # with the trade time: the simulator's trade ids start over with every run
        record_id=derive_id("trade", inst, kind, trade_id, ts),
        lineage_id=raw.record_id,
        trade_id=trade_id,
        price=price,
        size=size,
        aggressor_side=side,
    )
    return ParsedFrame(raw=raw, trades=[tick])


def _depth(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> ParsedFrame:
    inst = instrument_for(venue, req(d, "s", path), f"{path}.s")
    first, final = depth_ids(d, path)
    return depth_delta(d, path, text, recv_ns, venue, stream, inst, first, final)


def depth_ids(d: dict[str, Any], path: str) -> tuple[int, int]:
    """A ``depthUpdate``'s first and final update ids (``U`` <= ``u``), spot or USD-M."""
    first = as_int(req(d, "U", path), f"{path}.U")
    final = as_int(req(d, "u", path), f"{path}.u")
    if final < first:
        raise FrameError(f"{path}.u", str(final), f"final update id is below U={first}")
    return first, final


def depth_delta(
    d: dict[str, Any],
    path: str,
    text: str,
    recv_ns: int,
    venue: str,
    stream: str,
    inst: str,
    first: int,
    final: int,
) -> ParsedFrame:
    """The DELTA :class:`BookUpdate` of a checked ``depthUpdate`` (spot or USD-M)."""
    ts = ms_to_ns(req(d, "E", path), f"{path}.E")
    bids = levels(req(d, "b", path), f"{path}.b")
    asks = levels(req(d, "a", path), f"{path}.a")
    raw = raw_frame(text, recv_ns, venue, stream, inst)
    update = build(
        BookUpdate,
        instrument=inst,
        ts_event=ts,
        ts_init=recv_ns,
        # with the event time: the simulator's update ids start over with every run
        record_id=derive_id("book", inst, "DELTA", first, final, ts),
        lineage_id=raw.record_id,
        kind=BookUpdateKind.DELTA,
        bids=bids,
        asks=asks,
        first_update_id=first,
        final_update_id=final,
    )
    return ParsedFrame(raw=raw, book=[update])


def _book_ticker(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> ParsedFrame:
    inst = instrument_for(venue, req(d, "s", path), f"{path}.s")
    ticker = BookTicker(
        instrument=inst,
        update_id=as_int(req(d, "u", path), f"{path}.u"),
        bid_price=as_decimal(req(d, "b", path), f"{path}.b", positive=True),
        bid_qty=as_decimal(req(d, "B", path), f"{path}.B", positive=False),
        ask_price=as_decimal(req(d, "a", path), f"{path}.a", positive=True),
        ask_qty=as_decimal(req(d, "A", path), f"{path}.A", positive=False),
        ts_init=recv_ns,
    )
    return ParsedFrame(raw=raw_frame(text, recv_ns, venue, stream, inst), tickers=[ticker])


def _kline(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> ParsedFrame:
    inst = instrument_for(venue, req(d, "s", path), f"{path}.s")
    k = as_obj(req(d, "k", path), f"{path}.k")
    p = f"{path}.k"

    def dec(key: str, positive: bool) -> Decimal:
        return as_decimal(req(k, key, p), f"{p}.{key}", positive=positive)

    def num(key: str) -> int:
        value = req(k, key, p)
        # f/L are -1 when the interval has no trade yet
        return -1 if value == -1 and key in ("f", "L") else as_int(value, f"{p}.{key}")

    kline = Kline(
        instrument=inst,
        interval=as_str(req(k, "i", p), f"{p}.i"),
        start_ms=num("t"),
        end_ms=num("T"),
        first_trade_id=num("f"),
        last_trade_id=num("L"),
        open=dec("o", True),
        high=dec("h", True),
        low=dec("l", True),
        close=dec("c", True),
        volume=dec("v", False),
        quote_volume=dec("q", False),
        trades=num("n"),
        closed=as_bool(req(k, "x", p), f"{p}.x"),
        ts_event=ms_to_ns(req(d, "E", path), f"{path}.E"),
    )
    return ParsedFrame(raw=raw_frame(text, recv_ns, venue, stream, inst), klines=[kline])


def shutdown_frame(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> ParsedFrame:
    raw = raw_frame(text, recv_ns, venue, stream, f"{venue}:*")
    return ParsedFrame(
        raw=raw, kind=FrameKind.SHUTDOWN, message=f"serverShutdown at E={d.get('E')}: reconnect now"
    )


_Handler = Callable[[dict[str, Any], str, str, int, str, str], ParsedFrame]
_HANDLERS: dict[str, _Handler] = {
    "trade": _trade,
    "aggTrade": _trade,
    "depthUpdate": _depth,
    "bookTicker": _book_ticker,
    "kline": _kline,
    "serverShutdown": shutdown_frame,
}


# --------------------------------------------------------------------------- REST bodies


def parse_depth_snapshot(
    body: str | bytes,
    symbol: str,
    recv_ns: int,
    venue: str = VENUE,
    *,
    path: str = DEPTH_SNAPSHOT_PATH,
    event_time: bool = False,
) -> ParsedFrame:
    """A ``GET /api/v3/depth`` body (``path``) → one SNAPSHOT :class:`BookUpdate` (first
    = final = ``lastUpdateId``; ``ts_event`` is the receive time: the body carries none;
    ``event_time``: from ``E`` when present, as USD-M's ``/fapi/v1/depth`` gives it)."""
    text, obj = decode_frame(body)
    obj = as_obj(obj, "<body>")
    inst = instrument_for(venue, symbol, "symbol")
    last = as_int(req(obj, "lastUpdateId", "<body>"), "lastUpdateId")
    ts = ms_to_ns(obj["E"], "E") if event_time and "E" in obj else recv_ns
    bids = levels(req(obj, "bids", "<body>"), "bids")
    asks = levels(req(obj, "asks", "<body>"), "asks")
    raw = raw_frame(text, recv_ns, venue, f"rest:{path}", inst)
    snap = build(
        BookUpdate,
        instrument=inst,
        ts_event=ts,
        ts_init=recv_ns,
        # with the receive time (the body has no other): each fetched snapshot is a record
        record_id=derive_id("book", inst, "SNAPSHOT", last, last, recv_ns),
        lineage_id=raw.record_id,
        kind=BookUpdateKind.SNAPSHOT,
        bids=bids,
        asks=asks,
        first_update_id=last,
        final_update_id=last,
    )
    return ParsedFrame(raw=raw, kind=FrameKind.SNAPSHOT, book=[snap])


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Trading rules of one symbol from ``exchangeInfo`` (exact decimals).

    ``min_notional`` comes from ``NOTIONAL`` or the older ``MIN_NOTIONAL`` filter and is
    ``None`` when the symbol has neither.
    """

    instrument: str
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal | None

    def is_valid_price(self, price: Decimal) -> bool:
        """True when ``price`` is positive and a multiple of the tick size."""
        return price > 0 and (self.tick_size == 0 or price % self.tick_size == 0)

    def is_valid_quantity(self, qty: Decimal) -> bool:
        """True when ``qty`` is within [min_qty, max_qty] and a multiple of the step size."""
        in_range = self.min_qty <= qty and (self.max_qty == 0 or qty <= self.max_qty)
        return qty > 0 and in_range and (self.step_size == 0 or qty % self.step_size == 0)


def parse_exchange_info(body: str | bytes, venue: str = VENUE) -> dict[str, InstrumentSpec]:
    """``GET /api/v3/exchangeInfo`` → specs keyed by instrument id."""
    _, obj = decode_frame(body)
    symbols = as_list(req(as_obj(obj, "<body>"), "symbols", "<body>"), "symbols")
    specs: dict[str, InstrumentSpec] = {}
    for i, item in enumerate(symbols):
        spec = _instrument_spec(as_obj(item, f"symbols[{i}]"), f"symbols[{i}]", venue)
        specs[spec.instrument] = spec
    return specs


def _instrument_spec(s: dict[str, Any], path: str, venue: str) -> InstrumentSpec:
    symbol = as_str(req(s, "symbol", path), f"{path}.symbol")
    filters: dict[str, dict[str, Any]] = {}
    for j, f in enumerate(as_list(req(s, "filters", path), f"{path}.filters")):
        flt = as_obj(f, f"{path}.filters[{j}]")
        filters[
            as_str(
                req(flt, "filterType", f"{path}.filters[{j}]"), f"{path}.filters[{j}].filterType"
            )
        ] = flt

    def value(name: str, key: str) -> Decimal:
        flt = filters.get(name)
        if flt is None:
            raise FrameError(
                f"{path}.filters", f"<no {name}>", f"symbol {symbol}: {name} filter is required"
            )
        return as_decimal(req(flt, key, f"{path}.{name}"), f"{path}.{name}.{key}", positive=False)

    notional = None
    for name in ("NOTIONAL", "MIN_NOTIONAL"):
        if name in filters:
            notional = value(name, "minNotional")
            break
    return InstrumentSpec(
        instrument=instrument_for(venue, symbol, f"{path}.symbol"),
        symbol=symbol,
        status=str(s.get("status", "")),
        base_asset=str(s.get("baseAsset", "")),
        quote_asset=str(s.get("quoteAsset", "")),
        tick_size=value("PRICE_FILTER", "tickSize"),
        step_size=value("LOT_SIZE", "stepSize"),
        min_qty=value("LOT_SIZE", "minQty"),
        max_qty=value("LOT_SIZE", "maxQty")
        if "maxQty" in filters.get("LOT_SIZE", {})
        else Decimal(0),
        min_notional=notional,
    )
