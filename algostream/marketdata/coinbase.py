"""Coinbase Advanced Trade market data: subscribe messages and message parsing.

Every channel message is ``{"channel", "client_id", "timestamp", "sequence_num",
"events"}``. ``l2_data`` events (``snapshot`` / ``update``) carry ``updates`` with
``side`` (``bid``/``offer``), ``price_level`` and ``new_quantity`` (absolute, ``"0"``
removes); they become :class:`BookUpdate` records whose first and final update ids are
the message's ``sequence_num``. ``sequence_num`` counts messages per *connection*, so a
gap is checked by :class:`~algostream.marketdata.sync.CoinbaseSequenceTracker`.

The ``side`` of a ``market_trades`` trade is read as the aggressor (taker) side, as the
bundled simulator sends it; third-party clients disagree on whether the real feed reports
the maker side, so ``trade_side="maker"`` flips it.

>>> f = parse_message('{"channel":"l2_data","timestamp":"2023-02-09T20:32:50.714964855Z",'
...     '"sequence_num":3,"events":[{"type":"update","product_id":"BTC-USD","updates":'
...     '[{"side":"offer","event_time":"2023-02-09T20:32:50.7Z","price_level":"21921.73",'
...     '"new_quantity":"0.06317902"}]}]}', recv_ns=1)
>>> f.book[0].instrument, f.book[0].asks, f.sequence_num
('COINBASE:BTC-USD', ((Decimal('21921.73'), Decimal('0.06317902')),), 3)
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Literal

import orjson

from algostream.marketdata.errors import FrameError, short_repr
from algostream.marketdata.frames import (
    FrameKind,
    ParsedFrame,
    as_decimal,
    as_int,
    as_list,
    as_obj,
    as_str,
    build,
    decode_frame,
    instrument_for,
    raw_frame,
    req,
    rfc3339_to_ns,
)
from algostream.model.enums import BookUpdateKind, Side
from algostream.model.ids import derive_id
from algostream.model.records import BookUpdate, TradeTick

VENUE = "COINBASE"
CHANNELS = ("level2", "market_trades", "heartbeats")
TradeSide = Literal["taker", "maker"]
_Level = tuple[Decimal, Decimal]


def subscribe_message(
    channel: str,
    product_ids: Iterable[str],
    *,
    jwt: str | None = None,
    unsubscribe: bool = False,
) -> str:
    """``{"type":"subscribe","product_ids":[...],"channel":...}`` (one channel per message)."""
    if channel not in (*CHANNELS, "ticker", "status", "candles"):
        raise ValueError(f"channel={channel!r}: expected one of {', '.join(CHANNELS)}")
    msg: dict[str, Any] = {
        "type": "unsubscribe" if unsubscribe else "subscribe",
        "product_ids": [p.upper() for p in product_ids],
        "channel": channel,
    }
    if not msg["product_ids"] and channel != "heartbeats":
        raise ValueError(f"channel {channel!r}: name at least one product id, e.g. BTC-USD")
    if jwt is not None:
        msg["jwt"] = jwt
    return orjson.dumps(msg).decode()


def subscribe_messages(
    product_ids: Iterable[str], channels: Iterable[str] = CHANNELS, *, jwt: str | None = None
) -> list[str]:
    """One subscribe message per channel (heartbeats keep quiet connections open)."""
    products = list(product_ids)
    return [subscribe_message(ch, products, jwt=jwt) for ch in channels]


def parse_message(
    raw: str | bytes,
    recv_ns: int,
    venue: str = VENUE,
    *,
    trade_side: TradeSide = "taker",
    include_trade_snapshot: bool = False,
    epoch: int = 0,
) -> ParsedFrame:
    """Parse one Coinbase WebSocket message into records (see the module docstring).

    ``market_trades`` snapshots (recent *past* trades sent on subscribe) are skipped unless
    ``include_trade_snapshot``: after a reconnect they would repeat trades already seen.

    ``epoch`` names the connection (the ingestor's time of connecting, ns): it is part of a
    book update's ``record_id``, since ``sequence_num`` restarts with every connection (the
    same message parsed again on its connection keeps its id). A trade's id is made of its
    ``trade_id`` and time, the same on every connection that carries it.
    """
    text, obj = decode_frame(raw)
    obj = as_obj(obj, "<frame>")
    if obj.get("type") == "error":
        return ParsedFrame(
            raw=raw_frame(text, recv_ns, venue, "error", f"{venue}:*"),
            kind=FrameKind.ERROR,
            message=str(obj.get("message", "")),
        )
    channel = as_str(req(obj, "channel", "<frame>"), "channel")
    seq = as_int(req(obj, "sequence_num", "<frame>"), "sequence_num")
    events = as_list(req(obj, "events", "<frame>"), "events")
    ts = rfc3339_to_ns(req(obj, "timestamp", "<frame>"), "timestamp")
    frame = ParsedFrame(
        raw=raw_frame(text, recv_ns, venue, channel, f"{venue}:*"),
        channel=channel,
        sequence_num=seq,
    )
    if channel == "l2_data":
        for i, ev in enumerate(events):
            frame.book.append(
                _l2_event(
                    as_obj(ev, f"events[{i}]"),
                    i,
                    (epoch, seq, ts),
                    recv_ns,
                    venue,
                    frame.raw.record_id,
                )
            )
    elif channel == "market_trades":
        for i, ev in enumerate(events):
            frame.trades += _trades_event(
                as_obj(ev, f"events[{i}]"),
                f"events[{i}]",
                recv_ns,
                venue,
                frame.raw.record_id,
                trade_side,
                include_trade_snapshot,
            )
    elif channel == "heartbeats":
        frame.kind = FrameKind.HEARTBEAT
    elif channel == "subscriptions":
        frame.kind = FrameKind.ACK
        frame.subscriptions = _subscriptions(events)
    else:
        raise FrameError(
            "channel",
            short_repr(channel),
            "unknown channel; known: l2_data, market_trades, heartbeats, subscriptions",
        )
    instruments = {r.instrument for r in (*frame.book, *frame.trades)}
    if len(instruments) == 1:
        frame.raw = frame.raw.model_copy(update={"instrument": instruments.pop()})
    return frame


def _l2_event(
    ev: dict[str, Any],
    i: int,
    at: tuple[int, int, int],
    recv_ns: int,
    venue: str,
    lineage: str,
) -> BookUpdate:
    """One ``l2_data`` event; ``at``: the connection's epoch, ``sequence_num``, timestamp."""
    epoch, seq, ts = at
    path = f"events[{i}]"
    kind_text = req(ev, "type", path)
    if kind_text not in ("snapshot", "update"):
        raise FrameError(f"{path}.type", short_repr(kind_text), "expected snapshot or update")
    kind = BookUpdateKind.SNAPSHOT if kind_text == "snapshot" else BookUpdateKind.DELTA
    inst = instrument_for(venue, req(ev, "product_id", path), f"{path}.product_id")
    bids: list[_Level] = []
    asks: list[_Level] = []
    for j, up in enumerate(as_list(req(ev, "updates", path), f"{path}.updates")):
        p = f"{path}.updates[{j}]"
        up = as_obj(up, p)
        side = req(up, "side", p)
        level = (
            as_decimal(req(up, "price_level", p), f"{p}.price_level", positive=True),
            as_decimal(req(up, "new_quantity", p), f"{p}.new_quantity", positive=False),
        )
        if side == "bid":
            bids.append(level)
        elif side == "offer":
            asks.append(level)
        else:
            raise FrameError(f"{p}.side", short_repr(side), "expected 'bid' or 'offer'")
    return build(
        BookUpdate,
        instrument=inst,
        ts_event=ts,
        ts_init=recv_ns,
        # sequence_num restarts on every connection: the connection's epoch (and the
        # timestamp, for a parse without one) keep ids distinct
        record_id=derive_id("book", inst, kind.value, epoch, seq, i, ts),
        lineage_id=lineage,
        kind=kind,
        bids=tuple(bids),
        asks=tuple(asks),
        first_update_id=seq,
        final_update_id=seq,
    )


