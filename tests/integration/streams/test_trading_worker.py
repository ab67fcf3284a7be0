"""The trading worker (risk + execution agents) on a real broker, as a real process.

A valid proposal goes through risk to a paper fill; malformed records land in ``dlq`` with
the reason, topic, partition and offset; the worker keeps running.
"""

from __future__ import annotations

import time

from algostream.model import (
    DeadLetter,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    OrderStatus,
)
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import book_top, proposal


async def test_proposal_to_fill_and_bad_records_to_dlq(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    settings = provisioned
    # the first proposals wait for the worker's start-up (seconds on a loaded machine):
    # decided then, they are older than the default risk.max_order_age_ms (ORDER_TOO_OLD,
    # test_trading_paused.py); here they must meet the gate's book check
    worker = supervisor.start(
        "trading",
        "worker",
        "trading",
        "--web-port",
        "0",
        "--metrics-port",
        "0",
        env={"ALGOSTREAM__RISK__MAX_ORDER_AGE_MS": "120000"},
    )
    await produce(settings, "book.top", [book_top(1)])
    # Until the risk agent has seen the book it rejects with NO_MARKET_DATA: propose, wait
    # for that proposal's decision (approved or rejected), and propose again only after a
    # rejection (a deadline, not a sleep).
    approved: list[OrderRequest] = []
    rejected: list[OrderRejected] = []
    deadline = time.monotonic() + 90
    n = 0
    while not approved and time.monotonic() < deadline:
        n += 1
        coid = proposal(n).client_order_id
        await produce(settings, "orders.proposed", [proposal(n)])

        def decided(msgs, coid=coid) -> bool:  # type: ignore[no-untyped-def]
            return any(coid.encode() in m.value for m in msgs)

        ok = await read_until(settings, "orders.approved", decided, timeout_s=1)
        no = await read_until(settings, "orders.rejected", decided, timeout_s=1)
        while not (decided(ok) or decided(no)) and time.monotonic() < deadline:
            ok = await read_until(settings, "orders.approved", decided, timeout_s=1)
            no = await read_until(settings, "orders.rejected", decided, timeout_s=1)
        approved = decoded(ok, OrderRequest)  # type: ignore[assignment]
        rejected = decoded(no, OrderRejected)  # type: ignore[assignment]
        assert worker.alive, supervisor.tail("trading")
    assert len(approved) == 1, supervisor.tail("trading")
    assert len(rejected) == n - 1  # one decision per proposal
    assert {r.reason for r in rejected} <= {"NO_MARKET_DATA"}  # type: ignore[attr-defined]

    bad = [(b"paper", b"{not json"), (b"paper", b'{"instrument": "BINANCE:BTCUSDT"}')]
    await produce(settings, "orders.proposed", bad)
    await produce(settings, "orders.proposed", [proposal(1000)])

    letters = decoded(await read_until(settings, "dlq", lambda m: len(m) >= 2), DeadLetter)
    assert len(letters) == 2
    assert {d.source_topic for d in letters} == {settings.kafka.topic_prefix + "orders.proposed"}  # type: ignore[attr-defined]
    assert "not JSON" in letters[0].reason  # type: ignore[attr-defined]
    assert "ts_event" in letters[1].reason and letters[1].offset == letters[0].offset + 1  # type: ignore[attr-defined]

    def filled(ids: set[str]):  # type: ignore[no-untyped-def]
        def done(msgs) -> bool:  # type: ignore[no-untyped-def]
            evs = decoded(msgs, OrderEvent)
            return ids <= {e.client_order_id for e in evs if e.status is OrderStatus.FILLED}  # type: ignore[attr-defined]

        return done

    want = {approved[0].client_order_id, "coid-1000"}
    events = decoded(await read_until(settings, "orders.events", filled(want)), OrderEvent)
    fills = [e for e in events if e.status is OrderStatus.FILLED]  # type: ignore[attr-defined]
    assert {e.client_order_id for e in fills} == want  # type: ignore[attr-defined]
    assert all(e.fill_price == 101 for e in fills)  # type: ignore[attr-defined]  # the ask offered
    assert worker.alive, supervisor.tail("trading")
