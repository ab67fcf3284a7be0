"""``algostream demo``: the whole platform on one machine, watched live.

Starts (or reuses) the local broker, applies the topic catalog, then runs the simulator,
the ingestor and the worker roles as child processes, and shows a live summary read
back from the topics (book tops, signals, orders, fills, P&L) until Ctrl-C or ``duration``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from algostream.config import Settings
from algostream.kafka.clients import client_kwargs
from algostream.model.records import BookTop, OrderEvent, PnL, Signal
from algostream.supervisor import Supervisor

#: how often the demo has its supervisor check the workers
SUPERVISE_EVERY_S = 5.0
WATCH = (
    "book.top",
    "signals",
    "orders.proposed",
    "orders.approved",
    "orders.rejected",
    "orders.events",
    "pnl",
    "dlq",
    "book.integrity",
)


def components(settings: Settings) -> list[tuple[str, list[str]]]:
    """The child processes: simulator, ingestor, one worker per role of the layout."""
    from streams.worker import worker_roles

    workers = [(role, ["worker", role]) for role in worker_roles(settings)]
    return [("sim", ["sim"]), ("ingest", ["ingest"]), *workers]


@dataclass
class DemoView:
    counts: Counter[str] = field(default_factory=Counter)
    mids: dict[str, str] = field(default_factory=dict)
    last_signal: str = "-"
    fills: int = 0
    pnl: PnL | None = None

    def on(self, topic: str, value: bytes) -> None:
        self.counts[topic] += 1
        try:
            if topic == "book.top":
                top = BookTop.decode(value)
                self.mids[top.instrument] = str(top.mid)
            elif topic == "signals":
                sig = Signal.decode(value)
                self.last_signal = (
                    f"{sig.strategy} {sig.side.value} {sig.instrument} ({sig.reason})"
                )
            elif topic == "orders.events":
                ev = OrderEvent.decode(value)
                self.fills += 1 if ev.fill_qty > 0 else 0
            elif topic == "pnl":
                self.pnl = PnL.decode(value)
        except Exception:  # the view is best effort; the agents own validation
            pass

    def table(self, sup: Supervisor, started: float) -> Table:
        t = Table(
            title=f"algostream demo - {time.monotonic() - started:.0f}s "
            f"(Ctrl-C to stop; logs in {sup.log_dir})"
        )
        t.add_column("what")
        t.add_column("value", overflow="fold")
        t.add_row(
            "processes",
            ", ".join(f"{n}{'' if c.alive else ' (DEAD)'}" for n, c in sup.children.items()),
        )
        for inst, mid in sorted(self.mids.items()):
            t.add_row(f"mid {inst}", mid)
        for topic in WATCH:
            t.add_row(topic, str(self.counts[topic]))
        t.add_row("last signal", self.last_signal)
        t.add_row("fills", str(self.fills))
        if self.pnl is not None:
            t.add_row(
                "equity",
                f"{self.pnl.equity} (realised {self.pnl.realized_pnl}, "
                f"unrealised {self.pnl.unrealized_pnl}, fees {self.pnl.fees})",
            )
        return t


async def _watch(settings: Settings, sup: Supervisor, duration: float | None) -> DemoView:
    prefix = settings.kafka.topic_prefix
    consumer = AIOKafkaConsumer(
        *(prefix + t for t in WATCH),
        **client_kwargs(settings.kafka),
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    view = DemoView()
    started = next_check = time.monotonic()
    try:
        with Live(view.table(sup, started), refresh_per_second=2, console=Console()) as live:
            while duration is None or time.monotonic() - started < duration:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for r in records:
                        view.on(tp.topic[len(prefix) :], r.value)
                live.update(view.table(sup, started))
                if time.monotonic() >= next_check:  # a hung or exited worker: start again
                    next_check = time.monotonic() + SUPERVISE_EVERY_S
                    await asyncio.to_thread(sup.supervise)
                if sup.dead():
                    break
    finally:
        await consumer.stop()
    return view


def operator_key_env(data_dir: Path) -> dict[str, str]:
    """The operator key for the demo's control commands: the environment's if it has one,
    else an owner-only ``control.key`` made once under ``data_dir`` (the trading worker
    refuses every control command without a key; the CLI signs with the same file)."""
    if os.environ.get("ALGOSTREAM_CONTROL_KEY") or os.environ.get("ALGOSTREAM_CONTROL_KEY_FILE"):
        return {}
    path = data_dir / "control.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    print(
        f"operator key: {path} (control commands: "
        f"ALGOSTREAM_CONTROL_KEY_FILE={path} algostream control halt --reason ...)"
    )
    return {"ALGOSTREAM_CONTROL_KEY_FILE": str(path.resolve())}


def run_demo(settings: Settings, log_dir: Path, duration: float | None) -> int:
    """Run everything; returns a process exit code (non-zero if a component died)."""
    sup = Supervisor(log_dir, env={"PYTHONUNBUFFERED": "1", **operator_key_env(log_dir.parent)})
    from streams.worker import role_ports

    for name, args in components(settings):
        if args[0] == "worker":  # restarted when it exits or its /healthz fails
            health = f"http://127.0.0.1:{role_ports(settings, name)[1]}/healthz"
            sup.start(name, *args, restart=True, health_url=health)
        else:
            sup.start(name, *args)
    try:
        view = asyncio.run(_watch(settings, sup, duration))
    except KeyboardInterrupt:
        view = None
    finally:
        dead = sup.dead()
        sup.stop_all()
    for name in dead:
        print(f"{name} died; last lines of {sup.children[name].log}:\n{sup.tail(name)}")
    if view is not None:
        print(f"demo summary: {dict(view.counts)}; fills={view.fills}")
    return 1 if dead else 0


__all__ = ["run_demo"]
