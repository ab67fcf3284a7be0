"""A second trading worker is a standby: it takes over the account with the owner's state.

Two trading workers share the trading topics' one partition (Faust gives it to one of
them); both tap ``book.top``. The owner decides half the proposals and is killed
(``kill -9``); the standby, which saw the same tops meanwhile, takes the partition and
decides the rest. Promises: every proposal is decided once, every approved order is filled
once, and the position the survivor reports is the sum of all fills, the dead owner's
included (a standby that had built its risk state before it owned the account carried on
from an empty ledger).
"""

from __future__ import annotations

import asyncio
import time

from algostream.model import OrderRequest
from tests.faults.test_trading_worker_kill import proposal, top
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import decisions, filled_once_and_counted

N = 60
ARGS = ("worker", "trading", "--web-port", "0", "--metrics-port", "0")


async def decided_count(s, n: int, timeout_s: float) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    got: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        approved = await read_until(s, "orders.approved", lambda _: False, timeout_s=1)
        rejected = await read_until(s, "orders.rejected", lambda _: False, timeout_s=1)
        got = decisions(approved, rejected)
        if len(got) >= n:
            break
    return got


def assignments(supervisor, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    """``name``'s log lines of its proposals reader being assigned, oldest first."""
    tail = supervisor.tail(name, 2000).splitlines()
    return [line for line in tail if "reader proposals assigned" in line]


async def test_the_standby_takes_over_with_the_owners_position(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    supervisor.start("a", *ARGS)
    await produce(s, "book.top", [top(0)])
    n = 0
    while True:  # the first approval: the owner is up
        n += 1
        await produce(s, "orders.proposed", [proposal(n)])
        if await read_until(s, "orders.approved", lambda m: len(m) >= 1, timeout_s=2):
            break
        assert n < 60, supervisor.tail("a")
    await produce(s, "orders.proposed", [proposal(i) for i in range(n + 1, N // 2)])
    assert len(await decided_count(s, N // 2 - 1, 60)) == N // 2 - 1, supervisor.tail("a")

    seen_by_a = len(assignments(supervisor, "a"))
    supervisor.start("b", *ARGS)  # joins: a rebalance; one of the two owns the account
    deadline = time.monotonic() + 60
    while len(assignments(supervisor, "a")) <= seen_by_a or not assignments(supervisor, "b"):
        assert time.monotonic() < deadline, (supervisor.tail("a"), supervisor.tail("b"))
        await asyncio.sleep(0.2)
    owners = [n for n in ("a", "b") if '"partitions":[0]' in assignments(supervisor, n)[-1]]
    assert len(owners) == 1, (assignments(supervisor, "a"), assignments(supervisor, "b"))
    await produce(s, "book.top", [top(i) for i in range(1, 6)])  # both taps read these
    first = owners[0]
    survivor = "b" if first == "a" else "a"
    supervisor.kill(first)  # SIGKILL: no hand-over
    await produce(s, "orders.proposed", [proposal(i) for i in range(N // 2, N + 1)])

    decided = await decided_count(s, N, 120)
    assert len(decided) == N, (len(decided), supervisor.tail(survivor))
    assert all(len(ids) == 1 for ids in decided.values()), "an order got two decisions"
    approved = await read_until(s, "orders.approved", lambda _: False, timeout_s=1)
    approved_ids = {r.client_order_id for r in decoded(approved, OrderRequest)}  # type: ignore[attr-defined]
    await filled_once_and_counted(s, approved_ids, lambda: supervisor.tail(survivor))
    assert supervisor.children[survivor].alive, supervisor.tail(survivor)
