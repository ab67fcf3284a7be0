"""``kill -9`` of the broker under the whole pipeline, trading (issue 28).

The simulator, the ingestor, a market worker and a trading worker run on a broker of the
test's own; trading fills orders. The broker is killed (``kill -9``) for 30 s. Found by an
operator: the market worker said STALE during the outage, a rebalance came before it
handled any update after it, the next owner rebuilt the book from ``book-state`` without
the flag, no RESYNCED ever followed and the gate stayed REDUCING.

That race is made to happen every time here: the market worker's book reader is frozen
(``ALGOSTREAM_FAULT_HANG``) at its first batch after the broker is back, so it never
handles an update after the outage; once its STALE is on ``book.integrity`` it is killed
and a new market worker takes the instrument over from the table. Asserted:

* the new owner says RESYNCED (the STALE was stored with the book), the gate is ACTIVE
  again (``risk.events``) and a new position opens (a fill) within a bound;
* the outage is quiet (issue 28 item 6): each process writes tens of lines during the
  30 s, with the ``kafka unreachable`` / ``reachable again`` state lines, and counts the
  attempts in ``algostream_kafka_client_errors_total``.

The ingestor's own silence detection is off (its feed is healthy all along): its RESYNCED
would otherwise clear the gate and hide the market worker's.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from algostream.config import load_settings
from algostream.kafka.catalog import load_catalog
from algostream.kafka.local_broker import LocalBroker
from algostream.kafka.provision import apply_catalog
from algostream.model import BookIntegrity, IntegrityKind, OrderEvent, OrderStatus, RiskEvent
from algostream.model.enums import RiskEventKind, TradingState
from algostream.supervisor import Supervisor
from tests.faults.feed_kit import INSTRUMENT, logs, poll, scrape, start_pipeline, start_worker
from tests.faults.feed_kit import wait_live as _wait_live
from tests.faults.test_broker_outage import own_broker  # noqa: F401  (fixture)
from tests.kafka_kit import decoded, read_until

OUTAGE_S = 30.0
#: a new position opens within this after the market worker is replaced
TRADING_BACK_S = 90.0
#: most lines a process may write during the outage ("tens, not thousands")
MAX_OUTAGE_LINES = 60
TWITCHY = {  # a strategy that trades every few seconds
    "ALGOSTREAM__SIGNAL__RSI_WINDOW": "2",
    "ALGOSTREAM__SIGNAL__RSI_OVERSOLD": "45",
    "ALGOSTREAM__SIGNAL__RSI_OVERBOUGHT": "55",
    "ALGOSTREAM__RISK__MAX_ORDERS_PER_SECOND": "1000",
}


async def fills(s: Any, after_ns: int = 0) -> list[OrderEvent]:
    msgs = await read_until(s, "orders.events", lambda m: False, 1.0)
    return [
        e
        for e in decoded(msgs, OrderEvent)
        if e.status is OrderStatus.FILLED and e.ts_init > after_ns  # type: ignore[attr-defined]
    ]  # type: ignore[misc]


async def integrity_after(s: Any, kind: IntegrityKind, after_ns: int) -> list[BookIntegrity]:
    """``kind`` events of the instrument after the first event of any kind made after
    ``after_ns`` (topic order: the gate's order; an event's ``ts_init`` is its cause's)."""
    msgs = await read_until(s, "book.integrity", lambda m: False, 1.0)
    events: list[BookIntegrity] = decoded(msgs, BookIntegrity)  # type: ignore[assignment]
    events = [e for e in events if e.instrument == INSTRUMENT]
    start = next((i for i, e in enumerate(events) if e.ts_init > after_ns), len(events))
    return [e for e in events[start:] if e.kind is kind]


def line_count(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def lines_with(path: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{") and f'"event":"{event}"' in line:
            out.append(json.loads(line))
    return out


async def test_kill_9_broker_trading_resumes_after_a_rebalance_at_the_worst_moment(
    own_broker: LocalBroker,  # noqa: F811
    supervisor: Supervisor,
    kafka_env: dict[str, str],
    tmp_path: Path,
) -> None:
    hang = tmp_path / "hang-book"
    env = TWITCHY | {
        "ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": own_broker.bootstrap,
        "ALGOSTREAM__MARKET_DATA__STALE_AFTER_MS": "2000",
        "ALGOSTREAM__WORKERS__STALL_RESTART_S": "0",  # the test replaces the frozen worker
        "ALGOSTREAM_FAULT_HANG": f"book:{hang}",
    }
    s = load_settings(env=kafka_env | env)
    report = await apply_catalog(load_catalog(), s.kafka)
    assert report.ok, report.drift
    p = start_pipeline(
        supervisor,
        ("market", "trading"),
        rate=50,
        env=env,
        ingest_env={"ALGOSTREAM__MARKET_DATA__STALE_AFTER_MS": "600000"},
    )
    await _wait_live(s, supervisor)
    await poll(lambda: fills(s), 300, "paper fills before the outage")

    # ---- kill -9 the broker; the market worker says STALE (held until the broker is back)
    logs_at: dict[str, int] = {n: line_count(c.log) for n, c in supervisor.children.items()}
    await asyncio.to_thread(own_broker.kill)
    t_kill = time.time_ns()
    loop = asyncio.get_running_loop()
    back_at = loop.time() + OUTAGE_S
    market_log = supervisor.children["market"].log
    await poll(lambda: lines_with(market_log, "books stale"), 20, "the market worker's STALE")
    hang.touch()  # its book reader never handles an update after the outage
    while loop.time() < back_at:  # the outage's length: the processes must live through it
        assert not supervisor.dead(), logs(supervisor)
        await asyncio.sleep(min(1.0, max(back_at - loop.time(), 0)))
    outage_lines = {n: line_count(c.log) - logs_at[n] for n, c in supervisor.children.items()}
    await asyncio.to_thread(own_broker.start)

    # ---- the worst moment: STALE published, no update handled since; the worker goes
    await poll(lambda: integrity_after(s, IntegrityKind.STALE, t_kill), 90, "the STALE published")
    await poll(lambda: not hang.exists(), 60, "the frozen reader's first batch after the outage")
    assert not await integrity_after(s, IntegrityKind.RESYNCED, t_kill), "no race to force"
    supervisor.kill("market")
    start_worker(supervisor, p, "market")
    t_new = time.time_ns()

    # ---- the new owner clears it; trading ACTIVE; a new position
    resynced = await poll(
        lambda: integrity_after(s, IntegrityKind.RESYNCED, t_kill),
        TRADING_BACK_S,
        "RESYNCED from the new market worker",
    )
    assert resynced[0].instrument == INSTRUMENT

    async def active() -> bool:
        msgs = await read_until(s, "risk.events", lambda m: False, 1.0)
        events = [
            e
            for e in decoded(msgs, RiskEvent)
            if e.kind is RiskEventKind.INTEGRITY and e.instrument == INSTRUMENT  # type: ignore[attr-defined]
        ]
        return bool(events) and events[-1].state is TradingState.ACTIVE  # type: ignore[attr-defined]

    await poll(active, 30, "the gate ACTIVE again")
    await poll(lambda: fills(s, t_new), TRADING_BACK_S, "a fill after the new owner took over")
    assert not supervisor.dead(), logs(supervisor)

    # ---- quiet outage: tens of lines per process, state changes logged, attempts counted
    for name in ("ingest", "market", "trading"):
        assert outage_lines[name] <= MAX_OUTAGE_LINES, (name, outage_lines, logs(supervisor))
    for name in ("ingest", "trading"):
        log = supervisor.children[name].log
        assert lines_with(log, "kafka unreachable"), (name, supervisor.tail(name, 60))
        await poll(lambda log=log: lines_with(log, "kafka reachable again"), 30, "back line")
    values = await scrape(p.metrics["trading"])
    errors = sum(v for k, v in values.items() if k.startswith("algostream_kafka_client_errors"))
    assert errors > 0, values
    print("lines written during the 30 s outage:", outage_lines)
