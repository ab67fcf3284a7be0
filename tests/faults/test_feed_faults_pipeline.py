"""Feed faults against the whole market-data path: simulator -> ingestor -> md.* -> market
worker (book table, book.top, book.integrity) -> trading worker (risk), all real processes
on the real broker. Each fault is injected through the simulator's ``POST /sim/fault``.

For a fault that breaks the book (dropped diffs, disconnect, silence, crossed book):

1. a ``book.integrity`` event of the right kind for the instrument, stamped within the
   configured detection time of the injection;
2. risk puts the instrument in REDUCING (a ``risk.events`` record caused by that event);
3. after the resync a RESYNCED integrity event, and risk back to ACTIVE (a ``risk.events``
   record caused by the RESYNCED), and that is the instrument's final state;
4. ``md.book`` stays a rebuildable chain (every hole starts over at a snapshot), trade ids
   on ``md.trades`` strictly increase and have no hole unless the connection was down
   while trades happened (the feed has no trade backfill: then exactly one hole);
5. the worker's ``book.top`` equals the simulator's true book (market paused).

``serverShutdown`` is not a break: the ingestor rotates to a new connection before closing
the old one, so the promise is the opposite - no integrity event, no REDUCING, no hole in
the book chain or the trade ids, and the same true book.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from algostream.model import BookIntegrity, IntegrityKind, RiskEvent, TradingState
from algostream.model.enums import BookUpdateKind, RiskEventKind
from tests.faults.feed_kit import (
    assert_book_is_true,
    chain_breaks,
    holes,
    integrity,
    logs,
    md_book,
    md_trades,
    of,
    poll,
    sim_fault,
    start_pipeline,
    trade_ids,
    wait_live,
)
from tests.kafka_kit import decoded, read_until

STALE_AFTER_MS = 1000  # the ingestor's silence detection (its configured detection time)
# on 2 busy cores a process can be descheduled for a while: the margin on top of the
# configured detection time before an event counts as late
SCHEDULING_SLACK_MS = 1500


@dataclass(frozen=True)
class Fault:
    body: dict[str, Any]
    kind: IntegrityKind
    detect_ms: int  # the configured bound on noticing it
    trades_may_be_lost: bool = False  # connection down while the market traded


FAULTS = {
    # the next diffs never arrive: the next one does not continue the U/u chain
    "dropped_diffs": Fault({"kind": "drop_depth", "count": 3}, IntegrityKind.GAP, 0),
    "disconnect": Fault({"kind": "disconnect"}, IntegrityKind.DISCONNECTED, 0, True),
    "disconnect_abrupt": Fault(
        {"kind": "disconnect", "abrupt": True}, IntegrityKind.DISCONNECTED, 0, True
    ),
    # no market events while silent, but trades made before the reconnect can be missed
    "silence": Fault({"kind": "silence", "seconds": 3}, IntegrityKind.STALE, STALE_AFTER_MS, True),
    "crossed": Fault({"kind": "crossed", "symbol": "BTCUSDT"}, IntegrityKind.CROSSED, 0),
}


class NoRecovery(AssertionError):
    """Risk did not return the instrument to ACTIVE after the fault."""


def integrity_risk_events(msgs: Any) -> list[RiskEvent]:
    return [
        e
        for e in of(decoded(msgs, RiskEvent))
        if e.kind is RiskEventKind.INTEGRITY  # type: ignore[attr-defined]
    ]


async def start(provisioned: Any, supervisor: Any) -> Any:
    p = start_pipeline(
        supervisor,
        ("market", "trading"),
        ingest_env={"ALGOSTREAM__MARKET_DATA__STALE_AFTER_MS": str(STALE_AFTER_MS)},
    )
    await wait_live(provisioned, supervisor)
    return p


@pytest.mark.parametrize(
    "name",
    [
        "dropped_diffs",
        "disconnect",
        "disconnect_abrupt",
        "silence",
        "crossed",
    ],
)
async def test_feed_fault_is_detected_reduced_resynced_and_the_book_is_true(
    provisioned: Any, supervisor: Any, name: str
) -> None:
    s, fault = provisioned, FAULTS[name]
    p = await start(s, supervisor)
    trades_before = trade_ids(await md_trades(s, timeout_s=1))

    t0 = time.time_ns()
    await sim_fault(p, fault.body)

    # 1. detected within the configured time
    def broken(events: list[BookIntegrity]) -> bool:
        return any(e.ts_init >= t0 and e.kind is not IntegrityKind.RESYNCED for e in events)

    events = await integrity(s, broken, timeout_s=30)
    after = [e for e in events if e.ts_init >= t0]
    assert after and after[0].kind is fault.kind, ([e.kind for e in after], logs(supervisor))
    late_ms = (after[0].ts_init - t0) / 1e6
    assert late_ms <= fault.detect_ms + SCHEDULING_SLACK_MS, (late_ms, after[0])
    caused = {e.record_id: e for e in after}

    # 2. risk: REDUCING, caused by the fault's event
    def reducing(msgs: Any) -> bool:
        return any(
            e.state is TradingState.REDUCING and e.lineage_id in caused
            for e in integrity_risk_events(msgs)
        )

    msgs = await read_until(s, "risk.events", reducing, timeout_s=60)
    assert reducing(msgs), (integrity_risk_events(msgs), logs(supervisor))

    if name == "crossed":  # the true book first: the recovery part is the known gap
        await assert_book_is_true(s, p, supervisor)
        await assert_recovers(s, t0, fault, supervisor, timeout_s=10)
        return
    await assert_recovers(s, t0, fault, supervisor)

    # 4. md.book rebuildable; trade ids increase, with a hole only if trades were missed
    book = await md_book(s)
    assert not chain_breaks(book), chain_breaks(book)
    assert any(u.kind is BookUpdateKind.SNAPSHOT and u.ts_init >= t0 for u in book) or (
        fault.kind is IntegrityKind.CROSSED
    )
    ids = trade_ids(await md_trades(s))
    assert ids == sorted(set(ids)), "a trade published twice or out of order"
    assert ids[: len(trades_before)] == trades_before
    assert len(ids) > len(trades_before), "no trades after the fault"
    gaps = holes(ids)
    if fault.trades_may_be_lost:
        assert len(gaps) <= 1, gaps
    else:
        assert not gaps, gaps

    # 5. the worker's book equals the simulator's
    await assert_book_is_true(s, p, supervisor)
    assert not supervisor.dead(), logs(supervisor)


async def assert_recovers(
    s: Any, t0: int, fault: Fault, supervisor: Any, timeout_s: float = 30
) -> None:
    """3. RESYNCED after the fault, risk ACTIVE again and staying so once data flows."""

    def resynced(events: list[BookIntegrity]) -> bool:
        return any(e.ts_init >= t0 and e.kind is IntegrityKind.RESYNCED for e in events)

    events = await integrity(s, resynced, timeout_s=timeout_s)
    if not resynced(events):
        raise NoRecovery(
            f"no RESYNCED after the fault: {[e.kind for e in events if e.ts_init >= t0]}"
        )
    resync_ids = {e.record_id for e in events if e.kind is IntegrityKind.RESYNCED}

    def active_again(msgs: Any) -> bool:
        evs = integrity_risk_events(msgs)
        return (
            bool(evs) and evs[-1].state is TradingState.ACTIVE and evs[-1].lineage_id in resync_ids
        )

    msgs = await read_until(s, "risk.events", active_again, timeout_s=60)
    if not active_again(msgs):
        raise NoRecovery(f"risk did not return to ACTIVE: {integrity_risk_events(msgs)[-3:]}")

    # once the fault is over (silence ended, data flowing) the instrument stays ACTIVE
    quiet_until = t0 + int(float(fault.body.get("seconds", 0)) * 1e9)

    async def flowing_again() -> bool:
        tops = await read_until(s, "book.top", lambda m: False, timeout_s=1)
        from algostream.model import BookTop

        return any(t.ts_event > quiet_until + 500_000_000 for t in of(decoded(tops, BookTop)))

    await poll(flowing_again, 30, "book updates after the fault")
    events = await integrity(s, lambda e: False, timeout_s=1)
    assert events[-1].kind is IntegrityKind.RESYNCED, (
        [e.kind for e in events[-4:]],
        logs(supervisor),
    )
    last = integrity_risk_events(await read_until(s, "risk.events", lambda m: False, timeout_s=2))[
        -1
    ]
    assert last.state is TradingState.ACTIVE, last


async def test_server_shutdown_rotates_without_a_break(provisioned: Any, supervisor: Any) -> None:
    s = provisioned
    p = await start(s, supervisor)
    ingest_log = supervisor.children["ingest"].log
    connects = ingest_log.read_text().count("feed connected")

    t0 = time.time_ns()
    reply = await sim_fault(p, {"kind": "server_shutdown", "close_after_s": 1.0})
    assert reply["notified"] == 1, reply
    await poll(
        lambda: ingest_log.read_text().count("feed connected") > connects,
        30,
        "the ingestor's new connection",
    )
    book_before = len(await md_book(s, timeout_s=1))

    async def more_book() -> bool:
        return len(await md_book(s, timeout_s=1)) > book_before + 40

    await poll(more_book, 30, "book updates after the rotation")
    events = [e for e in await integrity(s, lambda e: False, timeout_s=1) if e.ts_init >= t0]
    assert not events, [(e.kind, e.detail) for e in events]
    book = await md_book(s)
    assert not chain_breaks(book), chain_breaks(book)
    assert not [u for u in book if u.kind is BookUpdateKind.SNAPSHOT and u.ts_init >= t0]
    ids = trade_ids(await md_trades(s))
    assert ids == sorted(set(ids)) and not holes(ids), holes(ids)
    risk = integrity_risk_events(await read_until(s, "risk.events", lambda m: False, timeout_s=2))
    assert not [e for e in risk if e.ts_event >= t0], risk  # caused by nothing after t0
    await assert_book_is_true(s, p, supervisor)
    assert not supervisor.dead(), logs(supervisor)


async def test_every_simulator_fault_kind_is_covered() -> None:
    """A fault kind added to the simulator must be added here too (``malformed`` frames do
    not break the book: tests/faults/test_bad_input.py covers them)."""
    from algostream.sim import SimExchange, SimMarket
    from algostream.sim.errors import SimConfigError
    from algostream.sim.server import apply_fault

    with pytest.raises(SimConfigError) as err:
        await apply_fault(SimExchange(SimMarket.create(["BTCUSDT"], seed=1)), {"kind": "?"})
    offered = set(str(err.value).split("expected ", 1)[1].replace(" or ", ", ").split(", "))
    # not market-data feed faults, each proven where it acts: ``liquidation`` (a forceOrder
    # frame: tests/unit/sim/test_sim_usdm.py), ``expire_listen_keys`` and ``user_event`` (the
    # USD-M user data stream: tests/unit/execution/test_execution_usdm_user_stream.py and
    # tests/integration/streams/test_live_usdm.py)
    elsewhere = {"server_shutdown", "malformed", "liquidation", "user_event", "expire_listen_keys"}
    covered = {f.body["kind"] for f in FAULTS.values()} | elsewhere
    assert offered == covered, offered ^ covered
