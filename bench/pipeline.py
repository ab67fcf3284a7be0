"""Tick-to-trade on the whole pipeline: simulator -> ingestor -> the workers of a layout
(``workers.layout``) -> paper fill, on the real broker.

The simulator runs at a fixed rate; after a warm-up (first fill) the pipeline runs for a
fixed window, then the simulator pauses and every topic is read back. Each paper fill is
walked back through its lineage ids (fill -> approved order -> proposal -> signal ->
features -> bar) to the trade that closed the bar, whose ``ts_init`` is the time the
ingestor received the exchange frame. A stage's latency is the difference between the
``algostream-sent-ns`` headers (producer wall clock, ns) of its output and its input, so
a stage that reads its input from a topic includes that Kafka hop. All processes share this
machine's clock.

The book path is measured on every depth update: frame receive (``md.book`` ts_init) ->
``book.top`` sent.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from algostream.config import Settings, load_settings
from algostream.kafka.catalog import load_catalog
from algostream.kafka.provision import apply_catalog, delete_run_topics
from algostream.kafka.reader import TopicRecord, partitions, read_to_end
from algostream.model import (
    Bar,
    BookTop,
    BookUpdate,
    FeatureVector,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    Signal,
    TradeTick,
)
from algostream.supervisor import Supervisor
from bench.common import Latency, summarize
from streams.worker import worker_roles

FILL_STATUSES = (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)


@dataclass
class ProcSample:
    t_s: float
    rss_mb: dict[str, float]
    cpu_pct: dict[str, float]


@dataclass
class PipelineRun:
    rate: float
    duration_s: float
    prefix: str = ""
    layout: str = "colocated"
    roles: list[str] = field(default_factory=list)
    stages: list[Latency] = field(default_factory=list)
    end_to_end: Latency | None = None
    book_path: Latency | None = None
    book_stages: list[Latency] = field(default_factory=list)
    fills: int = 0
    unmatched_fills: int = 0
    timer_closed: int = 0
    samples: list[ProcSample] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    windows: list[tuple[float, Latency]] = field(default_factory=list)
    max_lag: dict[str, float] = field(default_factory=dict)
    #: the book path (frame received -> book.top sent) per window: how far the book's
    #: output lags the feed, over time (the soak)
    book_windows: list[tuple[float, Latency]] = field(default_factory=list)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_env(bootstrap: str, data_dir: Path, sim_port: int) -> dict[str, str]:
    prefix = f"bench{int(time.time() * 1000) % 10**10}."
    return {
        "ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "ALGOSTREAM__KAFKA__TOPIC_PREFIX": prefix,
        "ALGOSTREAM__KAFKA__APP_ID": f"bench-{prefix.rstrip('.')}",
        "ALGOSTREAM__KAFKA__DATA_DIR": str(data_dir),
        "ALGOSTREAM__MARKET_DATA__WEBSOCKET_URL": f"ws://127.0.0.1:{sim_port}/stream",
        "ALGOSTREAM__MARKET_DATA__REST_URL": f"http://127.0.0.1:{sim_port}",
        "ALGOSTREAM__MARKET_DATA__RECONNECT_DELAY_MS": "200",
        # a strategy that trades on most bars, so the run yields many fills to measure
        "ALGOSTREAM__SIGNAL__RSI_WINDOW": "2",
        "ALGOSTREAM__SIGNAL__RSI_OVERSOLD": "49",
        "ALGOSTREAM__SIGNAL__RSI_OVERBOUGHT": "51",
        "ALGOSTREAM__RISK__MAX_ORDERS_PER_SECOND": "1000",
        "ALGOSTREAM__OBSERVABILITY__LOG_LEVEL": "WARNING",
    }


async def read_topic(settings: Settings, topic: str) -> list[TopicRecord]:
    """Every record of ``topic`` up to its current end, with timestamps and headers."""
    return await read_to_end(settings.kafka, topic, timeout_s=300)


async def _count(settings: Settings, topic: str) -> int:
    name = settings.kafka.topic_prefix + topic
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        parts = await partitions(consumer, name)
        tps = [TopicPartition(name, p) for p in parts]
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        return sum(end[tp] - begin[tp] for tp in tps)
    finally:
        await consumer.stop()


async def _wait_growth_stops(settings: Settings, topic: str, quiet_s: float, limit_s: float) -> int:
    """Poll ``topic``'s size until it has not grown for ``quiet_s`` (or ``limit_s`` passes)."""
    deadline = time.monotonic() + limit_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = await _count(settings, topic)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        await asyncio.sleep(0.5)
    return last


