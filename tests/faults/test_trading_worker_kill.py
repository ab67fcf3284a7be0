"""kill -9 the trading worker mid-stream and restart it (real broker, real processes).

Promises: every proposal is decided, no client order id is approved with two different
decisions, no order is executed twice, and the restarted worker's position equals the sum
of the fills on ``orders.events``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal

from algostream.model import (
    BookTop,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    Position,
    Side,
)
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import book_top
from tests.trading_kit import proposal as make_proposal

INSTRUMENT = "BINANCE:BTCUSDT"
N = 120


def top(n: int) -> BookTop:
    return book_top(n, depth="50")


def proposal(n: int) -> OrderRequest:
    return make_proposal(n, side=Side.BUY if n % 3 else Side.SELL, quantity="0.01", prefix="k")


def decisions(msgs_a, msgs_r) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    out: dict[str, set[str]] = defaultdict(set)
    for rec in decoded(msgs_a, OrderRequest):
        out[rec.client_order_id].add(rec.record_id)  # type: ignore[attr-defined]
    for rec in decoded(msgs_r, OrderRejected):
        out[rec.client_order_id].add(rec.record_id)  # type: ignore[attr-defined]
    return out


async def test_kill_9_mid_stream_no_double_approval_or_fill(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    args = ("worker", "trading", "--web-port", "0", "--metrics-port", "0")
    supervisor.start("trading", *args)
    await produce(s, "book.top", [top(0)])
    # warm up: wait for the first approval, so the kill lands mid-stream
    n = 0
    while True:
        n += 1
        await produce(s, "orders.proposed", [proposal(n)])
        if await read_until(s, "orders.approved", lambda m: len(m) >= 1, timeout_s=2):
            break
        assert n < 60, supervisor.tail("trading")
    for i in range(n + 1, N // 2):
        await produce(s, "orders.proposed", [proposal(i)])
    supervisor.kill("trading")  # SIGKILL: no shutdown hooks, no final commit
    for i in range(N // 2, N + 1):
        await produce(s, "orders.proposed", [proposal(i)])
    supervisor.start("trading", *args)

    def all_decided(_: object) -> bool:
        return False

    deadline = time.monotonic() + 120
    decided: dict[str, set[str]] = {}
    approved = []
    while time.monotonic() < deadline:
        approved = await read_until(s, "orders.approved", all_decided, timeout_s=1)
        rejected = await read_until(s, "orders.rejected", all_decided, timeout_s=1)
        decided = decisions(approved, rejected)
        if len(decided) == N:
            break
    assert len(decided) == N, (len(decided), supervisor.tail("trading"))
    assert all(len(ids) == 1 for ids in decided.values()), "an order got two decisions"

    approved_ids = {r.client_order_id for r in decoded(approved, OrderRequest)}  # type: ignore[attr-defined]

    def fills_complete(msgs) -> bool:  # type: ignore[no-untyped-def]
        evs = decoded(msgs, OrderEvent)
        return approved_ids <= {e.client_order_id for e in evs if e.fill_qty > 0}  # type: ignore[attr-defined]

    events = decoded(await read_until(s, "orders.events", fills_complete, timeout_s=90), OrderEvent)
    fills: dict[str, list[OrderEvent]] = defaultdict(list)
    for ev in {e.record_id: e for e in events}.values():  # a re-sent record is one event
        if ev.fill_qty > 0:  # type: ignore[attr-defined]
            fills[ev.client_order_id].append(ev)  # type: ignore[attr-defined, arg-type]
    unfilled = approved_ids - set(fills)
    assert not unfilled and set(fills) <= approved_ids, (
        sorted(unfilled),
        [
            (e.client_order_id, e.status.value, e.reason)
            for e in events
            if e.client_order_id in unfilled
        ],  # type: ignore[attr-defined]
        supervisor.tail("trading"),
    )
    assert all(sum(e.fill_qty for e in f) == Decimal("0.01") for f in fills.values()), (
        "an order was executed twice"
    )
    net = sum(e.side.sign * e.fill_qty for f in fills.values() for e in f)

    def position_matches(msgs) -> bool:  # type: ignore[no-untyped-def]
        positions = decoded(msgs, Position)
        return bool(positions) and positions[-1].quantity == net  # type: ignore[attr-defined]

    positions = decoded(await read_until(s, "positions", position_matches, timeout_s=60), Position)
    assert positions[-1].quantity == net  # type: ignore[attr-defined]
    assert supervisor.children["trading"].alive, supervisor.tail("trading")
