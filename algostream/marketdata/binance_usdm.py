"""Binance USDⓈ-M perpetual futures market data: stream names, frames, REST bodies.

Instruments are ``BINANCE_USDM:<SYMBOL>``: a perpetual is not the spot pair of the same
name (``BINANCE:BTCUSDT``), it has its own book, trades and funding. Streams per symbol:
``<s>@aggTrade``, ``<s>@depth@100ms`` and ``<s>@markPrice`` (every 3 s; ``@markPrice@1s``
every second) and ``<s>@forceOrder`` (liquidation orders: :class:`Liquidation`, to
``md.liquidations``). A futures ``depthUpdate`` carries ``pu``, the ``u`` of the previous event
of the stream: the book chains on it (:class:`~algostream.marketdata.usdm_sync.UsdmBookSync`),
not on ``U == previous u + 1`` as spot does. A ``depthUpdate`` without ``pu`` is a spot
frame on a futures connection and is refused, naming the field.

>>> usdm_stream_names(["BTCUSDT"])
['btcusdt@aggTrade', 'btcusdt@depth@100ms', 'btcusdt@markPrice', 'btcusdt@forceOrder']
>>> f = parse_usdm_frame('{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate",'
...     '"E":1562305380000,"s":"BTCUSDT","p":"11794.15","i":"11784.62","P":"11784.25",'
...     '"r":"0.00038167","T":1562306400000}}', recv_ns=5)
>>> f.marks[0].instrument, f.marks[0].funding_rate
('BINANCE_USDM:BTCUSDT', Decimal('0.00038167'))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from algostream.marketdata.binance import (
    InstrumentSpec,
    control_frame,
    depth_delta,
    depth_ids,
    parse_depth_snapshot,
    parse_exchange_info,
    shutdown_frame,
)
from algostream.marketdata.errors import FrameError, short_repr
from algostream.marketdata.frames import (
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
    ms_to_ns,
    raw_frame,
    req,
)
from algostream.model.enums import Side
from algostream.model.ids import derive_id
from algostream.model.records import Liquidation, MarkPrice, TradeTick

VENUE = "BINANCE_USDM"
DEPTH_SNAPSHOT_PATH = "/fapi/v1/depth"
EXCHANGE_INFO_PATH = "/fapi/v1/exchangeInfo"
#: the ``limit`` values ``/fapi/v1/depth`` takes
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


@dataclass(slots=True)
class UsdmFrame:
    """One futures frame parsed: the common :class:`ParsedFrame` (raw, trades, diffs) plus
    each diff's ``pu`` (aligned with ``frame.book``) and mark price updates."""

    frame: ParsedFrame
    prev_final_ids: list[int] = field(default_factory=list)
    marks: list[MarkPrice] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)


# --------------------------------------------------------------------------- stream names


def usdm_stream_names(
    symbols: Iterable[str], *, depth_speed: str = "100ms", mark_price_speed: str = "3s"
) -> list[str]:
    """Combined-stream names per symbol: aggTrade, diff depth, mark price, liquidations.

    ``depth_speed`` is ``"100ms"``, ``"250ms"`` or ``"500ms"``; ``mark_price_speed``
    ``"3s"`` or ``"1s"``.
    """
    if depth_speed not in ("100ms", "250ms", "500ms"):
        raise ValueError(f"depth_speed={depth_speed!r}: expected '100ms', '250ms' or '500ms'")
    if mark_price_speed not in ("3s", "1s"):
        raise ValueError(f"mark_price_speed={mark_price_speed!r}: expected '3s' or '1s'")
    depth = "depth" if depth_speed == "250ms" else f"depth@{depth_speed}"
    mark = "markPrice" if mark_price_speed == "3s" else "markPrice@1s"
    names: list[str] = []
    for symbol in symbols:
        s = symbol.strip().lower()
        if not s.isalnum():
            raise ValueError(f"symbol {symbol!r}: expected letters and digits, e.g. BTCUSDT")
        names += [f"{s}@aggTrade", f"{s}@{depth}", f"{s}@{mark}", f"{s}@forceOrder"]
    return names


def usdm_stream_url(base: str, symbols: Iterable[str], **names: Any) -> str:
    """``<base>/stream?streams=...``: ``wss://fstream.binance.com`` or the simulator's
    ``ws://host:port/fstream``.

    >>> usdm_stream_url("wss://fstream.binance.com", ["ETHUSDT"])
    'wss://fstream.binance.com/stream?streams=ethusdt@aggTrade/ethusdt@depth@100ms/ethusdt@markPrice/ethusdt@forceOrder'
    """
    root = base.rstrip("/")
    if not root.endswith("/stream"):
        root += "/stream"
    streams = usdm_stream_names(symbols, **names)
    if not streams:
        raise ValueError("symbols: name at least one symbol")
    if len(streams) > 1024:
        raise ValueError(f"{len(streams)} streams: Binance allows at most 1024 per connection")
    return f"{root}?streams={'/'.join(streams)}"


