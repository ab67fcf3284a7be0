"""Binance USDⓈ-M user data stream events, pure logic: what each one means to the router.

The stream itself is :class:`~algostream.execution.user_stream.UserDataStream` (the spot
one: listen key, keepalive, reconnect, REST catch-up on each connect), pointed at
``/fapi/v1/listenKey`` and ``{fstream}/ws/<listenKey>``. Its events, as Binance documents
them (field names as in ccxt's ``binanceusdm`` ``handle_order_update`` /
``handle_acount_update``):

* ``ORDER_TRADE_UPDATE``: ``o`` holds the order (``c`` client id, ``X`` status, ``x``
  execution type, ``z`` filled so far, ``ap`` average price) and, for ``x = TRADE``, the
  trade (``t`` id, ``l`` qty, ``L`` price, ``n``/``N`` commission). :func:`as_report`
  turns it into the spot ``executionReport`` keys the router already reads (``Z``, the
  cumulative quote, is ``ap * z``);
* ``ACCOUNT_UPDATE``: balances (``B``: ``wb`` wallet) and positions (``P``: ``pa``
  signed amount, ``ep`` entry price, ``up`` unrealised P&L, ``mt`` margin type, ``ps``
  position side): :func:`parse_account_update`;
* ``listenKeyExpired`` (handled by the stream: a new key), and events this platform does
  not act on (:data:`IGNORED`). Anything else is :class:`UnknownUserEventError`: the
  worker sends it to ``dlq`` naming the type.

>>> ev = {"e": "ORDER_TRADE_UPDATE", "E": 2, "T": 2, "o": {"s": "BTCUSDT", "c": "c1",
...       "x": "TRADE", "X": "FILLED", "i": 7, "l": "0.01", "z": "0.01", "L": "100",
...       "ap": "100", "n": "0.0004", "N": "USDT", "T": 2, "t": 11}}
>>> r = as_report(ev); (r["c"], r["X"], r["Z"], r["t"])
('c1', 'FILLED', '1.00', 11)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from algostream.execution.errors import ExecutionError
from algostream.kafka.dlq import dead_letter
from algostream.model.records import DeadLetter

ORDER_UPDATE = "ORDER_TRADE_UPDATE"
ACCOUNT_UPDATE = "ACCOUNT_UPDATE"
#: USD-M user stream events the platform reads without acting on them
IGNORED = frozenset(
    {
        "MARGIN_CALL",
        "ACCOUNT_CONFIG_UPDATE",
        "TRADE_LITE",
        "STRATEGY_UPDATE",
        "GRID_UPDATE",
        "CONDITIONAL_ORDER_TRIGGER_REJECT",
        "ALGO_UPDATE",
    }
)
#: spot user stream events (``executionReport`` moves orders)
SPOT_EVENTS = frozenset(
    {
        "executionReport",
        "outboundAccountPosition",
        "balanceUpdate",
        "listStatus",
        "externalLockUpdate",
        "eventStreamTerminated",
    }
)
FUTURES_EVENTS = frozenset({ORDER_UPDATE, ACCOUNT_UPDATE, "listenKeyExpired"}) | IGNORED
#: Binance's client order ids of the orders it places itself: liquidation and ADL
VENUE_CLOSE_PREFIXES = ("autoclose-", "adl_autoclose")


class UnknownUserEventError(ExecutionError):
    """A user data stream event of a type this connection does not know."""

    def __init__(self, kind: object, stream: str) -> None:
        self.kind = kind
        super().__init__(f"user data stream event e={kind!r}: unknown on the {stream} stream")


def check_event(event: Mapping[str, Any], *, futures: bool) -> str:
    """The event's type, if this stream (spot or USD-M) knows it; else
    :class:`UnknownUserEventError` (a futures event on spot is one too)."""
    kind = event.get("e")
    known = FUTURES_EVENTS if futures else SPOT_EVENTS | {"listenKeyExpired"}
    if not isinstance(kind, str) or kind not in known:
        raise UnknownUserEventError(kind, "USD-M" if futures else "spot")
    return kind


def _dec(data: Mapping[str, Any], key: str, where: str) -> Decimal:
    raw = data.get(key, "0")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ExecutionError(f"{where} field {key}={raw!r}: not a decimal") from None
    if not value.is_finite():
        raise ExecutionError(f"{where} field {key}={raw!r}: not finite")
    return value


def as_report(event: Mapping[str, Any]) -> dict[str, Any]:
    """An ``ORDER_TRADE_UPDATE`` as the spot ``executionReport`` keys the router reads."""
    o = event.get("o")
    if not isinstance(o, Mapping):
        raise ExecutionError(f"ORDER_TRADE_UPDATE field o={o!r}: not an object")
    filled = _dec(o, "z", "ORDER_TRADE_UPDATE")
    avg = _dec(o, "ap", "ORDER_TRADE_UPDATE")
    return {
        "e": "executionReport",
        "E": event.get("E", 0),
        "T": o.get("T") or event.get("T") or event.get("E", 0),
        "s": o.get("s"),
        "c": str(o["c"]),
        "C": "",
        "x": str(o["x"]),
        "X": str(o["X"]),
        "i": o["i"],
        "l": str(o.get("l", "0")),
        "z": str(filled),
        "L": str(o.get("L", "0")),
        "n": str(o.get("n") or "0"),
        "N": str(o.get("N") or ""),
        "Z": str(avg * filled),
        "t": o.get("t", 0),
        "S": o.get("S"),
        "q": str(o.get("q", "0")),
        "rp": str(o.get("rp", "0")),
    }


@dataclass(frozen=True)
class VenuePosition:
    """One position as the venue reports it (``pa``/``positionAmt`` signed: short < 0)."""

    symbol: str
    qty: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal = Decimal(0)
    margin_type: str = ""
    position_side: str = "BOTH"
    mark_price: Decimal | None = None


@dataclass(frozen=True)
class AccountUpdate:
    """An ``ACCOUNT_UPDATE``: why (``m``), wallet balances by asset, positions."""

    reason: str
    ts_ms: int
    balances: dict[str, Decimal]
    positions: tuple[VenuePosition, ...]


def parse_account_update(event: Mapping[str, Any]) -> AccountUpdate:
    """The balances and positions of an ``ACCOUNT_UPDATE`` (bad fields name themselves)."""
    a = event.get("a")
    if not isinstance(a, Mapping):
        raise ExecutionError(f"ACCOUNT_UPDATE field a={a!r}: not an object")
    where = "ACCOUNT_UPDATE"
    balances = {str(b["a"]): _dec(b, "wb", where) for b in a.get("B", ())}
    positions = tuple(
        VenuePosition(
            symbol=str(p["s"]),
            qty=_dec(p, "pa", where),
            entry_price=_dec(p, "ep", where),
            unrealized_pnl=_dec(p, "up", where),
            margin_type=str(p.get("mt", "")),
            position_side=str(p.get("ps", "BOTH")),
        )
        for p in a.get("P", ())
    )
    return AccountUpdate(str(a.get("m", "")), int(event.get("E", 0)), balances, positions)


def position_from_risk(row: Mapping[str, Any]) -> VenuePosition:
    """One ``GET /fapi/v2/positionRisk`` row (v3 has the same keys)."""
    where = "positionRisk"
    mark = row.get("markPrice")
    return VenuePosition(
        symbol=str(row["symbol"]),
        qty=_dec(row, "positionAmt", where),
        entry_price=_dec(row, "entryPrice", where),
        unrealized_pnl=_dec(row, "unRealizedProfit", where),
        margin_type=str(row.get("marginType", "")),
        position_side=str(row.get("positionSide", "BOTH")),
        mark_price=None if mark is None else _dec(row, "markPrice", where),
    )


def user_event_dead_letter(
    event: Mapping[str, Any], error: BaseException, *, venue: str, now_ns: int
) -> DeadLetter:
    """The ``dlq`` record of a user data stream event the worker cannot act on (its
    source is ``user_stream:<venue>``; the event time ``E`` stands for the offset)."""
    ts_ms = event.get("E")
    offset = ts_ms if isinstance(ts_ms, int) and ts_ms >= 0 else 0
    return dead_letter(
        agent="execution",
        topic=f"user_stream:{venue}",
        partition=0,
        offset=offset,
        key=str(event.get("e")),
        payload=orjson.dumps(event, default=str),
        error=error,
        ts_event=offset * 1_000_000,
        now_ns=now_ns,
    )
