"""Throughput of the ingest + book path, with one and with two market workers.

1. Ingest: the simulator pushes depth updates as fast as it can (its rate set far above
   what one process can take); the ingestor writes ``md.raw`` / ``md.book`` /
   ``md.trades``. Rate = ``md.book`` records landed / seconds.
2. Book: with a backlog of ``md.book`` updates on the topic (3 instruments, so 3
   partitions), start N market workers in one consumer group and time from the first to
   the last ``book.top`` they send (``algostream-sent-ns`` headers). That drain rate is the
   highest rate the book path sustains: fed any faster, its lag grows without bound.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from algostream.config import Settings, load_settings
from algostream.kafka.catalog import load_catalog
from algostream.kafka.provision import apply_catalog, delete_run_topics
from algostream.supervisor import Supervisor
from bench.pipeline import _count, _wait_growth_stops, bench_env, free_port, read_topic

SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT"


@dataclass(frozen=True)
class Drain:
    workers: int
    records: int
    seconds: float
    cpu_s: float = 0.0  # CPU the workers used over those seconds (all their threads)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """CPU per update (µs): unlike the rate, it does not depend on what else ran."""
        return self.cpu_s / self.records * 1e6 if self.records else 0.0


class CpuClock:
    """CPU seconds (user + system, every thread) of some child processes, sampled every
    50 ms in a thread, so the CPU used between two wall-clock instants can be read after."""

    def __init__(self, sup: Supervisor, names: list[str]) -> None:
        self.sup, self.names = sup, names
        self.samples: list[tuple[int, float]] = []  # (time_ns, CPU seconds of all)
        self._last: dict[int, float] = {}  # pid -> its latest CPU seconds (exited: kept)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuClock:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        procs: dict[int, psutil.Process] = {}
        while not self._stop.is_set():
            for name in self.names:
                child = self.sup.children.get(name)
                if child is None or child.proc is None or not child.alive:
                    continue
                try:
                    proc = procs.setdefault(child.proc.pid, psutil.Process(child.proc.pid))
                    t = proc.cpu_times()
                    self._last[child.proc.pid] = t.user + t.system
                except psutil.Error:
                    continue
            self.samples.append((time.time_ns(), sum(self._last.values())))
            self._stop.wait(0.05)

    def between(self, start_ns: int, end_ns: int) -> float:
        """CPU seconds used from ``start_ns`` to ``end_ns`` (nearest samples)."""
        if not self.samples:
            return 0.0

        def at(ns: int) -> float:
            return min(self.samples, key=lambda s: abs(s[0] - ns))[1]

        return at(end_ns) - at(start_ns)


async def _wait_count(
    settings: Settings, topic: str, target: int, limit_s: float, sup: Supervisor
) -> int:
    deadline = time.monotonic() + limit_s
    n = 0
    while time.monotonic() < deadline:
        n = await _count(settings, topic)
        if n >= target:
            return n
        if sup.dead():
            name = sup.dead()[0]
            raise RuntimeError(f"{name} died:\n{sup.tail(name, 30)}")
        await asyncio.sleep(0.5)
    return n


def _setup(bootstrap: str) -> tuple[dict[str, str], Settings, int, Path]:
    work = Path(tempfile.mkdtemp(prefix="algostream-tput-"))
    sim_port = free_port()
    env = bench_env(bootstrap, work / "data", sim_port)
    env["ALGOSTREAM__MARKET_DATA__SYMBOLS"] = f'["{SYMBOLS.replace(",", chr(34) + "," + chr(34))}"]'
    return env, load_settings(env=env), sim_port, work


@dataclass(frozen=True)
class Ingest:
    rate: float  # md.book records landed per second
    cpu_us: float  # the ingestor's CPU per md.book record (with its md.raw / md.trades)
    sim_cpu: float  # the simulator's CPU, % of one core (100: it is what limits the rate)


async def ingest_and_backlog(
    bootstrap: str,
    seconds: float = 20.0,
    rate: float = 200_000.0,
    extra_env: dict[str, str] | None = None,
) -> tuple[Ingest, dict[str, str], Settings, Path]:
    """Run sim + ingestor flat out for ``seconds``; returns what the ingest measured, and
    the env, settings and work dir of the backlog it left. ``extra_env``: more settings
    (e.g. ``ALGOSTREAM__KAFKA__INGEST_CLIENT``)."""
    env, settings, sim_port, work = _setup(bootstrap)
    env |= extra_env or {}
    report = await apply_catalog(load_catalog(), settings.kafka)
    if not report.ok:
        raise RuntimeError(f"could not provision bench topics: {report.drift}")
    sup = Supervisor(work / "logs", env=env)
    try:
        sup.start("sim", "sim", "--port", str(sim_port), "--rate", str(rate), "--no-batch-depth")
        sup.start("ingest", "ingest", "--metrics-port", "0")
        with CpuClock(sup, ["ingest"]) as ingest_cpu, CpuClock(sup, ["sim"]) as sim_cpu:
            await _wait_count(settings, "md.book", 1, 60, sup)
            start_n, t0 = await _count(settings, "md.book"), time.time_ns()
            while time.time_ns() - t0 < seconds * 1e9:
                await asyncio.sleep(1.0)
                if sup.dead():
                    raise RuntimeError(f"{sup.dead()} died")
            end_n, t1 = await _count(settings, "md.book"), time.time_ns()
            await asyncio.sleep(0.1)  # a CPU sample after t1
    finally:
        sup.stop_all()
    n, wall = end_n - start_n, (t1 - t0) / 1e9
    return (
        Ingest(
            n / wall,
            ingest_cpu.between(t0, t1) / n * 1e6 if n else 0.0,
            100 * sim_cpu.between(t0, t1) / wall,
        ),
        env,
        settings,
        work,
    )


#: the ingestor's variants compared by ``python -m bench.throughput [--issue27]``
CLIENTS = {
    "aiokafka": {"ALGOSTREAM__KAFKA__INGEST_CLIENT": "aiokafka"},
    "rdkafka": {"ALGOSTREAM__KAFKA__INGEST_CLIENT": "rdkafka"},
}
ISSUE27 = {  # before issue 27's md.raw batching and picows, and after
    "rdkafka, websockets, md.raw per frame": {
        "ALGOSTREAM__KAFKA__INGEST_CLIENT": "rdkafka",
        "ALGOSTREAM__MARKET_DATA__WS_CLIENT": "websockets",
        "ALGOSTREAM__MARKET_DATA__RAW_BATCH_MS": "0",
    },
    "rdkafka, picows, md.raw batched (default)": {},
}


async def ingest_ab(
    bootstrap: str,
    rounds: int = 2,
    seconds: float = 20.0,
    variants: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """The ingestor in each variant in turn (aiokafka, rdkafka, ...): table rows."""
    rows = []
    for _ in range(rounds):
        for client, extra in (variants or CLIENTS).items():
            ing, _, settings, _ = await ingest_and_backlog(bootstrap, seconds, extra_env=extra)
            await delete_run_topics(settings.kafka)
            rows.append(
                f"| {client} | {ing.rate:,.0f} | {ing.cpu_us:.1f} | {1e6 / ing.cpu_us:,.0f}/s "
                f"| {ing.sim_cpu:.0f}% |"
            )
            print(rows[-1], flush=True)
    return rows


async def drain(
    env: dict[str, str],
    settings: Settings,
    work: Path,
    workers: int,
    limit_s: float = 300.0,
    expect: int | None = None,
    run: str = "",
    extra_env: dict[str, str] | None = None,
    profile: Path | None = None,
    role: str = "market",
) -> Drain:
    """Start ``workers`` market workers on the backlog; time first to last book.top.
    ``run``: a name that makes this drain's app id (consumer groups, tables) its own, so
    the same backlog can be drained again; ``extra_env``: more settings of the workers;
    ``profile``: py-spy (native frames, threads apart, only the thread holding the GIL)
    records the first worker from its first ``book.top`` for 8 s into this file (raw
    collapsed stacks), each thread's share of its CPU beside it (``.threads``); ``role``:
    the workers' role (``market``, or one of ``workers.agents`` set in ``extra_env``)."""
    run_env = dict(env) | (extra_env or {})
    run_env["ALGOSTREAM__KAFKA__APP_ID"] = f"{env['ALGOSTREAM__KAFKA__APP_ID']}-{workers}w{run}"
    sup = Supervisor(work / f"logs-{workers}w{run}", env=run_env)
    spy: subprocess.Popen[bytes] | None = None
    threads: asyncio.Task[None] | None = None
    started = time.time_ns()
    clock = CpuClock(sup, [f"market{i}" for i in range(workers)])  # the workers' CPU
    try:
        with clock:
            for i in range(workers):
                sup.start(
                    f"market{i}",
                    "worker",
                    role,
                    "--web-port",
                    "0",
                    "--metrics-port",
                    "0",
                    env={"ALGOSTREAM__KAFKA__DATA_DIR": str(work / f"data-{workers}w-{i}")},
                )
            # book.top is shared by every drain run: this run's records are those sent after
            # its start; one book.top per applied update, so the run ends when it stops growing
            before = await _count(settings, "book.top")
            if expect:  # a rebalance pauses output for seconds: wait for the whole backlog
                await _wait_count(settings, "book.top", before + expect, limit_s, sup)
            else:
                await _wait_count(settings, "book.top", before + 1, limit_s, sup)
                if profile is not None:
                    spy = _py_spy(sup, "market0", profile)
                    threads = asyncio.create_task(_thread_cpu(sup, "market0", profile))
                await _wait_growth_stops(settings, "book.top", quiet_s=5.0, limit_s=limit_s)
    finally:
        if spy is not None:
            spy.wait(timeout=60)
        if threads is not None:
            await threads
        sup.stop_all()
    tops = await read_topic(settings, "book.top")
    mine = sorted(r.sent_ns for r in tops if r.sent_ns is not None and r.sent_ns >= started)
    # the middle 90% of the output: start-up and the last stragglers left out
    cut = len(mine) // 20
    mid = mine[cut : len(mine) - cut]
    if len(mid) < 2:
        return Drain(workers, len(mid), 0.0)
    return Drain(workers, len(mid), (mid[-1] - mid[0]) / 1e9, clock.between(mid[0], mid[-1]))