def usdm_depth_url(rest_base: str, symbol: str, limit: int = 1000) -> str:
    """``GET /fapi/v1/depth`` for one symbol (limit one of 5, 10, 20, 50, 100, 500, 1000)."""
    if limit not in DEPTH_LIMITS:
        raise ValueError(f"limit={limit}: /fapi/v1/depth takes one of {DEPTH_LIMITS}")
    return f"{rest_base.rstrip('/')}{DEPTH_SNAPSHOT_PATH}?symbol={symbol.upper()}&limit={limit}"


def nearest_depth_limit(wanted: int) -> int:
    """The smallest documented ``limit`` at least ``wanted`` (1000 at most)."""
    return next((n for n in DEPTH_LIMITS if n >= wanted), DEPTH_LIMITS[-1])


# --------------------------------------------------------------------------- frames


def parse_usdm_frame(raw: str | bytes, recv_ns: int, venue: str = VENUE) -> UsdmFrame:
    """Parse one futures WebSocket frame (combined ``{"stream","data"}`` or raw payload).

    ``aggTrade`` → trades, ``depthUpdate`` (with ``pu``) → unsynchronised diffs,
    ``markPriceUpdate`` → :class:`MarkPrice`, ``forceOrder`` → :class:`Liquidation`;
    ``{"result","id"}`` is an ACK, an error reply
    ERROR, ``serverShutdown`` SHUTDOWN. Anything else raises :class:`FrameError`.
    """
    text, obj = decode_frame(raw)
    if type(obj) is not dict:
        raise FrameError("<frame>", short_repr(obj), "expected a JSON object")
    stream, data, path = "", obj, "<frame>"
    if "stream" in obj:
        stream = as_str(obj["stream"], "stream")
        data, path = as_obj(req(obj, "data", "<frame>"), "data"), "data"
    elif "id" in obj and ("result" in obj or "error" in obj):
        return UsdmFrame(control_frame(obj, text, recv_ns, venue))
    event = data.get("e")
    handler = _HANDLERS.get(event) if type(event) is str else None
    if handler is None:
        raise FrameError(
            f"{path}.e",
            short_repr(event),
            f"unknown USD-M futures event type; known: {', '.join(sorted(_HANDLERS))}",
        )
    return handler(data, path, text, recv_ns, venue, stream)


def _agg_trade(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> UsdmFrame:
    inst = instrument_for(venue, req(d, "s", path), f"{path}.s")
    trade_id = str(as_int(req(d, "a", path), f"{path}.a"))
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
        record_id=derive_id("trade", inst, "aggTrade", trade_id, ts),
        lineage_id=raw.record_id,
        trade_id=trade_id,
        price=price,
        size=size,
        aggressor_side=side,
    )
    return UsdmFrame(ParsedFrame(raw=raw, trades=[tick]))


