"""A paused trading worker is fenced: the standby decides, nothing of the old owner shows.

Two trading workers (the rig of ``test_trading_standby.py``); the owner is paused
(``SIGSTOP``) past its session timeout while proposals arrive, the standby takes the
account over (its transactional producer fences the owner's: same transactional id),
decides them, and then the old owner is resumed (``SIGCONT``) with its old state and
what its consumers had fetched. Promises, as a ``read_committed`` consumer sees the
topics: every proposal has exactly one decision record (no copy of the old owner's),
every approved order is filled exactly once and the position is the sum of the fills.
Whatever the old owner wrote after it resumed is in aborted transactions: in the log
(a ``read_uncommitted`` reader sees it) but never visible.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

from algostream.model import OrderEvent, OrderRejected, OrderRequest
from tests.faults.test_trading_standby import assignments
from tests.faults.test_trading_worker_kill import proposal, top
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import filled_once_and_counted

N = 40
ARGS = ("worker", "trading", "--web-port", "0", "--metrics-port", "0")
#: proposals made while the owner is paused are decided by the standby after the session
#: timeout (10 s): let them be approved (and filled), not refused for their age (the
#: account transaction, ``kafka.trading_transactions``, is on by default)
ENV = {"ALGOSTREAM__RISK__MAX_ORDER_AGE_MS": "120000"}


async def decision_messages(s, isolation: str = "read_committed") -> Counter[str]:  # type: ignore[no-untyped-def]
    """Client order id -> decision records on the topics (every copy counted)."""
    out: Counter[str] = Counter()
    for topic, kind in (("orders.approved", OrderRequest), ("orders.rejected", OrderRejected)):
        msgs = await read_until(s, topic, lambda _: False, timeout_s=1, isolation_level=isolation)
        out.update(r.client_order_id for r in decoded(msgs, kind))  # type: ignore[attr-defined]
    return out


async def until(check, timeout_s: float, why) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.2)


async def test_paused_owner_is_fenced_and_the_standby_decides_once(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    supervisor.start("a", *ARGS, env=ENV)
    await produce(s, "book.top", [top(0)])
    n = 0
    while True:  # the first approval: the owner is up
        n += 1
        await produce(s, "orders.proposed", [proposal(n)])
        if await read_until(s, "orders.approved", lambda m: len(m) >= 1, timeout_s=2):
            break
        assert n < 60, supervisor.tail("a")
    await produce(s, "orders.proposed", [proposal(i) for i in range(n + 1, N // 2)])
    await until(lambda: _decided(s, N // 2 - 1), 60, lambda: supervisor.tail("a"))

    seen_by_a = len(assignments(supervisor, "a"))
    supervisor.start("b", *ARGS, env=ENV)
    deadline = time.monotonic() + 60
    while len(assignments(supervisor, "a")) <= seen_by_a or not assignments(supervisor, "b"):
        assert time.monotonic() < deadline, (supervisor.tail("a"), supervisor.tail("b"))
        await asyncio.sleep(0.2)
    owners = [x for x in ("a", "b") if '"partitions":[0]' in assignments(supervisor, x)[-1]]
    assert len(owners) == 1, (assignments(supervisor, "a"), assignments(supervisor, "b"))
    owner, standby = owners[0], "b" if owners[0] == "a" else "a"
    await produce(s, "book.top", [top(i) for i in range(1, 4)])

    supervisor.signal(owner, signal.SIGSTOP)
    try:
        await produce(s, "orders.proposed", [proposal(i) for i in range(N // 2, N)])
        group = f"{s.kafka.app_id}-trading"
        await until(lambda: _one_member(s, group), 60, lambda: supervisor.tail(standby))
        # the standby owns the account now and decides what came while the owner slept
        await until(lambda: _decided(s, N - 1), 90, lambda: supervisor.tail(standby))
    finally:
        supervisor.signal(owner, signal.SIGCONT)
    await produce(s, "book.top", [top(4)])
    await produce(s, "orders.proposed", [proposal(N)])  # the owner is back: one more
    await until(
        lambda: _decided(s, N), 90, lambda: (supervisor.tail(owner), supervisor.tail(standby))
    )
    await _settled(supervisor, owner)

    visible = await decision_messages(s)
    assert set(visible) == {f"k-{i}" for i in range(1, N + 1)}, sorted(visible)
    assert all(count == 1 for count in visible.values()), {
        c: k for c, k in visible.items() if k > 1
    }
    approved = await read_until(s, "orders.approved", lambda _: False, timeout_s=1)
    approved_ids = {r.client_order_id for r in decoded(approved, OrderRequest)}  # type: ignore[attr-defined]
    events = decoded(await read_until(s, "orders.events", lambda _: False, timeout_s=1), OrderEvent)
    fills = Counter(e.client_order_id for e in events if e.fill_qty > 0)  # type: ignore[attr-defined]
    assert all(k == 1 for k in fills.values()), "a fill record is visible twice"
    await filled_once_and_counted(s, approved_ids, lambda: supervisor.tail(standby))

    written = await decision_messages(s, "read_uncommitted")
    if written != visible:  # the old owner wrote after it resumed: it must have been fenced
        assert "fenced" in supervisor.tail(owner, 3000), supervisor.tail(owner)
    print(f"old owner: {sum(written.values()) - sum(visible.values())} decision records aborted")
    # both go on: the fenced owner steps down (no crash, no traceback) and rejoins its
    # group as a standby
    assert supervisor.children[standby].alive, supervisor.tail(standby)
    assert supervisor.children[owner].alive, supervisor.tail(owner)
    assert "Traceback" not in supervisor.tail(owner, 3000), supervisor.tail(owner, 3000)
    await until(lambda: _rejoined(supervisor, owner), 60, lambda: supervisor.tail(owner))


async def _rejoined(supervisor, owner: str) -> bool:  # type: ignore[no-untyped-def]
    """The old owner's last assignment (after its fence, if it was fenced) exists."""
    tail = supervisor.tail(owner, 3000)
    fenced_at = tail.rfind("fenced: a newer trading worker")
    return fenced_at < 0 or tail.rfind("reader proposals assigned") > fenced_at


async def _decided(s, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await decision_messages(s)) >= n


async def _one_member(s, group: str) -> bool:  # type: ignore[no-untyped-def]
    from tests.faults.test_trading_paused import group_members

    return await group_members(s, group) == 1


async def _settled(supervisor, owner: str) -> None:  # type: ignore[no-untyped-def]
    """The resumed owner has rejoined its group (its rebalance is over)."""
    deadline = time.monotonic() + 60
    before = len(assignments(supervisor, owner))
    while len(assignments(supervisor, owner)) <= before and "fenced" not in supervisor.tail(
        owner, 3000
    ):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)
