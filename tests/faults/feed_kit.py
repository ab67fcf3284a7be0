"""Helpers shared by the feed fault tests: the simulator pipeline as real processes, what
the md.* topics must look like, and the worker's book against the simulator's true book.

Everything waits by polling topics or endpoints against a deadline; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from algostream.config import Settings
from algostream.model import BookIntegrity, BookTop, BookUpdate, IntegrityKind, TradeTick
from algostream.model.enums import BookUpdateKind
from algostream.supervisor import Supervisor
from tests.kafka_kit import Msg, decoded, free_port, read_until

SYMBOL = "BTCUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"


@dataclass
class Pipeline:
    """Ports of a running simulator + ingestor (+ workers)."""

    sim_port: int
    metrics: dict[str, int]
    env: dict[str, str]

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"


def feed_env(sim_port: int, **overrides: str) -> dict[str, str]:
    """One symbol, quick reconnects; ``overrides`` are ``MARKET_DATA`` keys."""
    env = {
        "ALGOSTREAM__MARKET_DATA__SYMBOLS": json.dumps([SYMBOL]),
        "ALGOSTREAM__MARKET_DATA__WEBSOCKET_URL": f"ws://127.0.0.1:{sim_port}/stream",
        "ALGOSTREAM__MARKET_DATA__REST_URL": f"http://127.0.0.1:{sim_port}",
        "ALGOSTREAM__MARKET_DATA__RECONNECT_DELAY_MS": "200",
        "ALGOSTREAM__MARKET_DATA__MAX_RECONNECT_DELAY_MS": "1000",
    }
    env |= {f"ALGOSTREAM__MARKET_DATA__{k.upper()}": v for k, v in overrides.items()}
    return env


def start_pipeline(
    supervisor: Supervisor,
    roles: Sequence[str],
    *,
    rate: int = 20,
    ingest_env: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> Pipeline:
    """Start the simulator, the ingestor and one worker per role (real processes)."""
    sim_port = free_port()
    base = feed_env(sim_port) | (env or {})
    p = Pipeline(sim_port, {"ingest": free_port()} | {r: free_port() for r in roles}, base)
    supervisor.start("sim", "sim", "--port", str(sim_port), "--rate", str(rate), env=base)
    start_ingest(supervisor, p, ingest_env)
    for role in roles:
        start_worker(supervisor, p, role)
    return p


def start_ingest(supervisor: Supervisor, p: Pipeline, extra: dict[str, str] | None = None) -> None:
    port = str(p.metrics["ingest"])
    supervisor.start("ingest", "ingest", "--metrics-port", port, env=p.env | (extra or {}))


def start_worker(supervisor: Supervisor, p: Pipeline, role: str) -> None:
    port = str(p.metrics[role])
    supervisor.start(role, "worker", role, "--web-port", "0", "--metrics-port", port, env=p.env)


def logs(supervisor: Supervisor) -> dict[str, str]:
    return {name: supervisor.tail(name, 25) for name in supervisor.children}


# ---------------------------------------------------------------------- topics
def of(records: Iterable[Any], instrument: str = INSTRUMENT) -> list[Any]:
    return [r for r in records if r.instrument == instrument]


async def integrity(s: Settings, done: Callable[[list[BookIntegrity]], bool], timeout_s: float):  # type: ignore[no-untyped-def]
    """``book.integrity`` of the instrument, read until ``done`` or the deadline."""

    def check(msgs: list[Msg]) -> bool:
        return done(of(decoded(msgs, BookIntegrity)))

    return of(decoded(await read_until(s, "book.integrity", check, timeout_s), BookIntegrity))


async def wait_live(s: Settings, supervisor: Supervisor, timeout_s: float = 90.0) -> None:
    """Until the book worker publishes tops and no integrity problem is open (no integrity
    event yet, or RESYNCED is the last one: a first sync is not announced)."""
    tops = await read_until(s, "book.top", lambda m: bool(m), timeout_s)
    assert tops, logs(supervisor)

    def synced(events: list[BookIntegrity]) -> bool:
        return not events or events[-1].kind is IntegrityKind.RESYNCED

    events = await integrity(s, synced, timeout_s)
    assert synced(events), (events, logs(supervisor))


def chain_breaks(updates: Sequence[BookUpdate]) -> list[str]:
    """Where the ``md.book`` stream of one instrument cannot rebuild the book: a DELTA
    must continue the chain (``first <= last + 1 <= final``); only a SNAPSHOT starts over."""
    out: list[str] = []
    last: int | None = None
    for u in updates:
        if u.kind is BookUpdateKind.SNAPSHOT:
            last = u.final_update_id
        elif last is None:
            out.append(f"delta {u.first_update_id}..{u.final_update_id} before any snapshot")
        elif u.final_update_id <= last:
            out.append(f"duplicate delta {u.first_update_id}..{u.final_update_id} at {last}")
        elif u.first_update_id > last + 1:
            out.append(f"hole {last + 1}..{u.first_update_id - 1} without a snapshot")
        else:
            last = u.final_update_id
    return out


def trade_ids(trades: Iterable[TradeTick]) -> list[int]:
    return [int(t.trade_id) for t in trades]


def holes(ids: Sequence[int]) -> list[tuple[int, int]]:
    """The missing ranges ``(first, last)`` of a strictly increasing id sequence."""
    return [(a + 1, b - 1) for a, b in itertools.pairwise(ids) if b > a + 1]


async def md_book(s: Settings, timeout_s: float = 2.0) -> list[BookUpdate]:
    msgs = await read_until(s, "md.book", lambda m: False, timeout_s)
    return of(decoded(msgs, BookUpdate))


async def md_trades(s: Settings, timeout_s: float = 2.0) -> list[TradeTick]:
    msgs = await read_until(s, "md.trades", lambda m: False, timeout_s)
    return of(decoded(msgs, TradeTick))


# ---------------------------------------------------------------------- truth
async def assert_book_is_true(
    s: Settings, p: Pipeline, supervisor: Supervisor, timeout_s: float = 60.0
) -> BookTop:
    """Pause the simulator, read its true book, and find the worker's ``book.top`` at that
    update id: every level of it must equal the truth. Resumes the simulator."""
    async with httpx.AsyncClient(base_url=p.sim_url) as http:
        (await http.post("/sim/pause")).raise_for_status()
        try:
            truth = (await http.get("/sim/book", params={"symbol": SYMBOL})).json()
            want = truth["lastUpdateId"]

            def at_truth(msgs: list[Msg]) -> bool:
                return any(t.update_id == want for t in of(decoded(msgs, BookTop)))

            tops = of(decoded(await read_until(s, "book.top", at_truth, timeout_s), BookTop))
            top = next((t for t in tops if t.update_id == want), None)
            assert top is not None, (want, tops[-3:], logs(supervisor))
            bids = [(Decimal(px), Decimal(q)) for px, q in truth["bids"][: len(top.bids)]]
            asks = [(Decimal(px), Decimal(q)) for px, q in truth["asks"][: len(top.asks)]]
            assert top.bids and top.asks
            assert list(top.bids) == bids, (top.bids, bids)
            assert list(top.asks) == asks, (top.asks, asks)
            return top
        finally:
            (await http.post("/sim/resume")).raise_for_status()


async def sim_fault(p: Pipeline, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=p.sim_url) as http:
        resp = await http.post("/sim/fault", json=body)
        resp.raise_for_status()
        out: dict[str, Any] = resp.json()
        return out


async def scrape(port: int, timeout_s: float = 10.0) -> dict[str, float]:
    """``/metrics`` of a process as ``{'name{labels}': value}``."""
    async with httpx.AsyncClient(timeout=timeout_s) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def poll(
    cond: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2
) -> Any:
    """Call (and await) ``cond`` until it returns something truthy, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = cond()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval_s)  # poll interval, bounded by the deadline
