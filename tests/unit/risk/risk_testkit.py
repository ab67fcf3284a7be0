"""Record builders shared by the risk tests (not tests themselves)."""

from __future__ import annotations

from decimal import Decimal

from algostream.model import (
    BookIntegrity,
    BookTop,
    ControlAction,
    ControlCommand,
    IntegrityKind,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
)

BTC = "BINANCE:BTCUSDT"
ETH = "BINANCE:ETHUSDT"
SOL = "BINANCE:SOLUSDT"
ACCOUNT = "paper"
SECOND = 1_000_000_000


def D(text: str | int) -> Decimal:
    return Decimal(str(text))


def top(
    instrument: str = BTC,
    bid: str | None = "99",
    ask: str | None = "101",
    ts: int = 1,
    rid: str | None = None,
) -> BookTop:
    """A BookTop with mid = (bid + ask) / 2 computed here from the literal inputs."""
    b = None if bid is None else D(bid)
    a = None if ask is None else D(ask)
    mid = (b + a) / 2 if b is not None and a is not None else None
    return BookTop(
        instrument=instrument,
        ts_event=ts,
        ts_init=ts + 1,
        record_id=rid or f"top-{instrument}-{ts}",
        lineage_id="upd",
        bids=((b, D(1)),) if b is not None else (),
        asks=((a, D(1)),) if a is not None else (),
        best_bid=b,
        best_ask=a,
        mid=mid,
        update_id=ts,
    )


def order(
    coid: str = "c1",
    side: Side = Side.BUY,
    qty: str = "1",
    price: str | None = None,
    instrument: str = BTC,
    ts: int = 10,
    rid: str | None = None,
    reduce_only: bool = False,
) -> OrderRequest:
    return OrderRequest(
        instrument=instrument,
        ts_event=ts,
        ts_init=ts + 1,
        record_id=rid or f"prop-{coid}",
        lineage_id="sig",
        account=ACCOUNT,
        client_order_id=coid,
        strategy="test",
        side=side,
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(qty),
        limit_price=None if price is None else D(price),
        reduce_only=reduce_only,
    )


def fill(
    rid: str,
    side: Side,
    qty: str,
    price: str,
    fee: str = "0",
    instrument: str = BTC,
    coid: str = "c1",
    ts: int = 20,
    status: OrderStatus = OrderStatus.FILLED,
    order_qty: str | None = None,
    cum_qty: str | None = None,
) -> OrderEvent:
    return OrderEvent(
        instrument=instrument,
        ts_event=ts,
        ts_init=ts + 1,
        record_id=rid,
        lineage_id="approved",
        account=ACCOUNT,
        client_order_id=coid,
        status=status,
        side=side,
        order_type=OrderType.MARKET,
        quantity=D(order_qty or qty),
        fill_price=D(price),
        fill_qty=D(qty),
        cum_qty=D(cum_qty or qty),
        fee=D(fee),
    )


def status_event(
    rid: str,
    coid: str,
    status: OrderStatus,
    side: Side = Side.SELL,
    qty: str = "1",
    instrument: str = BTC,
    ts: int = 30,
) -> OrderEvent:
    return OrderEvent(
        instrument=instrument,
        ts_event=ts,
        ts_init=ts + 1,
        record_id=rid,
        lineage_id="approved",
        account=ACCOUNT,
        client_order_id=coid,
        status=status,
        side=side,
        order_type=OrderType.MARKET,
        quantity=D(qty),
    )


def integrity(kind: IntegrityKind, instrument: str = BTC, ts: int = 5) -> BookIntegrity:
    return BookIntegrity(
        instrument=instrument,
        ts_event=ts,
        ts_init=ts + 1,
        record_id=f"int-{kind.value}-{ts}",
        lineage_id="upd",
        kind=kind,
    )


def control(action: ControlAction, instrument: str = "ALL:*", ts: int = 7) -> ControlCommand:
    return ControlCommand(
        instrument=instrument,
        ts_event=ts,
        ts_init=ts + 1,
        record_id=f"ctl-{action.value}-{instrument}-{ts}",
        lineage_id="operator",
        action=action,
        actor="alice",
        reason="test",
    )