def _depth(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> UsdmFrame:
    inst = instrument_for(venue, req(d, "s", path), f"{path}.s")
    if "pu" not in d:
        raise FrameError(
            f"{path}.pu",
            "<missing>",
            "a USD-M futures depthUpdate carries pu (the previous event's u); without it this "
            "is a spot frame on a futures connection",
        )
    first, final = depth_ids(d, path)
    prev = as_int(d["pu"], f"{path}.pu")
    if prev >= first:
        raise FrameError(f"{path}.pu", str(prev), f"previous final id is not below U={first}")
    frame = depth_delta(d, path, text, recv_ns, venue, stream, inst, first, final)
    return UsdmFrame(frame, prev_final_ids=[prev])


def _mark_price(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> UsdmFrame:
    inst = instrument_for(venue, req(d, "s", path), f"{path}.s")
    ts = ms_to_ns(req(d, "E", path), f"{path}.E")
    settle = d.get("P")
    rate = req(d, "r", path)
    if type(rate) is str and rate.startswith("-"):  # funding may be negative: shorts pay
        funding = -as_decimal(rate[1:], f"{path}.r", positive=False)
    else:
        funding = as_decimal(rate, f"{path}.r", positive=False)
    raw = raw_frame(text, recv_ns, venue, stream, inst)
    mark = build(
        MarkPrice,
        instrument=inst,
        ts_event=ts,
        ts_init=recv_ns,
        record_id=derive_id("mark", inst, ts),
        lineage_id=raw.record_id,
        mark_price=as_decimal(req(d, "p", path), f"{path}.p", positive=True),
        index_price=as_decimal(req(d, "i", path), f"{path}.i", positive=True),
        estimated_settle_price=None
        if settle in (None, "", "0", "0.00000000")
        else as_decimal(settle, f"{path}.P", positive=True),
        funding_rate=funding,
        next_funding_ns=ms_to_ns(req(d, "T", path), f"{path}.T"),
    )
    return UsdmFrame(ParsedFrame(raw=raw), marks=[mark])


def _force_order(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> UsdmFrame:
    o = as_obj(req(d, "o", path), f"{path}.o")
    opath = f"{path}.o"
    inst = instrument_for(venue, req(o, "s", opath), f"{opath}.s")
    side_raw = as_str(req(o, "S", opath), f"{opath}.S")
    if side_raw not in ("BUY", "SELL"):
        raise FrameError(f"{opath}.S", short_repr(side_raw), "expected BUY or SELL")
    ts = ms_to_ns(req(o, "T", opath), f"{opath}.T")
    quantity = as_decimal(req(o, "q", opath), f"{opath}.q", positive=True)
    avg = as_decimal(o.get("ap", "0"), f"{opath}.ap", positive=False)
    raw = raw_frame(text, recv_ns, venue, stream, inst)
    liquidation = build(
        Liquidation,
        instrument=inst,
        ts_event=ts,
        ts_init=recv_ns,
        record_id=derive_id("liquidation", inst, side_raw, quantity, ts),
        lineage_id=raw.record_id,
        side=Side(side_raw),
        quantity=quantity,
        price=as_decimal(req(o, "p", opath), f"{opath}.p", positive=True),
        avg_price=avg if avg > 0 else None,
        last_filled_qty=as_decimal(o.get("l", "0"), f"{opath}.l", positive=False),
        filled_qty=as_decimal(o.get("z", "0"), f"{opath}.z", positive=False),
        status=as_str(req(o, "X", opath), f"{opath}.X"),
    )
    return UsdmFrame(ParsedFrame(raw=raw), liquidations=[liquidation])


def _shutdown(
    d: dict[str, Any], path: str, text: str, recv_ns: int, venue: str, stream: str
) -> UsdmFrame:
    return UsdmFrame(shutdown_frame(d, path, text, recv_ns, venue, stream))


_Handler = Callable[[dict[str, Any], str, str, int, str, str], UsdmFrame]
_HANDLERS: dict[str, _Handler] = {
    "aggTrade": _agg_trade,
    "depthUpdate": _depth,
    "markPriceUpdate": _mark_price,
    "forceOrder": _force_order,
    "serverShutdown": _shutdown,
}


# --------------------------------------------------------------------------- REST bodies


def parse_usdm_depth(
    body: str | bytes, symbol: str, recv_ns: int, venue: str = VENUE
) -> ParsedFrame:
    """A ``GET /fapi/v1/depth`` body → one SNAPSHOT :class:`BookUpdate` (first = final =
    ``lastUpdateId``; ``ts_event`` from ``E`` when present, else the receive time)."""
    return parse_depth_snapshot(
        body, symbol, recv_ns, venue, path=DEPTH_SNAPSHOT_PATH, event_time=True
    )


def require_pu_absent(text: str, path: str = "data.pu") -> None:
    """For the spot feed: refuse a futures ``depthUpdate`` (it has ``pu``) by name."""
    if '"pu":' in text:
        raise FrameError(
            path,
            "<present>",
            "a spot depthUpdate has no pu: this is a USD-M futures frame on a spot connection "
            "(use market_data.exchange = binance_usdm)",
        )


def parse_usdm_exchange_info(body: str | bytes, venue: str = VENUE) -> dict[str, InstrumentSpec]:
    """``GET /fapi/v1/exchangeInfo`` → specs keyed by ``BINANCE_USDM:<SYMBOL>``.

    The futures ``MIN_NOTIONAL`` filter names its value ``notional`` (spot:
    ``minNotional``); otherwise the filters read as spot's."""
    _, obj = decode_frame(body)
    symbols = as_list(req(as_obj(obj, "<body>"), "symbols", "<body>"), "symbols")
    for i, item in enumerate(symbols):
        filters = as_obj(item, f"symbols[{i}]").get("filters")
        for flt in filters if type(filters) is list else []:
            if type(flt) is dict and flt.get("filterType") == "MIN_NOTIONAL" and "notional" in flt:
                flt.setdefault("minNotional", flt["notional"])
    return parse_exchange_info(orjson.dumps(obj), venue)
