"""kill -9 the trading worker mid-stream and restart it (real broker, real processes).

Promises: every proposal is decided, no client order id is approved with two different
decisions, no order is executed twice, and the restarted worker's position equals the sum
of the fills on ``orders.events``.
"""

from __future__ import annotations

import time

from algostream.model import (
    BookTop,
    OrderRequest,
    Side,
)
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import book_top, decisions, filled_once_and_counted
from tests.trading_kit import proposal as make_proposal

INSTRUMENT = "BINANCE:BTCUSDT"
N = 120


def top(n: int) -> BookTop:
    return book_top(n, depth="50")


def proposal(n: int) -> OrderRequest:
    return make_proposal(n, side=Side.BUY if n % 3 else Side.SELL, quantity="0.01", prefix="k")


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
    await filled_once_and_counted(s, approved_ids, lambda: supervisor.tail("trading"))
    assert supervisor.children["trading"].alive, supervisor.tail("trading")
