"""Runtime commands registered on the CLI: worker, control, sim, ingest, demo, ..."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from algostream.cli import ConfigOpt, app, console, settings_or_exit
from algostream.model.enums import ControlAction

control_app = typer.Typer(help="Operator commands to the risk and execution agents (control topic).",
                          no_args_is_help=True)
app.add_typer(control_app, name="control")


@app.command("worker")
def worker(
    role: Annotated[str, typer.Argument(help="market | signals | trading")],
    config: ConfigOpt = None,
    web_port: Annotated[Optional[int], typer.Option(help="Faust web port")] = None,  # noqa: UP007
    metrics_port: Annotated[Optional[int], typer.Option(help="/metrics port (0: any)")] = None,  # noqa: UP007
) -> None:
    """Run the stream agents of one worker role (Faust worker; scale out by running more)."""
    from streams.worker import ROLES, run_worker

    if role not in ROLES:
        console.print(f"[red]unknown role {role!r}[/red]; known: {', '.join(ROLES)}")
        raise typer.Exit(2)
    run_worker(settings_or_exit(config), role, web_port=web_port, metrics_port=metrics_port)


def _control(action: ControlAction, instrument: str, reason: str, actor: str,
             config: Path | None) -> None:
    from algostream.kafka.publisher import KafkaPublisher
    from algostream.model.ids import derive_id
    from algostream.model.records import ControlCommand

    settings = settings_or_exit(config)
    now = time.time_ns()
    cmd = ControlCommand(instrument=instrument, ts_event=now, ts_init=now,
                         record_id=derive_id("control", action.value, instrument, now),
                         lineage_id="operator", action=action, actor=actor, reason=reason)

    async def send() -> None:
        pub = KafkaPublisher(settings.kafka)
        await pub.start()
        try:
            await pub.publish("control", cmd)
        finally:
            stats = await pub.flush()
            await pub.producer.stop()
        if stats.delivered != 1:
            raise typer.Exit(1)

    asyncio.run(send())
    console.print(f"{action.value} {instrument} sent by {actor}: {reason}")


_Instrument = Annotated[str, typer.Option(help="VENUE:SYMBOL, or ALL:* for every instrument")]
_Reason = Annotated[str, typer.Option(help="why (recorded in risk.events)")]
_Actor = Annotated[str, typer.Option(help="who (recorded in risk.events)")]


@control_app.command("halt")
def control_halt(reason: _Reason, instrument: _Instrument = "ALL:*",
                 actor: _Actor = "operator", config: ConfigOpt = None) -> None:
    """Kill switch: reject every new order."""
    _control(ControlAction.HALT, instrument, reason, actor, config)


@control_app.command("reduce")
def control_reduce(reason: _Reason, instrument: _Instrument = "ALL:*",
                   actor: _Actor = "operator", config: ConfigOpt = None) -> None:
    """Only allow orders that reduce exposure."""
    _control(ControlAction.REDUCE, instrument, reason, actor, config)


@control_app.command("resume")
def control_resume(reason: _Reason, instrument: _Instrument = "ALL:*",
                   actor: _Actor = "operator", config: ConfigOpt = None) -> None:
    """Back to ACTIVE (book-integrity problems still hold until resynced)."""
    _control(ControlAction.RESUME, instrument, reason, actor, config)


@control_app.command("flatten")
def control_flatten(reason: _Reason, instrument: _Instrument = "ALL:*",
                    actor: _Actor = "operator", config: ConfigOpt = None) -> None:
    """Close every open position with market orders, then stay REDUCING."""
    _control(ControlAction.FLATTEN, instrument, reason, actor, config)


@app.command("sim")
def sim(
    config: ConfigOpt = None,
    host: Annotated[Optional[str], typer.Option(help="address to listen on")] = None,  # noqa: UP007
    port: Annotated[Optional[int], typer.Option(help="port (0: any free port)")] = None,  # noqa: UP007
    rate: Annotated[Optional[float], typer.Option(help="market events per second")] = None,  # noqa: UP007
    seed: Annotated[Optional[int], typer.Option(help="random seed (same seed, same market)")] = None,  # noqa: UP007
    capture: Annotated[Optional[str], typer.Option(help="play back a recorded .ws capture")] = None,  # noqa: UP007
) -> None:
    """Run the exchange simulator: Binance + Coinbase WebSocket and REST on one port."""
    import os

    from algostream.sim.server import run_simulator
    from algostream.sim.trading import trading_setup

    settings = settings_or_exit(config)
    s = settings.sim
    setup = []
    key, secret = os.environ.get("ALGOSTREAM_API_KEY"), os.environ.get("ALGOSTREAM_API_SECRET")
    if key and secret:  # serve the signed order API only with credentials to check against
        setup.append(trading_setup(key, secret))
    capture = capture or s.capture
    http = s.capture_http or (capture.replace(".ws.", ".http.") if capture else None)

    def ready(bound: int) -> None:
        console.print(f"simulator listening on http://{bind}:{bound} "
                      f"(ws://{bind}:{bound}/stream, /coinbase)")

    bind = host or s.host
    try:
        asyncio.run(run_simulator(
            bind, s.port if port is None else port, settings.market_data.symbols,
            s.seed if seed is None else seed, s.rate if rate is None else rate,
            levels=s.levels, capture=capture, capture_http=http, speed=s.speed,
            setup=setup, ready=ready))
    except KeyboardInterrupt:
        pass


@app.command("demo")
def demo(
    config: ConfigOpt = None,
    duration: Annotated[Optional[float], typer.Option(help="stop after N seconds")] = None,  # noqa: UP007
    logs: Annotated[Path, typer.Option(help="where child logs go")] = Path(".data/logs"),
) -> None:
    """Broker + topics + simulator + ingestor + every worker, with a live summary."""
    from algostream.cli import broker_port, kafka_root
    from algostream.demo import run_demo
    from algostream.kafka.catalog import load_catalog
    from algostream.kafka.local_broker import LocalBroker
    from algostream.kafka.provision import apply_catalog

    settings = settings_or_exit(config)
    if settings.kafka.bootstrap_servers == f"127.0.0.1:{broker_port()}":
        LocalBroker(kafka_root(), port=broker_port()).start()
    report = asyncio.run(apply_catalog(load_catalog(), settings.kafka))
    for line in report.drift:
        console.print(f"[yellow]topic drift:[/yellow] {line}")
    raise typer.Exit(run_demo(settings, logs, duration))


@app.command("ingest")
def ingest_cmd(
    config: ConfigOpt = None,
    metrics_port: Annotated[Optional[int], typer.Option(help="/metrics port (0: any)")] = None,  # noqa: UP007
) -> None:
    """Connect to the configured exchange (the simulator by default) and write md.* topics."""
    from algostream.ingest.run import run_ingest

    run_ingest(settings_or_exit(config), metrics_port)
