"""Cancel and replace requests through the trading worker (risk + paper execution) on the
real broker, as a real process: a resting LIMIT is replaced (the old one CANCELLED, the
new one ACCEPTED under the request's id), the replacement cancelled, each approved by
the gate; a second cancel of it comes back on ``orders.rejected`` as ORDER_NOT_OPEN."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from algostream.model import OrderEvent, OrderRejected, OrderRequest, OrderStatus, OrderType
from algostream.model.enums import OrderAction
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import has_event, mentions, proposal, trading_worker_approving


def limit(n: int, price: str, prefix: str, **kw: Any) -> OrderRequest:
    return proposal(n, prefix=prefix).model_copy(
        update={"order_type": OrderType.LIMIT, "limit_price": Decimal(price)} | kw
    )


async def test_replace_then_cancel_through_the_trading_worker(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    worker, n, _ = await trading_worker_approving(
        s, supervisor, lambda n: limit(n, "99.50", "cr"), "cr"
    )
    coid = f"cr-{n}"
    await read_until(s, "orders.events", has_event(coid, OrderStatus.ACCEPTED), 60)

    new = f"rp-{n}"
    replace = limit(1000 + n, "99.80", "rp", quantity=Decimal("0.3"),
                    action=OrderAction.REPLACE, target_id=coid)  # fmt: skip
    replace = replace.model_copy(update={"client_order_id": new})
    await produce(s, "orders.proposed", [replace])
    await read_until(s, "orders.events", has_event(new, OrderStatus.ACCEPTED), 60)

    gone = f"cx-{n}"
    cancel = limit(2000 + n, "99.80", "cx", quantity=Decimal("0.3"),
                   action=OrderAction.CANCEL, target_id=new)  # fmt: skip
    await produce(s, "orders.proposed", [cancel.model_copy(update={"client_order_id": gone})])
    msgs = await read_until(s, "orders.events", has_event(new, OrderStatus.CANCELLED), 60)
    mine = [e for e in decoded(msgs, OrderEvent) if e.client_order_id in (coid, new)]  # type: ignore[attr-defined]
    seen = [(e.client_order_id, e.status, e.limit_price, e.quantity) for e in mine]  # type: ignore[attr-defined]
    assert seen == [
        (coid, OrderStatus.ACCEPTED, Decimal("99.50"), Decimal("0.5")),
        (coid, OrderStatus.CANCELLED, Decimal("99.50"), Decimal("0.5")),
        (new, OrderStatus.ACCEPTED, Decimal("99.80"), Decimal("0.3")),
        (new, OrderStatus.CANCELLED, Decimal("99.80"), Decimal("0.3")),
    ], seen
    assert mine[1].reason == f"replaced by {new}"  # type: ignore[attr-defined]
    assert mine[3].reason == f"cancelled by request {gone}"  # type: ignore[attr-defined]

    again = f"cy-{n}"
    late = limit(3000 + n, "99.80", "cy", action=OrderAction.CANCEL, target_id=new)
    await produce(s, "orders.proposed", [late.model_copy(update={"client_order_id": again})])
    no = await read_until(s, "orders.rejected", mentions(again), 60)
    [refused] = [r for r in decoded(no, OrderRejected) if r.client_order_id == again]  # type: ignore[attr-defined]
    assert refused.reason == "ORDER_NOT_OPEN" and repr(new) in refused.message  # type: ignore[attr-defined]
    assert worker.alive, supervisor.tail("trading")