_PROCS: dict[int, psutil.Process] = {}


def broker_pid(bootstrap: str) -> int | None:
    """The process listening on the bootstrap port, when it runs on this machine."""
    port = int(bootstrap.rsplit(":", 1)[1])
    try:
        conns = psutil.net_connections("tcp")
    except psutil.Error:
        return None
    return next(
        (c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port), None
    )


def _sample(sup: Supervisor, t0: float, broker: int | None = None) -> ProcSample:
    """RSS and CPU % (since the previous sample) of every child process (and the broker)."""
    rss: dict[str, float] = {}
    cpu: dict[str, float] = {}
    pids = {n: c.proc.pid for n, c in sup.children.items() if c.proc is not None and c.alive}
    if broker is not None:
        pids["broker (JVM)"] = broker
    for name, pid in pids.items():
        try:
            p = _PROCS.setdefault(pid, psutil.Process(pid))
            rss[name] = p.memory_info().rss / 2**20
            cpu[name] = p.cpu_percent(None)
        except psutil.Error:
            continue
    return ProcSample(time.monotonic() - t0, rss, cpu)


def start_pipeline(sup: Supervisor, settings: Settings, sim_port: int, rate: float) -> None:
    sup.start("sim", "sim", "--port", str(sim_port), "--rate", str(rate))
    sup.start("ingest", "ingest", "--metrics-port", "0")
    for role in worker_roles(settings):
        sup.start(role, "worker", role, "--web-port", "0", "--metrics-port", "0")


async def run_pipeline(
    bootstrap: str,
    *,
    rate: float = 300.0,
    duration_s: float = 120.0,
    warmup_limit_s: float = 180.0,
    window_s: float = 0.0,
    log_dir: Path | None = None,
    layout: str = "colocated",
    extra_env: dict[str, str] | None = None,
    watch: Callable[[Settings], Awaitable[None]] | None = None,
) -> PipelineRun:
    """Run the whole pipeline for ``duration_s`` at ``rate`` depth events/s and measure
    (``watch``: a task of the caller's, run alongside and cancelled at the end)."""
    work = Path(tempfile.mkdtemp(prefix="algostream-bench-"))
    sim_port = free_port()
    env = bench_env(bootstrap, work / "data", sim_port) | {"ALGOSTREAM__WORKERS__LAYOUT": layout}
    env |= extra_env or {}
    settings = load_settings(env=env)
    report = await apply_catalog(load_catalog(), settings.kafka)
    if not report.ok:
        raise RuntimeError(f"could not provision bench topics: {report.drift}")
    sup = Supervisor(log_dir or work / "logs", env=env)
    run = PipelineRun(rate, duration_s, settings.kafka.topic_prefix, layout, worker_roles(settings))
    watching = None if watch is None else asyncio.ensure_future(watch(settings))
    try:
        start_pipeline(sup, settings, sim_port, rate)
        await _wait_first_fill(settings, sup, warmup_limit_s)
        t0 = time.monotonic()
        wall0 = time.time_ns()
        broker = broker_pid(bootstrap)
        _sample(sup, t0, broker)  # primes cpu_percent
        while time.monotonic() - t0 < duration_s:
            await asyncio.sleep(1.0)
            run.samples.append(_sample(sup, t0, broker))
            if sup.dead():
                raise RuntimeError(f"{sup.dead()} died: {sup.tail(sup.dead()[0], 30)}")
        wall1 = time.time_ns()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim_port}") as http:
            (await http.post("/sim/pause")).raise_for_status()
        await _wait_growth_stops(settings, "orders.events", quiet_s=3.0, limit_s=60.0)
    finally:
        if watching is not None:
            watching.cancel()
        sup.stop_all()
    await analyse(settings, run, wall0, wall1, window_s)
    await delete_run_topics(settings.kafka)  # a broker full of old runs' topics GCs
    return run