def _trades_event(
    ev: dict[str, Any],
    path: str,
    recv_ns: int,
    venue: str,
    lineage: str,
    trade_side: TradeSide,
    include_snapshot: bool,
) -> list[TradeTick]:
    kind = req(ev, "type", path)
    if kind not in ("snapshot", "update"):
        raise FrameError(f"{path}.type", short_repr(kind), "expected snapshot or update")
    trades = as_list(req(ev, "trades", path), f"{path}.trades")
    if kind == "snapshot" and not include_snapshot:
        return []
    out = []
    for j, tr in enumerate(trades):
        p = f"{path}.trades[{j}]"
        tr = as_obj(tr, p)
        inst = instrument_for(venue, req(tr, "product_id", p), f"{p}.product_id")
        trade_id = as_str(req(tr, "trade_id", p), f"{p}.trade_id")
        side_text = req(tr, "side", p)
        if side_text not in ("BUY", "SELL"):
            raise FrameError(f"{p}.side", short_repr(side_text), "expected 'BUY' or 'SELL'")
        side = Side(side_text) if trade_side == "taker" else Side(side_text).opposite()
        out.append(
            build(
                TradeTick,
                instrument=inst,
                ts_event=(at := rfc3339_to_ns(req(tr, "time", p), f"{p}.time")),
                ts_init=recv_ns,
                # trade ids of a venue that starts over (the simulator) repeat: with the time
                record_id=derive_id("trade", inst, trade_id, at),
                lineage_id=lineage,
                trade_id=trade_id,
                price=as_decimal(req(tr, "price", p), f"{p}.price", positive=True),
                size=as_decimal(req(tr, "size", p), f"{p}.size", positive=False),
                aggressor_side=side,
            )
        )
    return out


def _subscriptions(events: list[Any]) -> dict[str, list[str]]:
    subs: dict[str, list[str]] = {}
    for i, ev in enumerate(events):
        state = as_obj(
            req(as_obj(ev, f"events[{i}]"), "subscriptions", f"events[{i}]"),
            f"events[{i}].subscriptions",
        )
        for channel, products in state.items():
            subs[channel] = [
                str(p) for p in as_list(products, f"events[{i}].subscriptions.{channel}")
            ]
    return subs