def _task_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of ``pid``, by ``name/tid``."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


async def _thread_cpu(sup: Supervisor, name: str, out: Path) -> None:
    """Each thread's share of the worker's CPU over py-spy's 8 s, beside its stacks."""
    child = sup.children[name]
    assert child.proc is not None
    cpu0 = _task_cpu(child.proc.pid)
    await asyncio.sleep(8.0)
    cpu1 = _task_cpu(child.proc.pid)
    total = sum(cpu1.values()) - sum(cpu0.get(k, 0.0) for k in cpu1)
    lines = [f"all threads: {total:.2f} s of CPU in 8 s"]
    for key, cpu in sorted(cpu1.items(), key=lambda kv: kv[1] - cpu0.get(kv[0], 0.0)):
        used = cpu - cpu0.get(key, 0.0)
        lines.append(f"{key}: {used:.2f} s, {100 * used / max(total, 1e-9):.1f} %")
    out.with_suffix(".threads").write_text("\n".join(lines) + "\n")


def _py_spy(sup: Supervisor, name: str, out: Path) -> subprocess.Popen[bytes]:
    child = sup.children[name]
    assert child.proc is not None
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            *(
                str(spy),
                "record",
                "--native",
                "--threads",
                "--gil",
                "--rate",
                "200",
                "--duration",
                "8",
            ),
            *("--format", "raw", "--output", str(out), "--pid", str(child.proc.pid)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":  # python -m bench.throughput: the ingest A/B rows only
    import os

    variants = ISSUE27 if "--issue27" in sys.argv else CLIENTS
    asyncio.run(ingest_ab(os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"), variants=variants))
