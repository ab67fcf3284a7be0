"""A trading worker paused (``SIGSTOP``) past its session timeout refuses what went old.

The issue this answers: a worker stopped for 30 s logged "Heartbeat session expired" and
then still approved proposals 5.8 to 26.4 s after they were made, on prices that old.
With ``risk.max_order_age_ms`` (default 5 s) every proposal made while the worker was
paused is refused ``ORDER_TOO_OLD`` when it is decided after ``SIGCONT``, and a proposal
made after it is back is approved again.
"""

from __future__ import annotations

import asyncio
import signal
import time

from algostream.kafka.clients import make_admin
from algostream.model import OrderRejected, OrderRequest
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import book_top, decisions, proposal

ARGS = ("worker", "trading", "--web-port", "0", "--metrics-port", "0")
PAUSED = 5


async def group_members(settings, group: str) -> int:  # type: ignore[no-untyped-def]
    admin = make_admin(settings.kafka)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        return sum(len(g[5]) for g in response.groups)  # (error, id, state, ..., members)
    finally:
        await admin.close()


async def until(check, timeout_s: float, why) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.2)


async def test_paused_worker_rejects_its_stale_proposals(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    supervisor.start("trading", *ARGS)
    await produce(s, "book.top", [book_top(0, depth="50")])
    n = 0
    while True:  # the first approval: the worker decides
        n += 1
        await produce(s, "orders.proposed", [proposal(n, quantity="0.01")])
        if await read_until(s, "orders.approved", lambda m: len(m) >= 1, timeout_s=2):
            break
        assert n < 60, supervisor.tail("trading")
    group = f"{s.kafka.app_id}-trading"

    supervisor.signal("trading", signal.SIGSTOP)
    try:
        paused = [proposal(n + i, quantity="0.01") for i in range(1, PAUSED + 1)]
        await produce(s, "orders.proposed", paused)
        # past the session timeout (10 s): the group has dropped the paused member
        await until(
            lambda: _no_members(s, group), 60, lambda: "the paused worker is still a member"
        )
    finally:
        supervisor.signal("trading", signal.SIGCONT)
    await produce(s, "book.top", [book_top(1, depth="50")])
    fresh = proposal(n + PAUSED + 1, quantity="0.01")
    await produce(s, "orders.proposed", [fresh])

    wanted = {p.client_order_id for p in [*paused, fresh]}

    async def all_decided() -> bool:
        approved = await read_until(s, "orders.approved", lambda _: False, timeout_s=0.5)
        rejected = await read_until(s, "orders.rejected", lambda _: False, timeout_s=0.5)
        return wanted <= set(decisions(approved, rejected))

    await until(all_decided, 90, lambda: supervisor.tail("trading"))
    approved = await read_until(s, "orders.approved", lambda _: False, timeout_s=1)
    rejected = await read_until(s, "orders.rejected", lambda _: False, timeout_s=1)
    assert all(len(ids) == 1 for ids in decisions(approved, rejected).values())
    approved_ids = {r.client_order_id for r in decoded(approved, OrderRequest)}  # type: ignore[attr-defined]
    refused = {r.client_order_id: r for r in decoded(rejected, OrderRejected)}  # type: ignore[attr-defined]
    for p in paused:
        assert p.client_order_id not in approved_ids, "a stale proposal was approved"
        rej = refused[p.client_order_id]
        assert rej.reason == "ORDER_TOO_OLD", rej  # type: ignore[attr-defined]
        assert int(rej.value.removesuffix(" ms")) > 5000, rej  # type: ignore[attr-defined]
    assert fresh.client_order_id in approved_ids, (refused.get(fresh.client_order_id),)
    assert supervisor.children["trading"].alive, supervisor.tail("trading")


async def _no_members(settings, group: str) -> bool:  # type: ignore[no-untyped-def]
    return await group_members(settings, group) == 0