async def _wait_first_fill(settings: Settings, sup: Supervisor, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if sup.dead():
            name = sup.dead()[0]
            raise RuntimeError(f"{name} died during warm-up:\n{sup.tail(name, 30)}")
        if await _count(settings, "orders.events") > 0:
            for rec in await read_topic(settings, "orders.events"):
                if OrderEvent.decode(rec.value).status in FILL_STATUSES:
                    return
        await asyncio.sleep(1.0)
    raise RuntimeError(f"no paper fill within {limit_s:.0f} s of starting the pipeline")


def _index(recs: list[TopicRecord], cls: Any) -> dict[str, tuple[Any, TopicRecord]]:
    out: dict[str, tuple[Any, TopicRecord]] = {}
    for rec in recs:
        r = cls.decode(rec.value)
        out.setdefault(r.record_id, (r, rec))
    return out


async def analyse(
    settings: Settings, run: PipelineRun, wall0: int, wall1: int, window_s: float
) -> None:
    topics = {
        "md.trades": TradeTick,
        "bars.1s": Bar,
        "features": FeatureVector,
        "signals": Signal,
        "orders.proposed": OrderRequest,
        "orders.approved": OrderRequest,
    }
    idx = {t: _index(await read_topic(settings, t), cls) for t, cls in topics.items()}
    run.counts = {t: len(v) for t, v in idx.items()}
    closing: dict[tuple[str, int], tuple[TradeTick, TopicRecord]] = {}
    for tick, rec in idx["md.trades"].values():
        closing.setdefault((tick.instrument, tick.ts_init), (tick, rec))

    names = [
        "ingest: frame received -> md.trades sent",
        "bars: md.trades -> bar closed and sent",
        "features: bar -> features sent",
        "signal: features -> signal sent",
        "sizing: signal -> order proposed",
        "risk: proposal -> approved",
        "execution: approved -> paper fill sent",
    ]
    per_stage: list[list[int]] = [[] for _ in names]
    e2e: list[tuple[int, int]] = []
    events = [(OrderEvent.decode(r.value), r) for r in await read_topic(settings, "orders.events")]
    seen_orders: set[str] = set()
    for ev, rec in events:
        if ev.status not in FILL_STATUSES or ev.lineage_id in seen_orders:
            continue
        seen_orders.add(ev.lineage_id)
        if rec.sent_ns is None or not wall0 <= rec.sent_ns <= wall1 + 5 * 10**9:
            continue
        run.fills += 1
        chain = _walk(ev, idx)
        if chain is None:
            run.unmatched_fills += 1
            continue
        bar = chain[-1][0]
        trade = closing.get((bar.instrument, bar.ts_init))
        if trade is None:  # closed by the wall-clock timer, not by a trade
            run.timer_closed += 1
            continue
        tick, tick_rec = trade
        times = [
            tick.ts_init,
            tick_rec.sent_ns,
            *(r.sent_ns for _, r in reversed(chain)),
            rec.sent_ns,
        ]
        if any(t is None for t in times):
            run.unmatched_fills += 1
            continue
        ts = [int(t) for t in times if t is not None]
        for i in range(len(names)):
            per_stage[i].append(ts[i + 1] - ts[i])
        e2e.append((ts[-1], ts[-1] - ts[0]))
    run.stages = [summarize(n, s) for n, s in zip(names, per_stage, strict=True) if s]
    if e2e:
        run.end_to_end = summarize(
            "tick-to-trade (frame received -> paper fill)", [d for _, d in e2e]
        )
        if window_s:
            start = wall0
            while start < wall1:
                chunk = [d for t, d in e2e if start <= t < start + int(window_s * 1e9)]
                if chunk:
                    run.windows.append(((start - wall0) / 1e9, summarize("window", chunk)))
                start += int(window_s * 1e9)

    book: list[int] = []
    book_at: list[tuple[int, int]] = []  # (book.top sent, its lag behind the frame)
    ingest: list[int] = []
    updates: dict[str, tuple[BookUpdate, TopicRecord]] = {}
    for rec in await read_topic(settings, "md.book"):
        u = BookUpdate.decode(rec.value)
        updates[u.record_id] = (u, rec)
    for rec in await read_topic(settings, "book.top"):
        top = BookTop.decode(rec.value)
        hit = updates.get(top.lineage_id)
        if hit is None or rec.sent_ns is None or not wall0 <= rec.sent_ns <= wall1:
            continue
        src, src_rec = hit
        book.append(rec.sent_ns - src.ts_init)
        book_at.append((rec.sent_ns, rec.sent_ns - src.ts_init))
        if src_rec.sent_ns is not None:
            ingest.append(src_rec.sent_ns - src.ts_init)
    if ingest:
        run.book_stages.append(summarize("ingest: depth frame received -> md.book sent", ingest))
    if book:
        run.book_path = summarize("book: frame received -> book.top sent", book)
    if window_s:
        start = wall0
        while start < wall1:
            lags = [d for t, d in book_at if start <= t < start + int(window_s * 1e9)]
            if lags:
                run.book_windows.append(((start - wall0) / 1e9, summarize("book window", lags)))
            start += int(window_s * 1e9)
    run.counts["md.book"] = len(updates)
    run.counts["fills"] = run.fills


def _walk(
    ev: OrderEvent, idx: dict[str, dict[str, tuple[Any, TopicRecord]]]
) -> list[tuple[Any, TopicRecord]] | None:
    """fill -> approved -> proposed -> signal -> features -> bar, or None if a link is missing."""
    chain: list[tuple[Any, TopicRecord]] = []
    lineage = ev.lineage_id
    for topic in ("orders.approved", "orders.proposed", "signals", "features", "bars.1s"):
        hit = idx[topic].get(lineage)
        if hit is None:
            return None
        chain.append(hit)
        lineage = hit[0].lineage_id
    return chain


def report(run: PipelineRun) -> list[str]:
    from bench.common import HEADER

    lines = [
        f"Layout `{run.layout}` ({', '.join(run.roles)}). "
        f"Simulator at {run.rate:.0f} depth events/s (about 10% of them trades) on 2 instruments, "
        f"measured for {run.duration_s:.0f} s after the first fill; {run.fills} paper fills, "
        f"{run.timer_closed} of them from bars closed by the wall-clock timer (no closing tick; "
        f"left out), {run.unmatched_fills} whose lineage could not be walked.",
        "",
        HEADER,
    ]
    targets = {"risk: proposal -> approved": "< 100 µs (check alone)"}
    for s in run.stages:
        lines.append(s.row(targets.get(s.name, "")))
    if run.end_to_end:
        lines.append(run.end_to_end.row("p50 < 10 ms, p99 < 25 ms"))
    for s in run.book_stages:
        lines.append(s.row())
    if run.book_path:
        lines.append(run.book_path.row("< 1 ms (update alone)"))
    if run.samples:
        first, last = run.samples[0], run.samples[-1]
        lines += ["", "| process | RSS start MB | RSS end MB | mean CPU % |", "|---|---|---|---|"]
        for name in last.rss_mb:
            cpu = np.mean([s.cpu_pct.get(name, 0.0) for s in run.samples])
            start = first.rss_mb.get(name, 0)
            lines.append(f"| {name} | {start:.0f} | {last.rss_mb[name]:.0f} | {cpu:.0f} |")
    lines += ["", "Records: " + ", ".join(f"{k} {v}" for k, v in run.counts.items())]
    return lines
