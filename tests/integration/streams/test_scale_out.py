"""Scale-out of the market role: three market workers share ``md.book``/``md.trades``,
then one stops gracefully and one is killed with ``kill -9`` while the market keeps moving.

Real processes on a real broker: the simulator (three instruments, chosen so that each
hashes to its own one of the three ``md.book`` partitions), the ingestor, and market
workers with the same app id, each with its own data dir (``ALGOSTREAM__KAFKA__DATA_DIR``)
and no Faust web server (``--web-port 0``). Which worker owns which instrument is read
from each worker's ``/metrics`` (``algostream_book_update_seconds_count`` per instrument
grows only where the instrument's partition is processed).

What is asserted, exactly:

* **State moves with the partitions.** After every move the book continues the
  update-id chain from the saved ``book-state`` without a resync: the worker emits no
  GAP/RESYNCED integrity event beyond the ones a single reference
  :class:`~algostream.marketdata.processor.BookProcessor` fed the whole ``md.book``
  topic emits, and when the simulator is paused each instrument's last ``book.top``
  equals the simulator's true book (``GET /sim/book``) at its ``lastUpdateId``.
* **No output lost.** Per instrument, the distinct ``book.top`` update ids in order are
  exactly the reference processor's (so continuous modulo the resyncs the reference
  itself documents); ``bars.1s`` has exactly the bars a reference
  :class:`~algostream.marketdata.bars.BarAggregator` makes from ``md.trades`` (every 1 s
  bucket with trades has its bar, with the same OHLCV, volume and trade count); no trade
  went to the ``dlq`` as late.
* **Features move with them too.** Every bar has its ``features`` record, and the values
  that depend on the bars alone (RSI, MACD, Bollinger, ATR, VWAP, volatility) equal a
  reference :class:`~algostream.features.processor.FeatureProcessor` fed every bar in
  order: the ``features-state`` the next owner restored continued exactly.
* **No duplicates where the design promises none.** The book agent drops a re-delivered
  update by its update id, and the tables are written with every record, so a partition
  that moves by a rebalance or a graceful stop yields no second ``book.top`` for any
  update id and no second bar for any bucket. ``kill -9`` is at-least-once: the killed
  worker's last outputs can be on the broker while its table changelog writes and input
  commit are not, so its re-delivered inputs are processed again. For the instruments
  the killed worker owned we assert that every repeated output is an exact copy (same
  deterministic ``record_id``, same levels / same OHLCV) and that the repeats form a
  single contiguous replay window (the update ids rewind at most once per instrument).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiokafka.partitioner import DefaultPartitioner

from algostream.config import Settings, SignalConfig
from algostream.features.engine import BAR_FEATURE_NAMES
from algostream.features.processor import FeatureProcessor
from algostream.kafka.reader import TopicRecord
from algostream.kafka.reader import read_to_end as read_topic
from algostream.marketdata.bars import BarAggregator
from algostream.marketdata.processor import BookProcessor
from algostream.model import (
    Bar,
    BookIntegrity,
    BookTop,
    BookUpdate,
    DeadLetter,
    FeatureVector,
    TradeTick,
)
from algostream.model.enums import IntegrityKind
from tests.kafka_kit import Msg, decoded, free_port, read_until

SYMBOLS = ("BTCUSDT", "BNBUSDT", "XRPUSDT")  # murmur2 -> partitions 0, 1, 2 of 3
INSTRUMENTS = tuple(f"BINANCE:{s}" for s in SYMBOLS)
WORKERS = ("m1", "m2", "m3")
METRIC = "algostream_book_update_seconds_count"


def test_symbols_cover_every_partition() -> None:
    partitioner = DefaultPartitioner()
    parts = [0, 1, 2]
    assert sorted(partitioner(i.encode(), parts, parts) for i in INSTRUMENTS) == parts


async def read_to_end(settings: Settings, topic: str) -> list[TopicRecord]:
    """Every record of ``topic`` up to its end offsets at the time of the call."""
    return await read_topic(settings.kafka, topic)


async def book_counts(http: httpx.AsyncClient, port: int) -> dict[str, float]:
    """Per instrument: book updates this worker process has applied so far."""
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(METRIC + '{instrument="'):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('"')[1]] = float(value)
    return out


class Owners:
    """Which live worker processes which instrument now (from /metrics deltas)."""

    def __init__(self, supervisor: Any, ports: dict[str, int]) -> None:
        self.supervisor = supervisor
        self.ports = ports
        self.last: dict[str, dict[str, float]] = {}

    async def poll(self, http: httpx.AsyncClient) -> dict[str, set[str]]:
        """instrument -> workers whose count grew since the previous poll."""
        grew: dict[str, set[str]] = defaultdict(set)
        for name, port in self.ports.items():
            if name not in self.supervisor.children or not self.supervisor.children[name].alive:
                self.last.pop(name, None)
                continue
            try:
                now = await book_counts(http, port)
            except httpx.HTTPError:
                continue  # metrics server not up yet
            before = self.last.get(name)
            self.last[name] = now
            if before is None:
                continue
            for inst in INSTRUMENTS:
                if now.get(inst, 0) > before.get(inst, 0):
                    grew[inst].add(name)
        return grew

    async def wait(self, live: tuple[str, ...], timeout_s: float, what: str) -> dict[str, str]:
        """Poll until every instrument is processed by exactly one worker, all in ``live``,
        and every worker in ``live`` processes at least one instrument (twice in a row)."""
        deadline = time.monotonic() + timeout_s
        stable = 0
        owners: dict[str, str] = {}
        async with httpx.AsyncClient(timeout=5) as http:
            self.last.clear()
            while time.monotonic() < deadline:
                grew = await self.poll(http)
                settled = all(len(grew.get(i, ())) == 1 for i in INSTRUMENTS) and {
                    w for ws in grew.values() for w in ws
                } == set(live)
                now = {i: next(iter(grew[i])) for i in INSTRUMENTS} if settled else {}
                stable = stable + 1 if settled and now == owners else int(settled)
                owners = now
                if stable >= 2:
                    return owners
                await asyncio.sleep(0.7)  # poll interval, bounded by the deadline
        logs = {n: self.supervisor.tail(n, 20) for n in self.supervisor.children}
        raise AssertionError(f"{what}: ownership did not settle on {live}; {logs}")


def reference_tops(updates: list[BookUpdate]) -> tuple[dict[str, list[int]], set[Any]]:
    """Per instrument the update ids one never-failing book processor emits tops for, and
    its GAP/RESYNCED events."""
    proc = BookProcessor(10)
    tops: dict[str, list[int]] = defaultdict(list)
    events: set[Any] = set()
    for u in updates:
        for rec in proc.on_update(u, u.ts_init):
            if isinstance(rec, BookTop):
                tops[rec.instrument].append(rec.update_id)
            elif isinstance(rec, BookIntegrity) and rec.kind in RESYNC_KINDS:
                events.add((rec.instrument, rec.kind, rec.received_update_id))
    return tops, events


RESYNC_KINDS = (IntegrityKind.GAP, IntegrityKind.RESYNCED)
#: how the book agent's own GAP/RESYNCED events start (the ingestor's have other texts)
BOOK_AGENT_DETAILS = ("delta before any snapshot", "md.book chain broken", "snapshot at update")


def reference_bars(trades: list[TradeTick]) -> dict[tuple[str, int], Bar]:
    agg = BarAggregator("1s")
    bars = [b for t in trades for b in agg.on_trade(t).bars]
    bars += agg.on_time(2**62)  # the last open bar of each instrument (closed by the timer)
    return {(b.instrument, b.start_ns): b for b in bars}


def reference_features(
    bars: dict[tuple[str, int], Bar], config: SignalConfig
) -> dict[str, FeatureVector]:
    """bar record id -> the features one never-moving processor makes of it."""
    proc = FeatureProcessor(config)
    out: dict[str, FeatureVector] = {}
    for _, bar in sorted(bars.items()):
        fv = proc.on_bar(bar)
        if fv is not None:
            out[bar.record_id] = fv
    return out


def bar_values(b: Bar) -> tuple[Any, ...]:
    return (b.record_id, b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trades)


def replay_windows(ids: list[int]) -> int:
    """How many times the update id sequence goes back (starts a replay)."""
    return sum(1 for a, b in itertools.pairwise(ids) if b <= a)


async def test_market_workers_scale_out_and_fail_over(  # type: ignore[no-untyped-def]
    provisioned, supervisor, tmp_path: Path
) -> None:
    s = provisioned
    t0 = time.monotonic()
    sim_port = free_port()
    ports = {name: free_port() for name in WORKERS}
    env = {
        "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["' + '","'.join(SYMBOLS) + '"]',
        "ALGOSTREAM__MARKET_DATA__WEBSOCKET_URL": f"ws://127.0.0.1:{sim_port}/stream",
        "ALGOSTREAM__MARKET_DATA__REST_URL": f"http://127.0.0.1:{sim_port}",
        "ALGOSTREAM__MARKET_DATA__RECONNECT_DELAY_MS": "200",
        # the default layout: market workers recover the book, bar, feature and signal
        # tables at every move. Faust's recovery can lose the changelog records it waits
        # for and hang (faust-streaming #74); streams.continuity.RecoveryWatchdog seeks
        # them back (seen here in about 1 run of 10 before it)
        "ALGOSTREAM__WORKERS__LAYOUT": "colocated",
    }
    supervisor.start("sim", "sim", "--port", str(sim_port), "--rate", "60", env=env)
    supervisor.start("ingest", "ingest", "--metrics-port", "0", env=env)

    def start_market(name: str) -> None:
        own = env | {"ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path / f"data-{name}")}
        args = ("worker", "market", "--web-port", "0", "--metrics-port", str(ports[name]))
        supervisor.start(name, *args, env=own)

    owners = Owners(supervisor, ports)
    start_market("m1")
    first = await owners.wait(("m1",), 90, "one worker")
    assert set(first.values()) == {"m1"}

    # scale out: two more workers with the same app id take partitions (and tables) over
    start_market("m2")
    start_market("m3")
    spread = await owners.wait(WORKERS, 90, "three workers")
    assert sorted(spread.values()) == sorted(WORKERS), spread

    # graceful stop: m2's partition moves to a live worker
    supervisor.stop("m2")
    after_stop = await owners.wait(("m1", "m3"), 60, "after stopping m2")

    # kill -9: m3's partitions move to m1 once its session times out
    killed = {i for i, w in after_stop.items() if w == "m3"}
    assert killed, after_stop
    supervisor.kill("m3")
    await owners.wait(("m1",), 60, "after killing m3")

    # pause the market; the book must reach the simulator's true book
    truths: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim_port}") as http:
        (await http.post("/sim/pause")).raise_for_status()
        for sym, inst in zip(SYMBOLS, INSTRUMENTS, strict=True):
            truths[inst] = (await http.get("/sim/book", params={"symbol": sym})).json()

    def at_truth(msgs: list[Msg]) -> bool:
        last = {t.instrument: t.update_id for t in decoded(msgs, BookTop)}  # type: ignore[attr-defined]
        return all(last.get(i) == truths[i]["lastUpdateId"] for i in INSTRUMENTS)

    tops_msgs = await read_until(s, "book.top", at_truth, timeout_s=60)
    if not at_truth(tops_msgs):
        published = decoded(await read_to_end(s, "md.book"), BookUpdate)
        where = {
            i: {
                "truth": truths[i]["lastUpdateId"],
                "md.book": max(
                    (u.final_update_id for u in published if u.instrument == i), default=None
                ),  # type: ignore[attr-defined]
                "book.top": max(
                    (t.update_id for t in decoded(tops_msgs, BookTop) if t.instrument == i),
                    default=None,
                ),  # type: ignore[attr-defined]
            }
            for i in INSTRUMENTS
        }
        raise AssertionError(f"{where}\n{supervisor.tail('m1', 60)}\n{supervisor.tail('ingest')}")

    updates = decoded(await read_to_end(s, "md.book"), BookUpdate)
    trades = decoded(await read_to_end(s, "md.trades"), TradeTick)
    want_bars = reference_bars(trades)  # type: ignore[arg-type]

    def bars_done(msgs: list[Msg]) -> bool:
        return {(b.instrument, b.start_ns) for b in decoded(msgs, Bar)} >= set(want_bars)  # type: ignore[attr-defined]

    bar_msgs = await read_until(s, "bars.1s", bars_done, timeout_s=30)
    want_features = reference_features(want_bars, s.signal)

    def features_done(msgs: list[Msg]) -> bool:
        return {f.lineage_id for f in decoded(msgs, FeatureVector)} >= set(want_features)  # type: ignore[attr-defined]

    await read_until(s, "features", features_done, timeout_s=30)
    assert supervisor.children["m1"].alive, supervisor.tail("m1")

    tops = decoded(await read_to_end(s, "book.top"), BookTop)
    integrity = decoded(await read_to_end(s, "book.integrity"), BookIntegrity)
    letters = decoded(await read_to_end(s, "dlq"), DeadLetter)
    bars = decoded(await read_to_end(s, "bars.1s"), Bar)
    assert len(bars) >= len(bar_msgs)

    # -- the book: chain continued after every move, no resync, equals the truth
    want_tops, want_resyncs = reference_tops(updates)  # type: ignore[arg-type]
    got_resyncs = {
        (e.instrument, e.kind, e.received_update_id)  # type: ignore[attr-defined]
        for e in integrity
        if e.kind in RESYNC_KINDS and e.detail.startswith(BOOK_AGENT_DETAILS)  # type: ignore[attr-defined]
    }
    assert got_resyncs == want_resyncs, [e for e in integrity if e.kind in RESYNC_KINDS]  # type: ignore[attr-defined]
    per_inst: dict[str, list[BookTop]] = defaultdict(list)
    for t in tops:
        per_inst[t.instrument].append(t)  # type: ignore[attr-defined, arg-type]
    for inst in INSTRUMENTS:
        ids = [t.update_id for t in per_inst[inst]]
        distinct = list(dict.fromkeys(ids))
        assert distinct == want_tops[inst], f"{inst}: book.top update ids lost or reordered"
        first_of: dict[int, BookTop] = {}
        for t in per_inst[inst]:
            orig = first_of.setdefault(t.update_id, t)
            assert (t.record_id, t.bids, t.asks) == (orig.record_id, orig.bids, orig.asks)
        if inst in killed:
            assert replay_windows(ids) <= 1, f"{inst}: more than one replay window"
        else:
            assert len(ids) == len(distinct), f"{inst}: duplicate book.top after a graceful move"
        truth = truths[inst]
        last = per_inst[inst][-1]
        assert last.update_id == truth["lastUpdateId"]
        assert list(last.bids) == [(Decimal(p), Decimal(q)) for p, q in truth["bids"][:10]]
        assert list(last.asks) == [(Decimal(p), Decimal(q)) for p, q in truth["asks"][:10]]

    # -- bars: every bucket with trades has exactly the reference bar; repeats only after -9
    got: dict[tuple[str, int], list[Bar]] = defaultdict(list)
    for b in bars:
        got[(b.instrument, b.start_ns)].append(b)  # type: ignore[attr-defined, index]
    assert set(got) == set(want_bars), set(want_bars) ^ set(got)
    for key, copies in got.items():
        assert all(bar_values(c) == bar_values(want_bars[key]) for c in copies), key
        if key[0] not in killed:
            assert len(copies) == 1, f"{key}: bar emitted {len(copies)} times"
    for inst in killed:
        starts = [b.start_ns for b in bars if b.instrument == inst]  # type: ignore[attr-defined]
        assert replay_windows(starts) <= 1, f"{inst}: more than one bar replay window"
    # -- features: every bar's, from state that moved with the partition (the bar-derived
    # values are a function of the bar sequence alone: exactly the reference's)
    features = decoded(await read_to_end(s, "features"), FeatureVector)
    seen: dict[str, list[FeatureVector]] = defaultdict(list)
    for f in features:
        seen[f.lineage_id].append(f)  # type: ignore[attr-defined, arg-type]
    assert set(seen) == set(want_features), set(seen) ^ set(want_features)
    for bar_id, copies in seen.items():
        want = want_features[bar_id]
        for f in copies:
            assert f.record_id == want.record_id
            assert {k: f.values[k] for k in BAR_FEATURE_NAMES} == {
                k: want.values[k] for k in BAR_FEATURE_NAMES
            }, (f.instrument, bar_id)
        if copies[0].instrument not in killed:
            assert len(copies) == 1, f"{bar_id}: features emitted {len(copies)} times"
    late = [d for d in letters if "late trade" in d.reason]  # type: ignore[attr-defined]
    assert not late, late[:3]
    assert not letters, letters[:3]
    assert {u.instrument for u in updates} == set(INSTRUMENTS)  # type: ignore[attr-defined]
    assert time.monotonic() - t0 < 150
