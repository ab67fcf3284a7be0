"""Binance USD-M futures traded end to end, as real processes on the real broker: the
simulator (futures WS, funding every few seconds), ``algostream ingest`` with
``market_data.exchange = "binance_usdm"``, a market worker and a trading worker. A SELL
from flat on ``BINANCE_USDM:BTCUSDT`` is approved by the futures risk checks and filled by
the futures paper broker: a short. At the next funding time the gate settles funding from
``md.mark_price`` into the position's realised P&L: ``-qty * mark * rate``, with the rate
the previous mark announced, and the account's ``PnL`` carries it."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from algostream.model import (
    MarkPrice,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    PnL,
    Position,
    Side,
)
from algostream.supervisor import Supervisor
from tests.faults.feed_kit import Pipeline, feed_env, logs, start_ingest, start_worker
from tests.kafka_kit import Msg, decoded, free_port, produce, read_until

PERP = "BINANCE_USDM:BTCUSDT"
QTY = Decimal("0.5")  # the strategy's own orders (0.01) cannot flip it


def short(n: int) -> OrderRequest:
    now = time.time_ns()
    return OrderRequest(
        instrument=PERP, ts_event=now, ts_init=now, record_id=f"usdm-prop-{n}",
        lineage_id="test", account="paper", client_order_id=f"usdm-short-{n}",
        strategy="test", side=Side.SELL, order_type=OrderType.MARKET, quantity=QTY,
    )  # fmt: skip


@pytest.mark.parametrize("layout", ["colocated", "single"])
async def test_a_short_on_usdm_is_filled_and_funding_reaches_pnl(
    provisioned: Any, supervisor: Supervisor, layout: str
) -> None:
    s = provisioned
    sim_port = free_port()
    env = feed_env(
        sim_port, exchange="binance_usdm", websocket_url=f"ws://127.0.0.1:{sim_port}/fstream"
    ) | {
        "ALGOSTREAM__SIM__FUNDING_INTERVAL_S": "4",
        "ALGOSTREAM__WORKERS__LAYOUT": layout,
        "ALGOSTREAM__RISK__LEVERAGE": "10",
        "ALGOSTREAM__RISK__MARGIN_MODE": "ISOLATED",
        "ALGOSTREAM__RISK__STOP_LOSS_PERCENT": "50",
        "ALGOSTREAM__RISK__TRAILING_STOP_PERCENT": "50",
    }
    roles = ["market", "trading"] if layout == "colocated" else ["all"]
    p = Pipeline(sim_port, {"ingest": free_port()} | {r: free_port() for r in roles}, env)
    supervisor.start("sim", "sim", "--port", str(sim_port), "--rate", "50", env=env)
    start_ingest(supervisor, p)
    for role in roles:
        start_worker(supervisor, p, role)

    # propose until the gate has the futures book (before it: NO_MARKET_DATA)
    deadline, n, approved = time.monotonic() + 120, 0, None
    while approved is None and time.monotonic() < deadline:
        n += 1
        await produce(s, "orders.proposed", [short(n)])
        coid = short(n).client_order_id

        def decided(msgs: list[Msg], coid: str = coid) -> bool:
            return any(coid.encode() in m.value for m in msgs)

        while time.monotonic() < deadline:
            ok = await read_until(s, "orders.approved", decided, timeout_s=1)
            no = await read_until(s, "orders.rejected", decided, timeout_s=1)
            if decided(ok):
                approved = coid
            if decided(ok) or decided(no):
                break
        if approved is None:
            reasons = {r.reason for r in decoded(no, OrderRejected) if r.client_order_id == coid}  # type: ignore[attr-defined]
            assert reasons <= {"NO_MARKET_DATA", "ORDER_TOO_OLD"}, (reasons, logs(supervisor))
    assert approved is not None, logs(supervisor)

    def filled(msgs: list[Msg]) -> bool:
        return any(
            e.client_order_id == approved and e.status is OrderStatus.FILLED  # type: ignore[attr-defined]
            for e in decoded(msgs, OrderEvent)
        )

    events = decoded(await read_until(s, "orders.events", filled, 60), OrderEvent)
    fill = [e for e in events if e.client_order_id == approved and e.fill_qty > 0]  # type: ignore[attr-defined]
    assert sum(e.fill_qty for e in fill) == QTY, logs(supervisor)  # type: ignore[attr-defined]
    assert all(e.side is Side.SELL for e in fill)  # type: ignore[attr-defined]

    # wait for a Position caused by a mark price record: funding settled on the short
    deadline = time.monotonic() + 60
    positions: list[Position] = []
    marks: list[MarkPrice] = []
    while time.monotonic() < deadline:
        marks = decoded(await read_until(s, "md.mark_price", bool, 2), MarkPrice)  # type: ignore[assignment]
        ids = {m.record_id for m in marks}

        def caused_by_mark(msgs: list[Msg], ids: set[str] = ids) -> bool:
            return any(r.lineage_id in ids for r in decoded(msgs, Position))

        positions = decoded(await read_until(s, "positions", caused_by_mark, 5), Position)  # type: ignore[assignment]
        if caused_by_mark_ids(positions, ids):
            break
    mark_ids = {m.record_id for m in marks}
    perp = [r for r in positions if r.instrument == PERP and r.strategy is None]
    at = next((i for i, r in enumerate(perp) if r.lineage_id in mark_ids), None)
    assert at is not None and at > 0, logs(supervisor)
    after, before = perp[at], perp[at - 1]
    assert after.quantity < 0 and after.quantity == before.quantity  # the short, funded
    cause = next(m for m in marks if m.record_id == after.lineage_id)
    ours = sorted((m for m in marks if m.instrument == PERP), key=lambda m: m.ts_event)
    announced = ours[ours.index(cause) - 1]  # the rate the gate held when the time passed
    assert cause.ts_event >= announced.next_funding_ns
    expected = -after.quantity * cause.mark_price * announced.funding_rate
    assert expected != 0
    assert after.realized_pnl - before.realized_pnl == expected
    pnls = decoded(await read_until(s, "pnl", lambda m: bool(m), 10), PnL)
    assert any(r.lineage_id == cause.record_id for r in pnls)  # type: ignore[attr-defined]
    assert all(supervisor.children[r].alive for r in roles), logs(supervisor)


def caused_by_mark_ids(positions: list[Position], ids: set[str]) -> bool:
    return any(r.lineage_id in ids for r in positions)
